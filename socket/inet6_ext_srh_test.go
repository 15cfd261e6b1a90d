package socket

import (
	"errors"
	"syscall"
	"testing"
)

// srhVal is an SRH (type 4) of n segments and tlv, segments left sl,
// last entry last.
func srhVal(n, sl, last int, tlv ...byte) []byte {
	h := make([]byte, 8+16*n, 8+16*n+len(tlv))
	h = append(h, tlv...)
	h[1], h[2], h[3], h[4] = byte(len(h)/8-1), 4, byte(sl), byte(last)
	return h
}

// setsockopt(IPV6_RTHDR) on UDP, TCP and ping sockets takes a Segment
// Routing Header that passes Linux's seg6_validate_srh and refuses, with
// EINVAL, other routing types and malformed SRHs, keeping what was set;
// getsockopt gives it back; empty removes it. As a sendmsg control
// message a routing header is EINVAL whatever its type, as on Linux.
func TestSRHStickyValidation(t *testing.T) {
	n, _, _ := loopReceiver(t, AF_INET6)
	good := srhVal(2, 1, 1)
	for _, k := range []struct {
		name      string
		typ, prot int
	}{{"udp", SOCK_DGRAM, 0}, {"tcp", SOCK_STREAM, 0}, {"ping", SOCK_DGRAM, IPPROTO_ICMPV6}} {
		s := mustSocket(t, n, AF_INET6, k.typ, k.prot)
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RTHDR, good); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		for _, bad := range []struct {
			what string
			v    []byte
		}{
			{"type 0", append([]byte{0, 2, 0, 1, 0, 0, 0, 0}, make([]byte, 16)...)},
			{"type 2", append([]byte{0, 2, 2, 1, 0, 0, 0, 0}, make([]byte, 16)...)},
			{"value longer than hdrlen", append(srhVal(1, 0, 0), make([]byte, 8)...)},
			{"segments left past last entry", srhVal(2, 2, 1)},
			{"last entry past the room", srhVal(2, 1, 2)},
			{"no segment room", srhVal(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
			{"TLV past the end", srhVal(1, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0)},
			{"Pad1 read as a TLV, then past the end", srhVal(1, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0)},
		} {
			if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RTHDR, bad.v); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s: %s: %v, want EINVAL", k.name, bad.what, err)
			}
		}
		// TLVs that fill the header exactly: taken.
		withTLV := srhVal(3, 0, 2, 0, 0, 0, 0, 1, 2, 0, 0)
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RTHDR, withTLV); err != nil {
			t.Fatalf("%s: SRH with TLVs: %v", k.name, err)
		}
		if v, err := s.GetSockOpt(IPPROTO_IPV6, IPV6_RTHDR); err != nil || v != string(withTLV) {
			t.Fatalf("%s: getsockopt %x %v", k.name, v, err)
		}
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RTHDR, []byte{}); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.GetSockOpt(IPPROTO_IPV6, IPV6_RTHDR); v != "" {
			t.Fatalf("%s: after removal %x", k.name, v)
		}
	}
	u := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	for _, typ := range []int{IPV6_RTHDR, IPV6_2292RTHDR} {
		_, err := u.SendMsgControl([]byte("x"), cmsgBytes(IPPROTO_IPV6, typ, good), 0, Inet6("::1", 9))
		errIs(t, "SRH control message", err, syscall.EINVAL)
	}
}
