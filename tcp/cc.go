package tcp

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// CCState is the part of a connection a congestion control reads and
// writes. Windows are in bytes.
type CCState struct {
	Cwnd, Ssthresh int
	MSS            int
	InFlight       int           // bytes outstanding when the event happened
	SRTT, MinRTT   time.Duration // smoothed and minimum RTT (0 if unknown)
	bytesAcked     int           // ABC accumulator for congestion avoidance

	// RTT is the RTT measured by this ACK (0 if none): the time since
	// the newest segment it delivered first left (HyStart++ needs one
	// sample per ACK, not RFC 6298's one per round trip).
	RTT time.Duration
	// Ack and SndNxt delimit round trips: a round ends when Ack reaches
	// the SndNxt seen at its start (RFC 9406 4.2).
	Ack, SndNxt uint32
	// PacingRate is what a congestion control asks the sender to pace
	// at, in bytes per second; 0 sends as fast as cwnd allows.
	PacingRate int64
	// InRecovery and InLoss tell a rate-based control (BBR) which loss
	// state the sender is in (Linux's TCP_CA_Recovery / TCP_CA_Loss).
	InRecovery, InLoss bool
}

// CongestionControl is a pluggable congestion control algorithm. One
// value is made per connection; it is called with the endpoint lock held.
type CongestionControl interface {
	Name() string
	// OnAck is called for newly acknowledged bytes outside loss recovery.
	OnAck(s *CCState, acked int, now time.Duration)
	// OnLoss is called when fast recovery starts: set Ssthresh (and Cwnd).
	OnLoss(s *CCState, now time.Duration)
	// OnRTO is called on a retransmission timeout.
	OnRTO(s *CCState, now time.Duration)
}

var (
	ccMu       sync.RWMutex
	ccRegistry = map[string]func() CongestionControl{
		"newreno": func() CongestionControl { return &newReno{} },
		"reno":    func() CongestionControl { return &newReno{} },
		"cubic":   newCubic,
		"bbr":     func() CongestionControl { return &bbr{} },
	}
)

// RegisterCongestionControl adds an algorithm under name.
func RegisterCongestionControl(name string, f func() CongestionControl) {
	ccMu.Lock()
	ccRegistry[name] = f
	if name == "cubic" {
		cubicReplaced.Store(true)
	}
	ccMu.Unlock()
}

// CongestionControls lists the registered names.
func CongestionControls() []string {
	ccMu.RLock()
	defer ccMu.RUnlock()
	var n []string
	for k := range ccRegistry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func newCubic() CongestionControl { return &cubic{} }

// cubicReplaced says RegisterCongestionControl replaced "cubic".
var cubicReplaced atomic.Bool

// lazyCC says the connection may make its control on first use rather
// than when it is established: the built-in CUBIC, whose fresh state
// does nothing until an ACK grows cwnd or a loss shrinks it, so an idle
// connection that never sent a full window holds none (112 bytes per
// connection, issue 10). A control that samples every ACK (ccRater) is
// made at once.
func lazyCC(name string) bool { return name == "cubic" && !cubicReplaced.Load() }

// ccAlg returns the connection's congestion control, making it if lazyCC
// left it unmade.
func (e *Endpoint) ccAlg() CongestionControl {
	if e.cc == nil {
		e.cc = newCC(e.ccName)
		if e.cc == nil {
			e.cc = &cubic{}
		}
	}
	return e.cc
}

func newCC(name string) CongestionControl {
	ccMu.RLock()
	f := ccRegistry[name]
	ccMu.RUnlock()
	if f == nil {
		return nil
	}
	return f()
}

// slowStart grows cwnd by every byte acked, up to ssthresh, and returns
// the bytes left over for congestion avoidance. Like Linux's
// tcp_slow_start there is no per-ACK cap (RFC 3465's L is unbounded): a
// receiver that acknowledges many segments at once (stretch ACKs, our
// own batching of up to 16 segments) must still double cwnd per RTT.
func slowStart(s *CCState, acked int) int {
	c := min(s.Cwnd+acked, max(s.Ssthresh, s.Cwnd))
	acked -= c - s.Cwnd
	s.Cwnd = c
	return acked
}

// renoAvoid is congestion avoidance by appropriate byte counting: one
// MSS per cwnd of bytes acked, several at once for a stretch ACK (as
// Linux's tcp_cong_avoid_ai).
func renoAvoid(s *CCState, acked int) {
	s.bytesAcked += acked
	if w := max(s.Cwnd, s.MSS); s.bytesAcked >= w {
		k := s.bytesAcked / w
		s.bytesAcked -= k * w
		s.Cwnd += k * s.MSS
	}
}

// ccIdler is implemented by a congestion control that wants to know the
// sender was idle (nothing in flight) for idle before sending again,
// like Linux's CA_EVENT_TX_START.
type ccIdler interface {
	OnTxStart(s *CCState, idle, now time.Duration)
}

// ccRater is implemented by a congestion control that sets cwnd and the
// pacing rate itself from delivery rate samples on every ACK, in and
// out of recovery (Linux's cong_control hook, used by BBR): the sender
// then skips PRR and the Reno recovery-exit window for it.
type ccRater interface {
	// rs is passed by value so that it stays on the caller's stack.
	OnSample(s *CCState, rs rateSample, r *rateState, now time.Duration)
}

// ccUndoer is implemented by a congestion control with its own answer
// to a loss episode undone by D-SACKs (RFC 3708); the default restores
// cwnd and ssthresh to what they were before the reduction.
type ccUndoer interface {
	OnUndo(s *CCState, priorCwnd, priorSsthresh int)
}

func lossSsthresh(s *CCState) int {
	return max(s.InFlight/2, 2*s.MSS)
}

// newReno is RFC 5681 congestion control with ABC.
type newReno struct{}

func (*newReno) Name() string { return "newreno" }

func (*newReno) OnAck(s *CCState, acked int, now time.Duration) {
	if s.Cwnd < s.Ssthresh {
		acked = slowStart(s, acked)
		if acked == 0 {
			return
		}
	}
	renoAvoid(s, acked) // RFC 5681 / RFC 3465
}

func (*newReno) OnLoss(s *CCState, now time.Duration) {
	s.Ssthresh = lossSsthresh(s)
	s.Cwnd = s.Ssthresh
	s.bytesAcked = 0
}

func (*newReno) OnRTO(s *CCState, now time.Duration) {
	s.Ssthresh = lossSsthresh(s)
	s.Cwnd = s.MSS
	s.bytesAcked = 0
}

// cubic is RFC 9438 CUBIC with HyStart++ (RFC 9406).
type cubic struct {
	hs         hystart
	wMax       float64 // segments, before the last reduction
	k          float64 // seconds
	epochStart time.Duration
	origin     float64 // segments
	wEst       float64 // Reno-friendly estimate, segments
	cwndF      float64 // fractional cwnd in segments
	priorWMax  float64 // wMax before the last reduction (undo)
}

const (
	cubicC    = 0.4
	cubicBeta = 0.7
)

func (*cubic) Name() string { return "cubic" }

func (c *cubic) OnAck(s *CCState, acked int, now time.Duration) {
	if s.Cwnd < s.Ssthresh {
		acked = c.hs.onAck(s, acked)
		if acked == 0 {
			return
		}
	}
	mss := float64(s.MSS)
	cw := float64(s.Cwnd) / mss
	if c.epochStart == 0 {
		c.epochStart = max(now, 1)
		if cw < c.wMax {
			c.k = math.Cbrt((c.wMax - cw) / cubicC)
			c.origin = c.wMax
		} else {
			c.k = 0
			c.origin = cw
		}
		c.wEst = cw
		c.cwndF = cw
	}
	rtt := s.SRTT
	if s.MinRTT > 0 {
		rtt = s.MinRTT
	}
	t := (now - c.epochStart + rtt).Seconds()
	d := t - c.k
	target := c.origin + cubicC*d*d*d
	if target < cw {
		target = cw
	} else if target > 1.5*cw {
		target = 1.5 * cw
	}
	segs := float64(acked) / mss
	// Reno-friendly region (RFC 9438 4.3).
	alpha := 3 * (1 - cubicBeta) / (1 + cubicBeta)
	if c.wEst >= c.wMax {
		alpha = 1
	}
	c.wEst += alpha * segs / cw
	if c.wEst > target {
		target = c.wEst
	}
	c.cwndF = max(c.cwndF, cw) + (target-cw)/cw*segs
	if nc := int(c.cwndF * mss); nc > s.Cwnd {
		s.Cwnd = nc
	}
}

func (c *cubic) reduce(s *CCState) {
	cw := float64(s.Cwnd) / float64(s.MSS)
	c.priorWMax = c.wMax
	if cw < c.wMax {
		c.wMax = cw * (1 + cubicBeta) / 2 // fast convergence
	} else {
		c.wMax = cw
	}
	c.epochStart = 0
	s.Ssthresh = max(int(float64(s.Cwnd)*cubicBeta), 2*s.MSS)
}

// OnTxStart shifts the epoch by the idle time so that the cubic curve
// resumes where it stopped instead of jumping ahead (Linux's
// bictcp_cwnd_event on CA_EVENT_TX_START).
func (c *cubic) OnTxStart(s *CCState, idle, now time.Duration) {
	if c.epochStart == 0 || idle <= 0 {
		return
	}
	c.epochStart = min(c.epochStart+idle, now)
}

// OnUndo takes back a reduction that D-SACKs showed spurious: cwnd,
// ssthresh and the curve's W_max go back, and a new epoch starts from
// the restored window (RFC 9438 4.9).
func (c *cubic) OnUndo(s *CCState, priorCwnd, priorSsthresh int) {
	s.Cwnd = max(s.Cwnd, priorCwnd)
	s.Ssthresh = max(s.Ssthresh, priorSsthresh)
	c.wMax = c.priorWMax
	c.epochStart = 0
}

func (c *cubic) OnLoss(s *CCState, now time.Duration) {
	c.reduce(s)
	s.Cwnd = s.Ssthresh
}

func (c *cubic) OnRTO(s *CCState, now time.Duration) {
	c.reduce(s)
	s.Cwnd = s.MSS
}
