package link

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// superFrame builds an Ethernet frame with a TCP super-segment of n
// payload bytes, its checksum left partial.
func superFrame(n int) []byte {
	th := wire.TCPHeader{SrcPort: 1, DstPort: 2, Seq: 100, Ack: 5, Flags: wire.TCPFlagACK | wire.TCPFlagPSH, Window: 9}
	ip := wire.IPv4Header{TTL: 64, Protocol: wire.ProtoTCP, DF: true, ID: 7,
		Src: netipAddr(10, 0, 0, 1), Dst: netipAddr(10, 0, 0, 2)}
	ip.TotalLen = 20 + th.Len() + n
	f := make([]byte, 14+ip.TotalLen)
	wire.PutEthernet(f, wire.MAC{2, 0, 0, 0, 0, 2}, wire.MAC{2, 0, 0, 0, 0, 1}, wire.EtherTypeIPv4)
	ip.Put(f[14:])
	th.Put(f[34:])
	for i := range f[34+th.Len():] {
		f[34+th.Len()+i] = byte(i * 13)
	}
	PartialTCPChecksum(wire.IPv4(f[14:]))
	return f
}

type collect struct {
	mu     sync.Mutex
	frames [][]byte
	got    chan struct{}
	want   int
}

func (c *collect) DeliverFrames(fs [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fs {
		c.frames = append(c.frames, append([]byte(nil), f...))
	}
	if len(c.frames) >= c.want {
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

// A pipe carries a super-segment whole; a receiver that knows nothing of
// offloads gets it cut into wire segments with finished checksums.
func TestPipeMetaToPlainReceiver(t *testing.T) {
	a, b := NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	defer a.Close()
	defer b.Close()
	c := &collect{got: make(chan struct{}, 1), want: 5}
	b.Attach(c)
	f := superFrame(4*1448 + 100)
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 54, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	if n, err := a.WriteFramesMeta([][]byte{f}, []Meta{m}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	<-c.got
	var payload []byte
	for i, s := range c.frames {
		ip, err := wire.ParseIPv4(s[14:])
		if err != nil {
			t.Fatal(err)
		}
		tc, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if tc.Seq() != 100+uint32(i*1448) || (tc.Flags()&wire.TCPFlagPSH != 0) != (i == 4) {
			t.Errorf("segment %d: seq %d flags %#x", i, tc.Seq(), tc.Flags())
		}
		payload = append(payload, tc.Payload()...)
	}
	if !bytes.Equal(payload, f[54:]) {
		t.Fatal("payload changed")
	}
}

// virtio-net headers round-trip, and a GSO header without a segment size
// is refused.
func TestVnetHeader(t *testing.T) {
	m := Meta{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 66, NetOff: 14, CsumPartial: true, CsumStart: 34, CsumOffset: 16}
	var b [vnetHdrLen]byte
	putVnetHdr(b[:], m)
	got, ok := parseVnetHdr(b[:], 14)
	if !ok || got != m {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	b[4], b[5] = 0, 0
	if _, ok := parseVnetHdr(b[:], 14); ok {
		t.Fatal("GSO without a segment size accepted")
	}
	putVnetHdr(b[:], Meta{})
	if got, ok := parseVnetHdr(b[:], 14); !ok || got != (Meta{}) {
		t.Fatalf("plain header: %+v", got)
	}
}

func netipAddr(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }
