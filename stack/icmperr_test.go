package stack

import (
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// The errno (and hardness) of each ICMP error as the Linux kernel gave
// it to a connected UDP socket after an nft reject of each type, with
// IP_RECVERR (the errno) and without (hard: the error still came).
// sockstack used EACCES for the prohibited codes over IPv4 and
// EHOSTUNREACH for ICMPv6 no route, which Linux does not.
func TestICMPErrnoAsLinux(t *testing.T) {
	v4 := []struct {
		code  uint8
		errno syscall.Errno
		hard  bool
	}{
		{wire.ICMPNetUnreach, syscall.ENETUNREACH, false},
		{wire.ICMPHostUnreach, syscall.EHOSTUNREACH, false},
		{wire.ICMPPortUnreach, syscall.ECONNREFUSED, true},
		{wire.ICMPProtoUnreach, syscall.ENOPROTOOPT, true},
		{wire.ICMPNetProhibited, syscall.ENETUNREACH, true},
		{wire.ICMPHostProhibited, syscall.EHOSTUNREACH, true},
		{wire.ICMPAdminProhibited, syscall.EHOSTUNREACH, true},
	}
	for _, c := range v4 {
		if e, h := icmpErr4(wire.ICMPDestUnreach, c.code); e != c.errno || h != c.hard {
			t.Errorf("ICMP unreachable code %d: %v hard %v, want %v hard %v", c.code, e, h, c.errno, c.hard)
		}
		if e := errnoFor(wire.ICMPDestUnreach, c.code); e != c.errno {
			t.Errorf("errnoFor code %d: %v", c.code, e)
		}
	}
	v6 := []struct {
		code  uint8
		errno syscall.Errno
		hard  bool
	}{
		{wire.ICMPv6NoRoute, syscall.ENETUNREACH, false},
		{wire.ICMPv6AdminProhibited, syscall.EACCES, true},
		{wire.ICMPv6AddrUnreach, syscall.EHOSTUNREACH, false},
		{wire.ICMPv6PortUnreach, syscall.ECONNREFUSED, true},
		{wire.ICMPv6SrcPolicyFailed, syscall.EACCES, true},
		{wire.ICMPv6RejectRoute, syscall.EACCES, true},
	}
	for _, c := range v6 {
		if e, h := icmpErr6(wire.ICMPv6DestUnreach, c.code); e != c.errno || h != c.hard {
			t.Errorf("ICMPv6 unreachable code %d: %v hard %v, want %v hard %v", c.code, e, h, c.errno, c.hard)
		}
		if e := errnoFor6(wire.ICMPv6DestUnreach, c.code); e != c.errno {
			t.Errorf("errnoFor6 code %d: %v", c.code, e)
		}
	}
	// Parameter problems: EPROTO and hard on both (icmp_err_convert's
	// callers, icmpv6_err_convert).
	if e, h := icmpErr4(wire.ICMPParamProblem, 0); e != syscall.EPROTO || !h {
		t.Errorf("ICMP parameter problem: %v hard %v", e, h)
	}
	if e, h := icmpErr6(wire.ICMPv6ParamProblem, 0); e != syscall.EPROTO || !h {
		t.Errorf("ICMPv6 parameter problem: %v hard %v", e, h)
	}
}
