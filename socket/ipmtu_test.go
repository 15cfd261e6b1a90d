package socket

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// IP_MTU follows the route: the link's MTU toward a peer on eth0, not
// loopback's (the conformance cases see only loopback).
func TestIPMTUFollowsTheRoute(t *testing.T) {
	p := newPair(t, 1400, stack.Options{})
	u := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := u.GetSockOptInt(SOL_IP, IP_MTU); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("unconnected: %v, want ENOTCONN", err)
	}
	if err := u.Connect(ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	if v, err := u.GetSockOptInt(SOL_IP, IP_MTU); v != 1400 || err != nil {
		t.Fatalf("toward eth0's peer: %d %v, want 1400", v, err)
	}
	if err := u.Connect(ap(addrA, 9)); err != nil { // our own address: loopback
		t.Fatal(err)
	}
	if v, err := u.GetSockOptInt(SOL_IP, IP_MTU); v != 65535 || err != nil {
		t.Fatalf("toward ourselves: %d %v, want 65535", v, err)
	}
}
