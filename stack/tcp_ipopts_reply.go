package stack

import (
	"net/netip"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// tcpEchoSrc computes, when TCP asks, what a reply to a TCP segment with
// IPv4 options carries (tcp.EchoSource, tcp/ipopts_reply.go): the
// options as the receive path left them, echoed as Linux's
// ip_options_echo (Record Route and Timestamp with a slot for this host
// where one was left). Source-routed segments never get here: they are
// dropped on receipt (receiveOptions), as Linux with
// accept_source_route=0, so no reply reverses a route. Only segments
// with options make one.
type tcpEchoSrc struct {
	s *Stack
	h wire.IPv4
	// diverted: a transparent rule's packet, whose original destination
	// is this host's address in the slots (Linux routes it as local).
	diverted bool
}

func (e *tcpEchoSrc) EchoOptions() (tcp.IPOptions, bool) {
	var spec netip.Addr
	if e.diverted {
		spec = e.h.Dst()
	}
	o := e.s.recvOptionsAs(e.h, spec) // ipopts_recv.go
	var out [wire.IPv4MaxOptionsLen]byte
	n, ok := e.s.RetOpts(&o, &out)
	if !ok {
		return nil, false
	}
	if n == 0 {
		return nil, true
	}
	c, err := e.s.CompileIPOptions(out[:n])
	if err != nil || c == nil {
		return nil, true
	}
	return c, true
}

// tcpEchoFrom is the echo source of a segment in h (nil without
// options: the common path makes nothing).
func (s *Stack) tcpEchoFrom(h wire.IPv4) tcp.EchoSource {
	if h.HeaderLen() <= wire.IPv4MinHeaderLen {
		return nil
	}
	return &tcpEchoSrc{s: s, h: h}
}

// tcpEchoDiverted is tcpEchoFrom for a segment a transparent rule
// diverted.
func (s *Stack) tcpEchoDiverted(h wire.IPv4) tcp.EchoSource {
	if h.HeaderLen() <= wire.IPv4MinHeaderLen {
		return nil
	}
	return &tcpEchoSrc{s: s, h: h, diverted: true}
}
