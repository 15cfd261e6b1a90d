package tcp

import (
	"net/netip"
	"time"
)

// BBR congestion control, version 1 (Cardwell et al., "BBR:
// Congestion-Based Congestion Control", ACM Queue 2016; the semantics of
// Linux's tcp_bbr.c): the sender models the path by its bottleneck
// bandwidth (the windowed maximum of delivery rate samples over 10
// round trips) and its round-trip propagation time (the minimum RTT
// over 10 s), paces at gain × bandwidth and keeps cwnd at gain × BDP.
// Loss is not a congestion signal, which is what keeps it at the
// bottleneck rate on a lossy path. cwnd also covers ACK aggregation:
// data delivered in bunches beyond what the bandwidth explains (Linux's
// extra_acked). Not here: Linux's long-term bandwidth sampling for
// token-bucket policers.

type bbrMode uint8

const (
	bbrStartup  bbrMode = iota // doubling the sending rate each round
	bbrDrain                   // draining the queue startup made
	bbrProbeBW                 // cycling pacing gain around the bandwidth
	bbrProbeRTT                // cwnd at 4 segments to remeasure the RTT
)

var bbrModeNames = [...]string{"STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT"}

func (m bbrMode) String() string { return bbrModeNames[m] }

const (
	bbrHighGain      = 2.885 // 2/ln(2): doubles the rate per round
	bbrDrainGain     = 1 / bbrHighGain
	bbrCwndGain      = 2.0
	bbrCycleLen      = 8
	bbrBWRounds      = bbrCycleLen + 2 // the max filter's window, in rounds
	bbrMinRTTWindow  = 10 * time.Second
	bbrProbeRTTTime  = 200 * time.Millisecond
	bbrMinCwndSegs   = 4
	bbrFullBWThresh  = 1.25 // growth that means the pipe is not yet full
	bbrFullBWRounds  = 3
	bbrPacingMargin  = 0.99 // pace 1% below the estimate, as Linux does
	bbrQuantumBudget = 3    // cwnd allowance, in pacing quanta (Linux's bbr_quantization_budget)

	bbrExtraAckedRounds = 5                      // each of the two windows of the aggregation maximum
	bbrExtraAckedMax    = 100 * time.Millisecond // aggregation cwnd at most bw × this
	bbrAckEpochReset    = 1 << 30                // bytes: an epoch this old says nothing more
)

// bbrPacingGains is the PROBE_BW cycle: probe above the estimate for one
// min RTT, drain the queue that made for one, then cruise for six.
var bbrPacingGains = [bbrCycleLen]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

// bwFilter is a windowed maximum (Kathleen Nichols' algorithm, as in
// Linux's lib/win_minmax.c): the best, second best and third best
// samples in disjoint sub-windows, so that the maximum over the window
// is known in O(1) without keeping every sample.
type bwFilter struct {
	s [3]struct{ t, v int64 }
}

func (f *bwFilter) get() int64 { return f.s[0].v }

func (f *bwFilter) reset(t, v int64) {
	for i := range f.s {
		f.s[i].t, f.s[i].v = t, v
	}
}

// update adds sample v at time t (rounds) and returns the maximum over
// the last win.
func (f *bwFilter) update(win, t, v int64) int64 {
	if v >= f.s[0].v || t-f.s[2].t > win {
		f.reset(t, v)
		return v
	}
	if v >= f.s[1].v {
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	} else if v >= f.s[2].v {
		f.s[2].t, f.s[2].v = t, v
	}
	dt := t - f.s[0].t
	switch {
	case dt > win:
		// The best has expired: promote the others.
		f.s[0], f.s[1] = f.s[1], f.s[2]
		f.s[2].t, f.s[2].v = t, v
		if t-f.s[0].t > win {
			f.s[0], f.s[1] = f.s[1], f.s[2]
			f.s[2].t, f.s[2].v = t, v
		}
	case f.s[1].t == f.s[0].t && dt > win/4:
		// A quarter of the window passed without a second choice.
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	case f.s[2].t == f.s[1].t && dt > win/2:
		f.s[2].t, f.s[2].v = t, v
	}
	return f.s[0].v
}

type bbr struct {
	init bool
	mode bbrMode
	bw   bwFilter // bytes per second, over rounds

	minRTT      time.Duration
	minRTTStamp time.Duration

	round          int64 // round trips counted
	nextRoundDeliv int64 // delivered count that ends the round
	roundStart     bool

	fullBW        int64
	fullBWCnt     int
	fullBWReached bool

	cycleIdx   int
	cycleStamp time.Duration

	pacingGain, cwndGain float64

	probeRTTDone      time.Duration
	probeRTTRoundDone bool
	idleRestart       bool

	// ACK aggregation: bytes acknowledged since the epoch began, beyond
	// bw × its age, maximum over two alternating windows of 5 rounds.
	ackEpochStart    time.Duration
	ackEpochAcked    int
	extraAckedWin    [2]int
	extraAckedIdx    int
	extraAckedRounds int

	priorCwnd          int
	packetConservation bool
	prevRecovery       bool // in recovery or loss at the previous sample
	seed               uint32
}

func (*bbr) Name() string { return "bbr" }

func (b *bbr) start(s *CCState, now time.Duration) {
	b.init = true
	b.mode = bbrStartup
	b.pacingGain, b.cwndGain = bbrHighGain, bbrHighGain
	b.minRTT, b.minRTTStamp = s.MinRTT, now
	if b.seed == 0 {
		b.seed = uint32(now) | 1
	}
	b.initPacing(s)
}

// initPacing paces the initial window over the first RTT at high gain.
func (b *bbr) initPacing(s *CCState) {
	rtt := s.SRTT
	if rtt <= 0 {
		rtt = time.Millisecond
	}
	s.PacingRate = int64(bbrHighGain * float64(s.Cwnd) / rtt.Seconds())
}

// OnAck does nothing: BBR acts on OnSample.
func (*bbr) OnAck(s *CCState, acked int, now time.Duration) {}

// saveCwnd remembers cwnd before a loss response (Linux's bbr_save_cwnd).
func (b *bbr) saveCwnd(s *CCState) {
	if !b.prevRecovery && b.mode != bbrProbeRTT {
		b.priorCwnd = s.Cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, s.Cwnd)
	}
}

// OnLoss leaves ssthresh alone: BBR sets cwnd itself, by packet
// conservation for the first round of recovery.
func (b *bbr) OnLoss(s *CCState, now time.Duration) { b.saveCwnd(s) }

// OnRTO treats the timeout as the end of a round and forgets the
// full-pipe evidence (Linux's bbr_set_state on TCP_CA_Loss).
func (b *bbr) OnRTO(s *CCState, now time.Duration) {
	b.saveCwnd(s)
	b.prevRecovery = true
	b.fullBW, b.fullBWCnt = 0, 0
	b.roundStart = true
}

// OnUndo keeps cwnd as BBR set it: a spurious loss never reduced it
// (Linux's bbr_undo_cwnd); only the full-pipe evidence starts over.
func (b *bbr) OnUndo(s *CCState, priorCwnd, priorSsthresh int) {
	b.fullBW, b.fullBWCnt = 0, 0
}

// OnTxStart: restarting after idle, pace at the estimated bandwidth
// rather than at a gain above it (Linux's CA_EVENT_TX_START).
func (b *bbr) OnTxStart(s *CCState, idle, now time.Duration) {
	if !b.init {
		return
	}
	b.idleRestart = true
	if b.mode == bbrProbeBW {
		b.setPacing(s, 1)
	}
}

// bdp is gain × bandwidth × min RTT in bytes, the initial window while
// either is unknown.
func (b *bbr) bdp(s *CCState, gain float64) int {
	bw := b.bw.get()
	if bw == 0 || b.minRTT == 0 {
		return 10 * s.MSS
	}
	return int(gain * float64(bw) * b.minRTT.Seconds())
}

// target is the cwnd for a gain: the BDP plus three pacing quanta (the
// bursts the pacer releases, and ACKs that come in bunches: Linux adds
// three TSO bursts), and in the probing phase two more segments. At a
// high rate over a short path (a TAP, where the RTT is tens of
// microseconds and jitters by more) the quanta, not the BDP, keep the
// pipe full. The quantum here is Linux's TSO goal (1 ms at the rate,
// two segments to 64 KiB), not the pacer's burst (pacing.go), which
// grows past 64 KiB at high rates: the headroom follows what the
// model needs in flight, the burst what the timers can deliver.
func (b *bbr) target(s *CCState, gain float64) int {
	q := min(max(s.PacingRate/1000, int64(2*s.MSS)), 64<<10)
	q = (q + int64(s.MSS) - 1) / int64(s.MSS) * int64(s.MSS)
	t := b.bdp(s, gain) + b.aggregationCwnd() + bbrQuantumBudget*int(q)
	if b.mode == bbrProbeBW && b.cycleIdx == 0 {
		t += 2 * s.MSS
	}
	return max(t, bbrMinCwndSegs*s.MSS)
}

func (b *bbr) setPacing(s *CCState, gain float64) {
	bw := b.bw.get()
	if bw == 0 {
		return
	}
	r := int64(gain * float64(bw) * bbrPacingMargin)
	if b.fullBWReached || r > s.PacingRate {
		s.PacingRate = r
	}
}

// OnSample is BBR's per-ACK model update and control (bbr_main).
func (b *bbr) OnSample(s *CCState, rs rateSample, r *rateState, now time.Duration) {
	if !b.init {
		b.start(s, now)
	}
	b.updateBW(&rs, r)
	b.updateAckAggregation(s, &rs, now)
	b.updateCycle(s, &rs, now)
	b.checkFullBW(&rs)
	b.checkDrain(s, now)
	b.updateMinRTT(s, &rs, r, now)
	b.setPacing(s, b.pacingGain)
	b.setCwnd(s, &rs, r)
}

func (b *bbr) updateBW(rs *rateSample, r *rateState) {
	b.roundStart = false
	if !rs.valid {
		return
	}
	if rs.priorDelivered >= b.nextRoundDeliv {
		b.nextRoundDeliv = r.delivered
		b.round++
		b.roundStart = true
		b.packetConservation = false
	}
	bw := int64(float64(rs.delivered) / rs.interval.Seconds())
	// An app-limited sample says only that the path can do at least
	// that much: it counts when it beats the estimate.
	if !rs.appLimited || bw >= b.bw.get() {
		b.bw.update(bbrBWRounds, b.round, bw)
	}
}

// updateAckAggregation measures how much more was acknowledged in the
// current epoch than the bandwidth estimate explains: ACKs that come in
// bunches (a receiver or host not run on time, Wi-Fi aggregation,
// coalesced interrupts) make the sender wait with the pipe empty unless
// cwnd holds that much more (Linux's bbr_update_ack_aggregation). An
// epoch ends when the ACKs fall behind the expected rate.
func (b *bbr) updateAckAggregation(s *CCState, rs *rateSample, now time.Duration) {
	if rs.acked <= 0 || !rs.valid {
		return
	}
	if b.roundStart {
		b.extraAckedRounds = min(b.extraAckedRounds+1, 31)
		if b.extraAckedRounds >= bbrExtraAckedRounds {
			b.extraAckedRounds = 0
			b.extraAckedIdx ^= 1
			b.extraAckedWin[b.extraAckedIdx] = 0
		}
	}
	expected := int(float64(b.bw.get()) * (now - b.ackEpochStart).Seconds())
	if b.ackEpochAcked <= expected || b.ackEpochAcked+rs.acked >= bbrAckEpochReset {
		b.ackEpochAcked, b.ackEpochStart, expected = 0, now, 0
	}
	b.ackEpochAcked += rs.acked
	extra := min(b.ackEpochAcked-expected, s.Cwnd)
	if extra > b.extraAckedWin[b.extraAckedIdx] {
		b.extraAckedWin[b.extraAckedIdx] = extra
	}
}

func (b *bbr) extraAcked() int { return max(b.extraAckedWin[0], b.extraAckedWin[1]) }

// aggregationCwnd is the cwnd allowance for ACK aggregation, once
// STARTUP has found the bandwidth (Linux's bbr_ack_aggregation_cwnd).
func (b *bbr) aggregationCwnd() int {
	if !b.fullBWReached {
		return 0
	}
	return min(b.extraAcked(), int(float64(b.bw.get())*bbrExtraAckedMax.Seconds()))
}

func (b *bbr) updateCycle(s *CCState, rs *rateSample, now time.Duration) {
	if b.mode != bbrProbeBW || !b.nextPhase(s, rs, now) {
		return
	}
	b.cycleIdx = (b.cycleIdx + 1) % bbrCycleLen
	b.cycleStamp = now
	b.pacingGain = bbrPacingGains[b.cycleIdx]
}

// nextPhase: each phase lasts a min RTT; probing goes on until the
// extra inflight is there (or loss says the pipe is full), draining
// ends early once inflight is down to the BDP.
func (b *bbr) nextPhase(s *CCState, rs *rateSample, now time.Duration) bool {
	full := now-b.cycleStamp > b.minRTT
	switch {
	case b.pacingGain == 1:
		return full
	case b.pacingGain > 1:
		return full && (rs.lost > 0 || rs.priorInFlight >= b.bdp(s, b.pacingGain))
	default:
		return full || rs.priorInFlight <= b.bdp(s, 1)
	}
}

// checkFullBW ends STARTUP when three rounds in a row did not grow the
// bandwidth by 25%.
func (b *bbr) checkFullBW(rs *rateSample) {
	if b.fullBWReached || !b.roundStart || rs.appLimited {
		return
	}
	if bw := b.bw.get(); float64(bw) >= float64(b.fullBW)*bbrFullBWThresh {
		b.fullBW, b.fullBWCnt = bw, 0
		return
	}
	b.fullBWCnt++
	b.fullBWReached = b.fullBWCnt >= bbrFullBWRounds
}

func (b *bbr) checkDrain(s *CCState, now time.Duration) {
	if b.mode == bbrStartup && b.fullBWReached {
		b.mode = bbrDrain
		b.pacingGain, b.cwndGain = bbrDrainGain, bbrHighGain
	}
	if b.mode == bbrDrain && s.InFlight <= b.bdp(s, 1) {
		b.enterProbeBW(now)
	}
}

func (b *bbr) enterProbeBW(now time.Duration) {
	b.mode = bbrProbeBW
	b.cwndGain = bbrCwndGain
	// Start at a random phase other than draining (Linux: cycle_rand),
	// so that flows sharing a bottleneck do not probe in step.
	b.seed = b.seed*1664525 + 1013904223
	b.cycleIdx = bbrCycleLen - 1 - int((b.seed>>16)%(bbrCycleLen-1))
	b.cycleIdx = (b.cycleIdx + 1) % bbrCycleLen
	b.cycleStamp = now
	b.pacingGain = bbrPacingGains[b.cycleIdx]
}

func (b *bbr) resetMode(now time.Duration) {
	if b.fullBWReached {
		b.enterProbeBW(now)
		return
	}
	b.mode = bbrStartup
	b.pacingGain, b.cwndGain = bbrHighGain, bbrHighGain
}

// updateMinRTT keeps the minimum RTT of the last 10 s; when it has not
// been refreshed for that long, PROBE_RTT drains the pipe to 4 segments
// for 200 ms and a round trip to measure it again.
func (b *bbr) updateMinRTT(s *CCState, rs *rateSample, r *rateState, now time.Duration) {
	expired := now > b.minRTTStamp+bbrMinRTTWindow
	if rs.rtt > 0 && (b.minRTT == 0 || rs.rtt < b.minRTT || expired) {
		b.minRTT, b.minRTTStamp = rs.rtt, now
	}
	if expired && !b.idleRestart && b.mode != bbrProbeRTT {
		b.mode = bbrProbeRTT
		b.pacingGain, b.cwndGain = 1, 1
		b.saveCwnd(s)
		b.probeRTTDone = 0
	}
	if b.mode == bbrProbeRTT {
		// Nothing sent in PROBE_RTT says anything about bandwidth.
		r.checkAppLimited(s.InFlight)
		if b.probeRTTDone == 0 && s.InFlight <= bbrMinCwndSegs*s.MSS {
			b.probeRTTDone = now + bbrProbeRTTTime
			b.probeRTTRoundDone = false
			b.nextRoundDeliv = r.delivered
		} else if b.probeRTTDone != 0 {
			if b.roundStart {
				b.probeRTTRoundDone = true
			}
			if b.probeRTTRoundDone && now > b.probeRTTDone {
				b.minRTTStamp = now
				s.Cwnd = max(s.Cwnd, b.priorCwnd)
				b.resetMode(now)
			}
		}
	}
	if rs.acked > 0 {
		b.idleRestart = false
	}
}

// setCwnd moves cwnd towards the target: by packet conservation in the
// first round of recovery, back to what it was after it, and otherwise
// up by what was delivered (Linux's bbr_set_cwnd).
func (b *bbr) setCwnd(s *CCState, rs *rateSample, r *rateState) {
	acked := rs.acked
	mss := s.MSS
	cwnd := s.Cwnd
	if rs.lost > 0 {
		cwnd = max(cwnd-rs.lost, mss)
	}
	inRec := s.InRecovery || s.InLoss
	switch {
	case s.InRecovery && !b.prevRecovery:
		b.packetConservation = true
		b.nextRoundDeliv = r.delivered // a round starts now
		cwnd = s.InFlight + acked
	case !inRec && b.prevRecovery:
		cwnd = max(cwnd, b.priorCwnd)
		b.packetConservation = false
	}
	b.prevRecovery = inRec
	if b.packetConservation {
		cwnd = max(cwnd, s.InFlight+acked)
	} else {
		t := b.target(s, b.cwndGain)
		if b.fullBWReached {
			cwnd = min(cwnd+acked, t)
		} else if cwnd < t {
			cwnd += acked
		}
		cwnd = max(cwnd, bbrMinCwndSegs*mss)
	}
	if b.mode == bbrProbeRTT {
		cwnd = min(cwnd, bbrMinCwndSegs*mss)
	}
	s.Cwnd = cwnd
}

// CCDebug is a snapshot of one connection's sender state for tests and
// benchmarks that compare it with the kernel's (ss -tin): the congestion
// control's window and pacing, BBR's model where BBR runs, and loss
// recovery.
type CCDebug struct {
	Local, Remote      netip.AddrPort
	CC                 string
	Cwnd, InFlight     int // bytes
	Outstanding        int // SND.MAX - SND.UNA, bytes
	SndWnd             int // the peer's window, bytes
	Unsent             int // queued, not yet sent, bytes
	PaceHeld           bool
	PacingRate         int64
	SRTT, MinRTT       time.Duration
	InRecovery         bool
	LostBytes, Sacked  int
	ReoWnd             time.Duration // RACK's reordering window now
	ReorderingSeen     bool
	BBRMode            string // empty without BBR
	BBRBW              int64  // bytes per second
	BBRMinRTT          time.Duration
	BBRRound           int64
	BBRExtraAcked      int // bytes
	BBRPacingGain      float64
	BBRFullBW          bool
	PacketConservation bool
}

// CCDebug lists the state of every connection that has sent data.
func (p *Protocol) CCDebug() []CCDebug {
	p.mu.RLock()
	var eps []*Endpoint
	p.conns.each(func(e *Endpoint) { eps = append(eps, e) })
	p.mu.RUnlock()
	var out []CCDebug
	for _, e := range eps {
		e.lock()
		if e.sndMax != e.iss+1 {
			d := CCDebug{Local: e.local, Remote: e.remote, CC: e.ccName,
				Cwnd: e.ccs.Cwnd, InFlight: e.inFlight(), PacingRate: e.ccs.PacingRate,
				Outstanding: int(e.sndMax - e.sndUna), SndWnd: e.sndWnd, Unsent: max(int(e.dataEnd()-e.sndNxt), 0), PaceHeld: e.paceHeld,
				SRTT: e.srtt, MinRTT: e.minRTT, InRecovery: e.recovery,
				LostBytes: e.rk.lostOut, Sacked: e.sb.sacked, ReoWnd: e.reoWnd(), ReorderingSeen: e.rk.reord}
			if b, ok := e.cc.(*bbr); ok {
				d.BBRMode, d.BBRBW, d.BBRMinRTT, d.BBRRound = b.mode.String(), b.bw.get(), b.minRTT, b.round
				d.BBRExtraAcked, d.BBRPacingGain, d.BBRFullBW = b.extraAcked(), b.pacingGain, b.fullBWReached
				d.PacketConservation = b.packetConservation
			}
			out = append(out, d)
		}
		e.unlock()
	}
	return out
}
