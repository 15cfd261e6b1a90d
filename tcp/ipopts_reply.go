package tcp

import (
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// IPv4 options on what TCP sends in answer to one segment rather than as
// part of a connection, as Linux's ip_send_unicast_reply with
// ip_options_echo: the RST for a segment nobody takes (or that a
// connection refuses), TIME_WAIT's ACKs, the ACK of a SYN_RCVD child for
// an out-of-window segment (Linux's request socket's send_ack) carry the
// incoming segment's options echoed, whatever options the socket had. A
// SYN cookie's child takes the completing ACK's options echoed, as
// Linux's cookie_v4_check (tcp_v4_save_options on the ACK).
//
// The echo is computed only when a reply needs it (EchoSource): a
// connection's own segments never look at it, so a peer whose every
// segment has options costs no compile per segment.

// EchoSource gives, when asked, the options a reply to the segment being
// handled carries (nil: none). ok false: the echo does not fit, and
// Linux's ip_send_unicast_reply then sends no reply at all (a child keeps
// no options instead, as tcp_v4_save_options). TCP asks at most once,
// during the HandleSegment call only.
type EchoSource interface {
	EchoOptions() (o IPOptions, ok bool)
}

// echoValue is an EchoSource of a value known beforehand
// (HandleSegmentEcho).
type echoValue struct{ o IPOptions }

func (v echoValue) EchoOptions() (IPOptions, bool) { return v.o, true }

// replyOpts is what a reply to s carries; ok false: send no reply.
func (s *segment) replyOpts() (IPOptions, bool) {
	if s.echoSrc != nil {
		o, ok := s.echoSrc.EchoOptions()
		s.echo, s.echoBad, s.echoSrc = o, !ok, nil
	}
	return s.echo, !s.echoBad
}

// HandleSegmentEchoFrom is HandleSegment for a segment whose IPv4 header
// had options: es gives what replies to it carry (ipopts_reply.go).
func (p *Protocol) HandleSegmentEchoFrom(src, dst netip.Addr, tos uint8, b []byte, es EchoSource) {
	p.handleSegmentEcho(src, dst, tos, b, nil, 0, es)
}

// HandleSegmentEchoFrom is Protocol.HandleSegmentEchoFrom with ACKs
// deferred to Flush.
func (b *Batch) HandleSegmentEchoFrom(src, dst netip.Addr, tos uint8, seg []byte, es EchoSource) {
	b.p.handleSegmentEcho(src, dst, tos, seg, b, 0, es)
}

// HandleDivertedEchoFrom is HandleDiverted for a segment with IPv4
// options: a transparent listener's child takes them echoed as any
// listener's child does, and a reset carries them.
func (p *Protocol) HandleDivertedEchoFrom(src, dst netip.Addr, tos uint8, b []byte, port uint16, es EchoSource) {
	p.handleSegmentEcho(src, dst, tos, b, nil, port, es)
}

// HandleDivertedEchoFrom is Protocol.HandleDivertedEchoFrom with ACKs
// deferred to Flush.
func (b *Batch) HandleDivertedEchoFrom(src, dst netip.Addr, tos uint8, seg []byte, port uint16, es EchoSource) {
	b.p.handleSegmentEcho(src, dst, tos, seg, b, port, es)
}

// sendReply sends a header-only segment that belongs to no endpoint,
// with opts (nil: none) in its IP header.
func (p *Protocol) sendReply(k connKey, h *wire.TCPHeader, tos, ttl uint8, hopZero bool, opts IPOptions, mark uint32, dev int32) {
	seg := p.segPool.Get().(*Segment)
	*seg = Segment{Local: k.local, Remote: k.remote, Header: *h, TOS: tos, TTL: ttl, HopZero: hopZero, IPOpts: opts, Mark: mark, Dev: int(dev)}
	seg.Header.SrcPort, seg.Header.DstPort = k.local.Port(), k.remote.Port()
	if h.Flags&wire.TCPFlagRST != 0 {
		p.st.OutRsts.Add(1)
	}
	p.st.OutSegs.Add(1)
	if p.host.Output(seg) != nil {
		p.st.OutputErrors.Add(1)
	}
	p.segPool.Put(seg)
}

// reqAck sends the ACK a SYN_RCVD child of a listener answers an
// invalid segment with when that segment's echoed options differ from
// the child's own (Linux's tcp_v4_reqsk_send_ack echoes the segment's,
// not the SYN's); it reports whether it took the segment. Otherwise the
// child's usual ACK is the same segment.
func (e *Endpoint) reqAck(s *segment, now time.Duration, kind oowKind) bool {
	if e.state != StateSynRcvd || e.parent == nil {
		return false
	}
	opts, ok := s.replyOpts()
	if ok && opts == e.segIPOpts() {
		return false
	}
	if s.has(synFlag) {
		kind = oowChallenge
	}
	if !e.p.oowAllowed(&e.lastOOWAck, now, kind) {
		return true
	}
	if kind == oowChallenge {
		e.p.st.ChallengeACKs.Add(1)
	}
	if !ok {
		return true // Linux sends nothing when the echo does not fit
	}
	h := wire.TCPHeader{Seq: e.sndMax, Ack: e.rcvNxt, Flags: wire.TCPFlagACK,
		Window: uint16(min(e.rcvWindow()>>e.rcvWScale, 65535))}
	if e.tsOK {
		h.Options.HasTS, h.Options.TSVal, h.Options.TSEcr = true, e.tsNow(now), e.tsRecent
	}
	e.p.sendReply(connKey{e.local, e.remote}, &h, e.tos, e.ttl, e.hopZero, opts, e.mark, 0) // no device: Linux's reqsk ACK has no oif
	return true
}
