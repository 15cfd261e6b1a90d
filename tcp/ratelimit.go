package tcp

import "time"

// ACKs sent in answer to invalid segments (RFC 5961 challenge ACKs, and
// the duplicate ACKs for out-of-window or PAWS-rejected segments) are
// rate-limited per connection, like Linux's tcp_invalid_ratelimit. There
// is deliberately no global budget: a counter shared by all connections
// is what CVE-2016-5696 uses as an off-path side channel.

// defaultInvalidRateLimit is Linux's net.ipv4.tcp_invalid_ratelimit.
const defaultInvalidRateLimit = 500 * time.Millisecond

// oowKind says why an ACK for an invalid segment would be sent; it picks
// the counter a suppressed ACK is added to.
type oowKind uint8

const (
	oowChallenge oowKind = iota // RFC 5961 challenge ACK
	oowSeq                      // segment outside the receive window
	oowPAWS                     // segment rejected by PAWS
	oowTimeWait                 // segment for a TIME_WAIT record
)

// oowAllowed reports whether an ACK for an invalid segment may go out
// now, given when the last one did (*last, 0 = never); it updates *last.
func (p *Protocol) oowAllowed(last *time.Duration, now time.Duration, kind oowKind) bool {
	if *last != 0 && now-*last < p.cfg.InvalidRateLimit {
		switch kind {
		case oowChallenge:
			p.st.ChallengeACKsLimited.Add(1)
		case oowSeq:
			p.st.ACKSkippedSeq.Add(1)
		case oowPAWS:
			p.st.ACKSkippedPAWS.Add(1)
		case oowTimeWait:
			p.st.ACKSkippedTimeWait.Add(1)
		}
		return false
	}
	*last = now
	return true
}

// sendInvalidAck sends a rate-limited ACK for an invalid segment.
func (e *Endpoint) sendInvalidAck(now time.Duration, kind oowKind) {
	if !e.p.oowAllowed(&e.lastOOWAck, now, kind) {
		return
	}
	if kind == oowChallenge {
		e.p.st.ChallengeACKs.Add(1)
	}
	e.sendAck(now)
}

// plausibleDup reports whether a segment with data or FIN that lies
// wholly before RCV.NXT could be a retransmission of what we took (it is
// within one maximum window of RCV.NXT). Such duplicates are acknowledged
// at once, with a D-SACK, as Linux does; a blind injection almost never
// falls in this range, so it does not escape the rate limit.
func (e *Endpoint) plausibleDup(s *segment) bool {
	n := s.seqLen()
	if n == 0 {
		return false
	}
	end := s.seq + n
	if !seqLEQ(end, e.rcvNxt) || seqLEQ(s.seq, e.irs) {
		return false
	}
	return int(e.rcvNxt-s.seq) <= max(e.rcvCap, 65535<<e.rcvWScale)
}

// oowAck answers a segment dropped by PAWS or the window test: a SYN
// draws a challenge ACK (RFC 5961 4), a plausible duplicate an immediate
// ACK with a D-SACK (RFC 2883), anything else a rate-limited dup ACK.
func (e *Endpoint) oowAck(s *segment, now time.Duration, kind oowKind) {
	if e.reqAck(s, now, kind) { // ipopts_reply.go
		return
	}
	switch {
	case s.has(synFlag):
		e.sendChallengeAck(now)
	case e.plausibleDup(s):
		e.dsackOld(s.seq, s.seq+uint32(len(s.payload)))
		e.sendAck(now)
	default:
		e.sendInvalidAck(now, kind)
	}
}
