package socket

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// ext6Opt is an options header of n*8 bytes: one experimental option
// per 8 bytes (0x1e, skipped by receivers); next header byte 0 (the stack
// writes the real one).
func ext6Opt(n int, fill byte) []byte {
	h := make([]byte, n*8)
	h[1], h[2], h[3] = byte(n-1), 0x1e, 4
	for i := 4; i < 8; i++ {
		h[i] = fill
	}
	for i := 8; i < len(h); i += 8 {
		h[i], h[i+1] = 0x1e, 6 // one more per 8 bytes (more than 7 bytes of padding is dropped)
	}
	return h
}

// setsockopt(IPV6_HOPOPTS / IPV6_DSTOPTS / IPV6_RTHDRDSTOPTS) checks
// the value as Linux's ipv6_set_opt_hdr: EINVAL for a length under 2,
// not a multiple of 8 or over 2040 and for a header longer than the
// value; a longer value keeps the header's length; empty removes it.
func TestExt6StickyValidation(t *testing.T) {
	_, s, _ := loopReceiver(t, AF_INET6)
	for _, name := range []int{IPV6_HOPOPTS, IPV6_DSTOPTS, IPV6_RTHDRDSTOPTS} {
		for _, bad := range [][]byte{{0}, make([]byte, 12), {0, 1, 0, 0, 0, 0, 0, 0}, make([]byte, 2048)} {
			if err := s.SetSockOpt(IPPROTO_IPV6, name, bad); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("opt %d, %d bytes hdrlen %d: %v, want EINVAL", name, len(bad), bad[1], err)
			}
		}
		v := append(ext6Opt(1, 9), make([]byte, 8)...) // 16 bytes, header of 8
		if err := s.SetSockOpt(IPPROTO_IPV6, name, v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSockOpt(IPPROTO_IPV6, name); err != nil || got != string(v[:8]) {
			t.Fatalf("opt %d: %x %v, want the 8-byte header", name, got, err)
		}
		if err := s.SetSockOpt(IPPROTO_IPV6, name, []byte{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetSockOpt(IPPROTO_IPV6, name); got != "" {
			t.Fatalf("opt %d after removal: %x", name, got)
		}
	}
	n4, _, _ := loopReceiver(t, AF_INET)
	u4 := mustSocket(t, n4, AF_INET, SOCK_DGRAM, 0)
	if err := u4.SetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS, ext6Opt(1, 0)); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("AF_INET: %v", err)
	}
}

// A UDP socket with sticky Hop-by-Hop and Destination Options headers
// sends them; the receiver with IPV6_RECVHOPOPTS and IPV6_RECVDSTOPTS
// gets IPV6_HOPOPTS then IPV6_DSTOPTS, whole, after IPV6_HOPLIMIT;
// without the options it gets nothing; sendmsg control messages replace
// the sticky headers for one datagram.
func TestExt6RecvCmsg(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	hop, dst := ext6Opt(1, 0xaa), ext6Opt(2, 0xbb)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS, hop); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_DSTOPTS, dst); err != nil {
		t.Fatal(err)
	}
	r.SetTimeout(5 * time.Second)
	s.SendTo([]byte("a"), 0, ra)
	if _, ctl, _ := recvCtl(t, r, 256, 0); len(ctl) != 0 {
		t.Fatalf("options off: control %x", ctl)
	}
	for _, v := range []int{IPV6_RECVHOPOPTS, IPV6_RECVDSTOPTS} {
		if got, _ := r.GetSockOpt(IPPROTO_IPV6, v); got != 0 {
			t.Fatalf("getsockopt(%d) before: %v", v, got)
		}
	}
	setOpts(t, r, IPPROTO_IPV6, IPV6_RECVHOPOPTS, IPV6_RECVDSTOPTS, IPV6_RECVHOPLIMIT)
	if got, _ := r.GetSockOpt(IPPROTO_IPV6, IPV6_RECVDSTOPTS); got != 1 {
		t.Fatalf("getsockopt(IPV6_RECVDSTOPTS): %v", got)
	}
	s.SendTo([]byte("a"), 0, ra)
	_, ctl, _ := recvCtl(t, r, 256, 0)
	wantHop := append([]byte{60}, hop[1:]...) // next: Destination Options
	wantDst := append([]byte{17}, dst[1:]...) // next: UDP
	want := append(append(cmsgBytes(IPPROTO_IPV6, IPV6_HOPLIMIT, int32Bytes(64)), cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, wantHop)...), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, wantDst)...)
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control\n%x\nwant\n%x", ctl, want)
	}
	// A control message's Destination Options replace both sticky headers.
	d2 := ext6Opt(1, 0xcc)
	if _, err := s.SendMsgControl([]byte("b"), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, d2), 0, ra); err != nil {
		t.Fatal(err)
	}
	_, ctl, _ = recvCtl(t, r, 256, 0)
	want = append(cmsgBytes(IPPROTO_IPV6, IPV6_HOPLIMIT, int32Bytes(64)), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, append([]byte{17}, d2[1:]...))...)
	if !bytes.Equal(ctl, want) {
		t.Fatalf("per-datagram control\n%x\nwant\n%x", ctl, want)
	}
	// Two Hop-by-Hop messages: EINVAL, as Linux.
	two := append(cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, hop), cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, hop)...)
	if _, err := s.SendMsgControl([]byte("c"), two, 0, ra); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("two IPV6_HOPOPTS: %v", err)
	}
}

// A ping socket takes the headers (getsockopt gives them back) and
// sends none, sticky or per datagram, as Linux's ping_v6_sendmsg; a raw
// ICMPv6 receiver with IPV6_RECVHOPOPTS sees the echo request bare.
func TestExt6PingSendsNone(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	rr := mustSocket(t, n, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)
	setOpts(t, rr, IPPROTO_IPV6, IPV6_RECVHOPOPTS, IPV6_RECVDSTOPTS)
	ps := mustSocket(t, n, AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)
	hop := ext6Opt(1, 0xaa)
	if err := ps.SetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS, hop); err != nil {
		t.Fatal(err)
	}
	if got, _ := ps.GetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS); got != string(hop) {
		t.Fatalf("getsockopt: %x", got)
	}
	echo := []byte{128, 0, 0, 0, 0, 0, 0, 1, 'p'}
	to := Inet6("::1", 0)
	if _, err := ps.SendTo(echo, 0, to); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SendMsgControl(echo, cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, ext6Opt(1, 0xbb)), 0, to); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		// The echo request (the reply, type 129, comes after each).
		for {
			d, ctl, _ := recvCtl(t, rr, 256, 0)
			if d[0] != 128 {
				continue
			}
			if len(ctl) != 0 {
				t.Fatalf("echo request %d: control %x, want none", i, ctl)
			}
			break
		}
	}
}
