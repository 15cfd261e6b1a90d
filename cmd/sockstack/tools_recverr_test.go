package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// readErrQueue reads the same entry from sockstack and from the kernel:
// a datagram to a closed port on 127.0.0.1 with IP_RECVERR, worded as
// iputils words a port unreachable, reported by 127.0.0.1.
func TestReadErrQueueBothSides(t *testing.T) {
	st := stack.New(stack.Options{})
	defer st.Close()
	for name, api := range map[string]sockapi.API{"sockstack": sockapi.Stack(socket.New(st)), "kernel": sockapi.Host()} {
		closed, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		closed.Bind(socket.Inet("127.0.0.1", 0))
		to, _ := closed.GetSockName()
		closed.Close()
		s, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendTo([]byte("probe"), 0, to); err != nil {
			t.Fatal(err)
		}
		// The pending error comes first (sockstack's loopback delivers
		// on its own goroutine: the receive waits for it).
		s.SetTimeout(5 * time.Second)
		if _, err := s.Recv(make([]byte, 8), 0); err == nil {
			t.Fatalf("%s: no pending error", name)
		}
		q, ok := readErrQueue(s, make([]byte, 64))
		if !ok || q.text(false) != "Destination Port Unreachable" || q.from != netip.MustParseAddr("127.0.0.1") || string(q.payload) != "probe" {
			t.Fatalf("%s: %+v %v", name, q, ok)
		}
		if _, ok := readErrQueue(s, make([]byte, 64)); ok {
			t.Fatalf("%s: a second entry", name)
		}
	}
}
