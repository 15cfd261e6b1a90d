package socket

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// An AF_PACKET queue charges every frame its bytes plus the per-packet
// overhead: 300,000 header-only frames stop at SO_RCVBUF, the rest are
// counted in PACKET_STATISTICS and in the stack.
func TestPacketQueueChargesTruesize(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(etherExp))
	e := s.ep.(*packetEP)
	nic := p.sb.NICByName("eth0")
	f := make([]byte, wire.EthernetHeaderLen)
	wire.PutEthernet(f, macB, macA, etherExp)
	const sent = 300000
	for i := 0; i < sent; i++ {
		e.tap(nic, f, false) // as the link goroutine does, synchronously
	}
	rcvbuf, _ := s.GetSockOptInt(SOL_SOCKET, SO_RCVBUF)
	want := rcvbuf / (len(f) + stack.DgramOverhead)
	st, err := s.GetSockOpt(SOL_PACKET, PACKET_STATISTICS)
	if err != nil {
		t.Fatal(err)
	}
	ps := st.(PacketStats)
	if int(ps.Packets) != sent || int(ps.Drops) != sent-want {
		t.Errorf("PACKET_STATISTICS %+v, want %d packets, %d drops", ps, sent, sent-want)
	}
	if d := p.sb.Stats().Packet.RcvbufErrors.Load(); d != uint64(sent-want) {
		t.Errorf("stack Packet.RcvbufErrors %d, want %d", d, sent-want)
	}
	queued := 0
	buf := make([]byte, 100)
	for {
		if _, err := s.Recv(buf, MSG_DONTWAIT); err != nil {
			break
		}
		queued++
	}
	if queued != want {
		t.Errorf("%d of %d frames queued, want %d (SO_RCVBUF %d)", queued, sent, want, rcvbuf)
	}
	// A drained queue takes frames again: the charge was given back.
	e.tap(nic, f, false)
	if _, err := s.Recv(buf, MSG_DONTWAIT); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

// An AF_UNIX datagram receiver's SO_RCVBUF is charged per datagram, so
// zero-length datagrams fill it too: with the smallest buffer (2304
// bytes) four fit, where the byte count alone let the queue-length limit
// (11) decide.
func TestUnixDgramQueueChargesTruesize(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	a, b, err := n.SocketPair(SOCK_DGRAM)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := b.SetSockOptInt(SOL_SOCKET, SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	rcvbuf, _ := b.GetSockOptInt(SOL_SOCKET, SO_RCVBUF)
	sent := 0
	for ; sent < 300000; sent++ {
		if _, err := a.Send(nil, MSG_DONTWAIT); err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatal(err)
			}
			break
		}
	}
	want := (rcvbuf + stack.DgramOverhead - 1) / stack.DgramOverhead
	if sent != want {
		t.Fatalf("%d zero-length datagrams queued with SO_RCVBUF %d, want %d", sent, rcvbuf, want)
	}
	buf := make([]byte, 10)
	for i := 0; i < sent; i++ {
		if k, err := b.Recv(buf, MSG_DONTWAIT); err != nil || k != 0 {
			t.Fatalf("datagram %d: %d %v", i, k, err)
		}
	}
	if _, err := a.Send(nil, MSG_DONTWAIT); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

// An empty payload (a header-only frame on a SOCK_DGRAM packet socket, a
// zero-length AF_UNIX datagram) as the first thing queued divided by the
// empty ring's zero length and panicked.
func TestEmptyDatagramIntoEmptyRing(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.b, AF_PACKET, SOCK_DGRAM, Htons(etherExp))
	f := make([]byte, wire.EthernetHeaderLen)
	wire.PutEthernet(f, macB, macA, etherExp)
	s.ep.(*packetEP).tap(p.sb.NICByName("eth0"), f, false)
	buf := make([]byte, 10)
	if k, err := s.Recv(buf, MSG_DONTWAIT); k != 0 || err != nil {
		t.Fatalf("empty frame payload: %d %v", k, err)
	}
	a, b, err := p.b.SocketPair(SOCK_DGRAM)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if _, err := a.Send(nil, 0); err != nil {
		t.Fatal(err)
	}
	if k, err := b.Recv(buf, MSG_DONTWAIT); k != 0 || err != nil {
		t.Fatalf("empty unix datagram: %d %v", k, err)
	}
}
