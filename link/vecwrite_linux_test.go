package link

import (
	"bytes"
	"net"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// vecParts cuts frame f into the head (Ethernet, IP and TCP headers) and
// a tail in two pieces, as the stack hands a segment whose payload wraps
// in the send ring.
func vecParts(f []byte) (head []byte, tail [2][]byte) {
	return f[:54], [2][]byte{f[54:1054], f[1054:]}
}

// A super-segment gathered from its header and two payload pieces
// reaches the other end of a veth whole, byte for byte, with its
// segment size; the bytes are counted whole.
func TestAFPacketWriteFrameVec(t *testing.T) {
	ep, ns, _ := openOnVeth(t, AFPacketOptions{Offload: true})
	peer := openPeer(t, ns, true)
	got := newMetaCollector()
	peer.Attach(got)
	ep.Attach(newMetaCollector())
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	f := superFrame(30 * 1448)
	copy(f[0:6], macA[:])
	before := ep.Stats().TxBytes.Load()
	head, tail := vecParts(f)
	if ok, err := ep.WriteFrameVec(head, tail, m); !ok || err != nil {
		t.Fatalf("WriteFrameVec: %v %v", ok, err)
	}
	got.wait(t, 1)
	if !bytes.Equal(got.frames[0], f) || got.metas[0].GSOSize != 1448 {
		t.Fatalf("peer received %d bytes (sent %d), meta %+v", len(got.frames[0]), len(f), got.metas[0])
	}
	if n := ep.Stats().TxBytes.Load() - before; n != uint64(len(f)) {
		t.Fatalf("TxBytes grew by %d, want %d", n, len(f))
	}
	// A ring fills its slots by copy, and without Offload writes may be
	// held during a delivery: neither gathers.
	for _, o := range []AFPacketOptions{{Offload: true, Ring: true}, {}} {
		ep2, _, _ := openOnVeth(t, o)
		if ok, err := ep2.WriteFrameVec(head, tail, m); ok || err != nil {
			t.Fatalf("%+v: WriteFrameVec took the frame (%v)", o, err)
		}
	}
}

// The same through a TAP with virtio-net headers, read by a packet
// socket on the kernel's side of the device.
func TestTAPWriteFrameVec(t *testing.T) {
	needRoot(t)
	ns, x := newNetns(t)
	tap, err := OpenTAP("sstv0", TAPOptions{Netns: ns, MAC: wire.MAC{0x02, 0x53, 0x54, 0, 0, x}, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.sstv0.disable_ipv6=1")
	run(t, "ip", "-n", ns, "link", "set", "sstv0", "up")
	waitUp(t, ns, "sstv0")
	var kmac wire.MAC
	if err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("sstv0")
		if err == nil {
			kmac = wire.MAC(ifi.HardwareAddr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	peer, err := OpenAFPacket("sstv0", AFPacketOptions{Netns: ns, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	got := newMetaCollector()
	peer.Attach(got)
	tap.Attach(newMetaCollector())
	f := superFrame(20 * 1448)
	copy(f[0:6], kmac[:])
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	head, tail := vecParts(f)
	if ok, err := tap.WriteFrameVec(head, tail, m); !ok || err != nil {
		t.Fatalf("WriteFrameVec: %v %v", ok, err)
	}
	got.wait(t, 1)
	if !bytes.Equal(got.frames[0], f) {
		t.Fatalf("the kernel's side read %d bytes, want the %d written", len(got.frames[0]), len(f))
	}
	if s := tap.Stats().Snapshot(); s.TxBytes != uint64(len(f)) || s.TxFrames != 1 {
		t.Fatalf("stats %+v", s)
	}
}
