package socket

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"

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

// An AF_UNIX datagram's sender is charged its truesize (socket/unix_mem.go)
// against SO_SNDBUF, so zero-length datagrams fill it too: with the
// smallest buffer (4608 bytes) six fit, as on Linux 6.18. The receiver's
// SO_RCVBUF plays no part.
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
	if err := a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 1); err != nil {
		t.Fatal(err)
	}
	sndbuf, _ := a.GetSockOptInt(SOL_SOCKET, SO_SNDBUF)
	sent := 0
	for ; sent < 300000; sent++ {
		if _, err := a.Send(nil, MSG_DONTWAIT); err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatal(err)
			}
			break
		}
	}
	if want := (sndbuf + unixMinTruesize - 1) / unixMinTruesize; sent != want || want != 6 {
		t.Fatalf("%d zero-length datagrams queued with SO_SNDBUF %d, want %d (Linux: 6)", sent, sndbuf, want)
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

// Through the socket API: a UDP socket fed zero-length datagrams from
// another host keeps at most SO_RCVBUF of true size and counts the rest.
func TestUDPZeroLengthFloodBounded(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	rcv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := rcv.Bind(ap(addrB, 7000)); err != nil {
		t.Fatal(err)
	}
	snd := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	snd.SetTimeout(5 * time.Second)
	// One datagram first, so ARP is resolved before the flood.
	rcv.SetTimeout(5 * time.Second)
	if _, err := snd.SendTo(nil, 0, ap(addrB, 7000)); err != nil {
		t.Fatal(err)
	}
	if _, err := rcv.Recv(make([]byte, 1), 0); err != nil {
		t.Fatal(err)
	}
	const sent = 20000
	for i := 0; i < sent; i++ {
		if _, err := snd.SendTo(nil, 0, ap(addrB, 7000)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait (bounded) until every datagram that crossed the link was
	// either queued or dropped at the socket.
	st := p.sb.Stats()
	deadline := time.Now().Add(10 * time.Second)
	for st.UDP.InDatagrams.Load() < 1+sent-p.sa.Stats().Link.OutQueueFull.Load() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	in := st.UDP.InDatagrams.Load() - 1
	t.Logf("%d sent, %d arrived, %d refused by the link", sent, in, p.sa.Stats().Link.OutQueueFull.Load())
	queued := 0
	buf := make([]byte, 10)
	for {
		if _, err := rcv.Recv(buf, MSG_DONTWAIT); err != nil {
			break
		}
		queued++
	}
	rcvbuf, _ := rcv.GetSockOptInt(SOL_SOCKET, SO_RCVBUF)
	if limit := rcvbuf / (256 + stack.DgramOverhead); queued > limit || queued == 0 {
		t.Fatalf("%d zero-length datagrams queued, limit %d", queued, limit)
	}
	if rcv.Drops() != in-uint64(queued) || st.UDP.RcvbufErrors.Load() != rcv.Drops() {
		t.Fatalf("%d arrived, %d queued, socket drops %d, RcvbufErrors %d", in, queued, rcv.Drops(), st.UDP.RcvbufErrors.Load())
	}
}
