package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

func ioctlInt(t *testing.T, s *Socket, req uint) int {
	t.Helper()
	v, err := s.Ioctl(req, 0)
	if err != nil {
		t.Fatalf("ioctl %#x: %v", req, err)
	}
	return v
}

// A packet socket's SIOCINQ is the next frame as recv returns it: with
// the link header on SOCK_RAW, without on SOCK_DGRAM (the kernel's
// conformance cases cannot open packet sockets on loopback alike).
func TestIoctlPacketNextFrame(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	raw := mustSocket(t, p.b, AF_PACKET, SOCK_RAW, Htons(ETH_P_IP))
	dgram := mustSocket(t, p.b, AF_PACKET, SOCK_DGRAM, Htons(ETH_P_IP))
	for _, s := range []*Socket{raw, dgram} {
		if n := ioctlInt(t, s, SIOCINQ); n != 0 {
			t.Fatalf("empty: SIOCINQ %d", n)
		}
		if _, err := s.Ioctl(SIOCATMARK, 0); !errors.Is(err, syscall.ENOTTY) {
			t.Fatalf("SIOCATMARK: %v, want ENOTTY", err)
		}
	}
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := cli.SendTo([]byte("count me"), 0, ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    *Socket
		want int
	}{{raw, 14 + 20 + 8 + 8}, {dgram, 20 + 8 + 8}} {
		c.s.SetTimeout(5 * time.Second)
		buf := make([]byte, 2048)
		// Wait for the frame with a peek, then compare.
		if _, err := c.s.Recv(buf, MSG_PEEK); err != nil {
			t.Fatal(err)
		}
		if n := ioctlInt(t, c.s, SIOCINQ); n != c.want {
			t.Fatalf("SIOCINQ %d, want %d", n, c.want)
		}
		n, err := c.s.Recv(buf, 0)
		if err != nil || n != c.want {
			t.Fatalf("recv %d %v, SIOCINQ said %d", n, err, c.want)
		}
	}
}

// An AF_UNIX datagram's sender counts it in SIOCOUTQ until it is read,
// or until the receiver closes with it unread.
func TestIoctlUnixDgramOutq(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	r := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	name := &SockaddrUnix{Name: "@ioctl-outq"}
	if err := r.Bind(name); err != nil {
		t.Fatal(err)
	}
	w := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	for _, m := range []string{"abc", "123456789"} {
		if _, err := w.SendTo([]byte(m), 0, name); err != nil {
			t.Fatal(err)
		}
	}
	// Each message is charged its truesize (768 each here, as Linux).
	if v, want := ioctlInt(t, w, SIOCOUTQ), 2*unixMinTruesize; v != want {
		t.Fatalf("two queued: SIOCOUTQ %d, want %d", v, want)
	}
	if v := ioctlInt(t, r, SIOCINQ); v != 3 {
		t.Fatalf("receiver: SIOCINQ %d, want 3", v)
	}
	if _, err := r.Recv(make([]byte, 16), 0); err != nil {
		t.Fatal(err)
	}
	if v, want := ioctlInt(t, w, SIOCOUTQ), unixMinTruesize; v != want {
		t.Fatalf("one read: SIOCOUTQ %d, want %d", v, want)
	}
	r.Close()
	if v := ioctlInt(t, w, SIOCOUTQ); v != 0 {
		t.Fatalf("receiver closed: SIOCOUTQ %d, want 0", v)
	}
	w.Close()
	if _, err := w.Ioctl(SIOCOUTQ, 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("closed: %v, want EBADF", err)
	}
}
