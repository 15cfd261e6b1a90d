package socket

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// The tutorial's multicast receiver: join a group, receive datagrams
// sent by another host and, with IP_MULTICAST_LOOP, by this host.
func TestMulticastJoinReceiveAndLoop(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	group := netip.MustParseAddr("224.1.1.1")
	rcv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	rcv.SetSockOptInt(SOL_SOCKET, SO_REUSEADDR, 1)
	if err := rcv.Bind(ap(netip.IPv4Unspecified(), 5007)); err != nil {
		t.Fatal(err)
	}
	if err := rcv.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: group}); err != nil {
		t.Fatal(err)
	}
	if err := rcv.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: group}); err == nil {
		t.Fatal("joining twice succeeded")
	}
	// IGMPv3 by default: a TO_EX record at once (its retransmission
	// may follow within a second).
	joinReports := p.sb.Stats().IGMP.OutV3Reports.Load()
	if joinReports < 1 {
		t.Fatalf("IGMPv3 reports sent on join: %d, want 1", joinReports)
	}
	rcv.SetTimeout(5 * time.Second)
	snd := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	snd.SetSockOptInt(SOL_IP, IP_MULTICAST_TTL, 2)
	if _, err := snd.SendTo([]byte("robot"), 0, ap(group, 5007)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := rcv.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "robot" {
		t.Fatalf("remote multicast: %q %v", buf[:n], err)
	}
	// Loopback: a socket on B sends to the group; B's member receives it.
	local := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if _, err := local.SendTo([]byte("self"), 0, ap(group, 5007)); err != nil {
		t.Fatal(err)
	}
	n, err = rcv.Recv(buf, 0)
	if err != nil || string(buf[:n]) != "self" {
		t.Fatalf("looped multicast: %q %v", buf[:n], err)
	}
	// With IP_MULTICAST_LOOP off, no local copy.
	local.SetSockOptInt(SOL_IP, IP_MULTICAST_LOOP, 0)
	local.SendTo([]byte("hidden"), 0, ap(group, 5007))
	rcv.SetTimeout(100 * time.Millisecond)
	if n, err := rcv.Recv(buf, 0); err == nil {
		t.Fatalf("got %q with IP_MULTICAST_LOOP off", buf[:n])
	}
	// After leaving, A's datagrams no longer arrive.
	if err := rcv.SetSockOpt(SOL_IP, IP_DROP_MEMBERSHIP, IPMreq{Multiaddr: group}); err != nil {
		t.Fatal(err)
	}
	if got := p.sb.Stats().IGMP.OutV3Reports.Load(); got <= joinReports {
		t.Fatalf("no IGMPv3 report on leave: %d, %d after the join", got, joinReports)
	}
	snd.SendTo([]byte("gone"), 0, ap(group, 5007))
	if n, err := rcv.Recv(buf, 0); err == nil {
		t.Fatalf("got %q after leaving", buf[:n])
	}
}
