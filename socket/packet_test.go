package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

const etherExp = 0x88B5 // IEEE local experimental ethertype

func TestPacketEthertypeArgument(t *testing.T) {
	for _, c := range []struct {
		in   int
		want uint16
	}{{0, 0}, {Htons(ETH_P_ALL), ETH_P_ALL}, {ETH_P_ALL, ETH_P_ALL}, {Htons(ETH_P_IP), ETH_P_IP},
		{ETH_P_IP, ETH_P_IP}, {Htons(ETH_P_IPV6), ETH_P_IPV6}, {ETH_P_ARP, ETH_P_ARP}} {
		got, err := packetEthertype(c.in)
		if err != nil || got != c.want {
			t.Errorf("proto %#x: %#x %v, want %#x", c.in, got, err, c.want)
		}
	}
	if _, err := packetEthertype(-1); err == nil {
		t.Error("negative proto accepted")
	}
}

// recvUntil reads frames until match accepts one (bounded by the socket timeout).
func recvUntil(t *testing.T, s *Socket, match func(b []byte, sa *SockaddrPacket) bool) ([]byte, *SockaddrPacket) {
	t.Helper()
	s.SetTimeout(5 * time.Second)
	buf := make([]byte, 2048)
	for i := 0; i < 1000; i++ {
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil {
			t.Fatalf("recvfrom: %v", err)
		}
		sa := from.(*SockaddrPacket)
		if match(buf[:n], sa) {
			return append([]byte(nil), buf[:n]...), sa
		}
	}
	t.Fatal("no matching frame")
	return nil, nil
}

func TestPacketSnifferSeesTraffic(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	sniff := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(ETH_P_ALL))
	if err := sniff.Bind(&SockaddrPacket{Ifindex: 2}); err != nil {
		t.Fatal(err)
	}
	ipOnly := mustSocket(t, p.b, AF_PACKET, SOCK_DGRAM, ETH_P_IP) // host order accepted too
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.Bind(ap(addrB, 9))
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := cli.SendTo([]byte("sniff me"), 0, ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	frame, sa := recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool {
		return sa.Protocol == ETH_P_IP && bytes.Contains(b, []byte("sniff me"))
	})
	if sa.PktType != PACKET_HOST || sa.HWAddr != macA || wire.Ethernet(frame).EtherType() != ETH_P_IP {
		t.Fatalf("captured %+v", sa)
	}
	if len(frame) != 14+20+8+8 {
		t.Fatalf("raw frame length %d", len(frame))
	}
	// B's answer is an outgoing frame. (Not B's ARP reply: A may have
	// learnt B's address from B's gratuitous ARP, and then asks nothing.)
	if _, err := srv.SendTo([]byte("answer"), 0, ap(addrA, 9)); err != nil {
		t.Fatal(err)
	}
	out, sa := recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool {
		return sa.PktType == PACKET_OUTGOING && bytes.Contains(b, []byte("answer"))
	})
	if wire.Ethernet(out).Src() != macB || sa.Ifindex != 2 || sa.Protocol != ETH_P_IP {
		t.Fatalf("outgoing frame from %v on if%d proto %#x", wire.Ethernet(out).Src(), sa.Ifindex, sa.Protocol)
	}
	// SOCK_DGRAM gets the IP packet without the Ethernet header, and no ARP.
	pkt, sa := recvUntil(t, ipOnly, func(b []byte, sa *SockaddrPacket) bool { return true })
	if pkt[0] != 0x45 || sa.Protocol != ETH_P_IP || !bytes.HasSuffix(pkt, []byte("sniff me")) {
		t.Fatalf("dgram capture % x (%+v)", pkt, sa)
	}
	la, _ := sniff.GetSockName()
	if l := la.(*SockaddrPacket); l.Ifindex != 2 || l.Protocol != ETH_P_ALL || l.HWAddr != macB {
		t.Fatalf("getsockname %+v", l)
	}
}

func TestPacketInjectAndPromiscuous(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	sniff := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(ETH_P_ALL))
	sniff.Bind(&SockaddrPacket{Ifindex: 2})
	inj := mustSocket(t, p.a, AF_PACKET, SOCK_DGRAM, Htons(etherExp))
	raw := mustSocket(t, p.a, AF_PACKET, SOCK_RAW, 0)

	// SOCK_DGRAM injection: the stack adds the Ethernet header.
	if _, err := inj.SendTo([]byte("payload"), 0, &SockaddrPacket{Ifindex: 2, HWAddr: macB}); err != nil {
		t.Fatal(err)
	}
	f, sa := recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool { return sa.Protocol == etherExp })
	if wire.Ethernet(f).Dst() != macB || sa.HWAddr != macA || string(f[14:]) != "payload" || sa.PktType != PACKET_HOST {
		t.Fatalf("injected frame % x %+v", f, sa)
	}

	frame := func(dst wire.MAC, tag byte) []byte {
		b := make([]byte, 60)
		wire.PutEthernet(b, dst, macA, etherExp)
		b[14] = tag
		return b
	}
	other := wire.MAC{2, 0, 0, 0, 0, 0x99}
	send := func(b []byte) {
		if _, err := raw.SendTo(b, 0, &SockaddrPacket{Ifindex: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// Without promiscuous mode a frame for another MAC is filtered; the
	// marker behind it on the same FIFO link proves it went by.
	send(frame(other, 1))
	send(frame(macB, 2))
	f, _ = recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool { return sa.Protocol == etherExp })
	if f[14] != 2 {
		t.Fatalf("saw frame %d before the marker: not filtered", f[14])
	}
	if err := sniff.SetSockOpt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, PacketMreq{Ifindex: 2, Type: PACKET_MR_PROMISC}); err != nil {
		t.Fatal(err)
	}
	send(frame(other, 3))
	f, sa = recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool { return sa.Protocol == etherExp })
	if f[14] != 3 || sa.PktType != PACKET_OTHERHOST {
		t.Fatalf("promiscuous: frame %d type %d", f[14], sa.PktType)
	}
	send(frame(wire.BroadcastMAC, 4))
	_, sa = recvUntil(t, sniff, func(b []byte, sa *SockaddrPacket) bool { return sa.Protocol == etherExp })
	if sa.PktType != PACKET_BROADCAST {
		t.Fatalf("broadcast type %d", sa.PktType)
	}
	if err := sniff.SetSockOpt(SOL_PACKET, PACKET_DROP_MEMBERSHIP, PacketMreq{Ifindex: 2, Type: PACKET_MR_PROMISC}); err != nil {
		t.Fatal(err)
	}
	err := sniff.SetSockOpt(SOL_PACKET, PACKET_DROP_MEMBERSHIP, PacketMreq{Ifindex: 2, Type: PACKET_MR_PROMISC})
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("drop twice: %v", err)
	}

	// Errors.
	if _, err := raw.SendTo(make([]byte, 3000), 0, &SockaddrPacket{Ifindex: 2}); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := raw.Send(frame(macB, 0), 0); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("unbound send: %v", err)
	}
	if err := raw.Bind(&SockaddrPacket{Ifindex: 7}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("bind to missing NIC: %v", err)
	}
	if _, err := p.a.Socket(AF_PACKET, SOCK_STREAM, 0); !errors.Is(err, syscall.ESOCKTNOSUPPORT) {
		t.Fatalf("stream packet socket: %v", err)
	}
}

func TestPacketQueueDrops(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	small := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(etherExp))
	small.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 1000) // doubled: 2304 bytes
	marker := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(etherExp))
	raw := mustSocket(t, p.a, AF_PACKET, SOCK_RAW, 0)
	b := make([]byte, 1000)
	wire.PutEthernet(b, macB, macA, etherExp)
	const sent = 20
	for i := 0; i < sent; i++ {
		b[14] = byte(i)
		if _, err := raw.SendTo(b, 0, &SockaddrPacket{Ifindex: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// Taps run in order on the link goroutine: when the marker socket has
	// the last frame, the small one has seen all of them.
	recvUntil(t, marker, func(f []byte, _ *SockaddrPacket) bool { return f[14] == sent-1 })
	v, err := small.GetSockOpt(SOL_PACKET, PACKET_STATISTICS)
	if err != nil {
		t.Fatal(err)
	}
	st := v.(PacketStats)
	if st.Packets != sent || st.Drops == 0 || st.Drops >= sent {
		t.Fatalf("stats %+v", st)
	}
	kept := 0
	small.SetTimeout(0)
	for {
		if _, err := small.Recv(make([]byte, 2000), 0); err != nil {
			break
		}
		kept++
	}
	if kept+int(st.Drops) != sent {
		t.Fatalf("kept %d + dropped %d != %d", kept, st.Drops, sent)
	}
	v, _ = small.GetSockOpt(SOL_PACKET, PACKET_STATISTICS)
	if v.(PacketStats) != (PacketStats{}) {
		t.Fatalf("statistics not reset: %+v", v)
	}
}

func TestPacketLoopback(t *testing.T) {
	n := newNet(t)
	s := mustSocket(t, n, AF_PACKET, SOCK_DGRAM, Htons(ETH_P_ALL))
	if err := s.Bind(&SockaddrPacket{Ifindex: 1}); err != nil { // lo, as on Linux
		t.Fatal(err)
	}
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	lo := netip.MustParseAddr("127.0.0.1")
	u.Bind(ap(lo, 5353))
	if _, err := u.SendTo([]byte("loop"), 0, ap(lo, 5353)); err != nil {
		t.Fatal(err)
	}
	// Loopback shows each packet twice: going out and coming in.
	var types []uint8
	for len(types) < 2 {
		pkt, sa := recvUntil(t, s, func(b []byte, sa *SockaddrPacket) bool { return bytes.HasSuffix(b, []byte("loop")) })
		if sa.Ifindex != 1 || sa.Protocol != ETH_P_IP || binary.BigEndian.Uint16(pkt[22:24]) != 5353 {
			t.Fatalf("loopback capture %+v % x", sa, pkt)
		}
		types = append(types, sa.PktType)
	}
	if types[0] != PACKET_OUTGOING || types[1] != PACKET_HOST {
		t.Fatalf("packet types %v", types)
	}
}

// Interfaces are numbered as Linux numbers them: loopback 1, the first
// NIC 2, nothing at 0; a packet socket bound to ifindex 0 hears every
// interface and reports each frame's own index, and -1 is no device.
func TestPacketIfindexZeroIsEveryInterface(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	st := p.b.Stack()
	if st.NICByID(0) != nil || st.NICByID(1) == nil || st.NICByID(1).Name() != "lo" || st.NICByID(2) == nil {
		t.Fatalf("NIC ids: 0 %v, 1 %v, 2 %v", st.NICByID(0), st.NICByID(1), st.NICByID(2))
	}
	s := mustSocket(t, p.b, AF_PACKET, SOCK_DGRAM, Htons(ETH_P_IP))
	if err := s.Bind(&SockaddrPacket{Ifindex: -1}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("bind to ifindex -1: %v, want ENODEV", err)
	}
	if err := s.Bind(&SockaddrPacket{Ifindex: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("x"), 0, &SockaddrPacket{Ifindex: 0, Protocol: ETH_P_IP}); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("send on ifindex 0: %v, want ENXIO", err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	u := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	u.Bind(ap(lo, 5354))
	if _, err := u.SendTo([]byte("on lo"), 0, ap(lo, 5354)); err != nil {
		t.Fatal(err)
	}
	srv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	srv.Bind(ap(addrB, 9))
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := cli.SendTo([]byte("on eth"), 0, ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(seen) < 2 {
		b, sa := recvUntil(t, s, func(b []byte, sa *SockaddrPacket) bool {
			return bytes.HasSuffix(b, []byte("on lo")) || bytes.HasSuffix(b, []byte("on eth"))
		})
		seen[string(b[28:])] = sa.Ifindex
	}
	if seen["on lo"] != 1 || seen["on eth"] != 2 {
		t.Fatalf("frames came on interfaces %v, want lo 1 and the NIC 2", seen)
	}
}
