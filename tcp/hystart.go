package tcp

import "time"

// HyStart++ (RFC 9406) for CUBIC's initial slow start: when the minimum
// RTT of a round grows by a threshold over the previous round's, a
// queue is building, so slow start gives way to Conservative Slow Start
// (a quarter of the growth) for up to five rounds, then to congestion
// avoidance, before the queue overflows. If the RTT falls back during
// CSS, the increase was spurious and slow start resumes.
//
// The increase per ACK is not capped by L (RFC 9406 4.3 suggests 8 SMSS
// when not paced): like slowStart, stretch ACKs must still double cwnd
// per round.

const (
	hsMinRTTThresh = 4 * time.Millisecond
	hsMaxRTTThresh = 16 * time.Millisecond
	hsMinRTTDiv    = 8
	hsNRTTSample   = 8
	hsCSSGrowthDiv = 4
	hsCSSRounds    = 5
	hsInfinite     = time.Duration(1<<63 - 1)
	initSsthresh   = 1 << 30 // what establish sets: "arbitrarily high"
)

type hystart struct {
	started      bool
	css          bool // beside started: cubic (which holds a hystart) fits 112 bytes
	windowEnd    uint32
	lastRoundMin time.Duration
	curRoundMin  time.Duration
	samples      int
	cssBaseline  time.Duration
	cssRounds    int
	cssAcc       int // bytes acked in CSS not yet turned into cwnd
}

// onAck runs one ACK of slow start and returns the bytes acked beyond
// ssthresh (for congestion avoidance). Only the initial slow start uses
// it; after a loss cwnd regrows by standard slow start.
func (h *hystart) onAck(s *CCState, acked int) int {
	if s.Ssthresh < initSsthresh {
		return slowStart(s, acked)
	}
	if !h.started || seqGEQ(s.Ack, h.windowEnd) {
		// A new round.
		if h.started {
			h.lastRoundMin = h.curRoundMin
			if h.css {
				h.cssRounds++
			}
		} else {
			h.lastRoundMin = hsInfinite
		}
		h.started = true
		h.curRoundMin = hsInfinite
		h.samples = 0
		h.windowEnd = s.SndNxt
	}
	if s.RTT > 0 {
		h.curRoundMin = min(h.curRoundMin, s.RTT)
		h.samples++
	}
	if h.css {
		if h.samples >= hsNRTTSample && h.curRoundMin < h.cssBaseline {
			// The RTT came back down: the rise was not a queue.
			h.css, h.cssBaseline, h.cssRounds = false, hsInfinite, 0
		} else if h.cssRounds >= hsCSSRounds {
			s.Ssthresh = s.Cwnd // on to congestion avoidance
			h.css = false
			return acked
		}
	} else if h.samples >= hsNRTTSample && h.curRoundMin != hsInfinite && h.lastRoundMin != hsInfinite {
		thresh := min(max(h.lastRoundMin/hsMinRTTDiv, hsMinRTTThresh), hsMaxRTTThresh)
		if h.curRoundMin >= h.lastRoundMin+thresh {
			h.css, h.cssBaseline, h.cssRounds, h.cssAcc = true, h.curRoundMin, 0, 0
		}
	}
	if h.css {
		h.cssAcc += acked
		inc := h.cssAcc / hsCSSGrowthDiv
		h.cssAcc -= inc * hsCSSGrowthDiv
		s.Cwnd += inc
		return 0
	}
	return slowStart(s, acked)
}
