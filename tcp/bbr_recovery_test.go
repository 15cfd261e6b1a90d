package tcp

import (
	"testing"
	"time"
)

// TestBBRRecoveryCwnd: BBR's cwnd through fast recovery is Linux's
// bbr_set_cwnd_to_recover_or_restore: on entering recovery cwnd is cut
// to what is in flight plus what the ACK delivered (packet
// conservation), stays at least that for one round, then grows by
// what is delivered again; on leaving recovery the cwnd saved when it
// began comes back at once. Losses counted by an ACK come off cwnd
// first. (Checked while looking for where the BBR sender lost time on
// the interop frame-loss path: it does not lose it here.)
func TestBBRRecoveryCwnd(t *testing.T) {
	const mss = 1448
	b := &bbr{}
	s := &CCState{Cwnd: 100 * mss, Ssthresh: 1 << 30, MSS: mss, SRTT: time.Millisecond, MinRTT: time.Millisecond}
	var r rateState
	now := time.Second
	b.start(s, now)
	// In PROBE_BW at 1 Gbit/s over 1 ms: the target (2 BDP + 3 quanta,
	// over 300 segments) is far above cwnd, so nothing here is capped.
	b.mode, b.fullBWReached, b.pacingGain, b.cwndGain = bbrProbeBW, true, 1, bbrCwndGain
	b.bw.reset(0, 125_000_000)
	b.minRTT = time.Millisecond
	b.cycleStamp = now
	r.delivered = 1 << 20
	b.nextRoundDeliv = r.delivered
	sample := func(inRec bool, inflight, acked, lost int, priorDelivered int64) {
		t.Helper()
		now += 10 * time.Microsecond
		r.delivered += int64(acked)
		s.InRecovery, s.InFlight = inRec, inflight
		b.OnSample(s, rateSample{valid: true, delivered: int64(acked), interval: time.Millisecond,
			priorDelivered: priorDelivered, rtt: time.Millisecond, acked: acked, lost: lost}, &r, now)
	}
	if tgt := b.target(s, bbrCwndGain); tgt < 300*mss {
		t.Fatalf("target %d segments: the test wants it above 300", tgt/mss)
	}

	// Out of recovery with the pipe full: cwnd grows by what is acked.
	sample(false, 100*mss, 2*mss, 0, r.delivered-100*mss)
	if s.Cwnd != 102*mss {
		t.Fatalf("cwnd %d segments before the loss, want 102", s.Cwnd/mss)
	}
	// Recovery starts (the sender calls OnLoss, then the ACK's sample):
	// cwnd = in flight + acked, whatever it was.
	b.OnLoss(s, now)
	sample(true, 60*mss, 2*mss, 3*mss, r.delivered-100*mss)
	if s.Cwnd != 62*mss || !b.packetConservation {
		t.Fatalf("entering recovery: cwnd %d segments, conservation %v; want 62 (in flight 60 + acked 2), true", s.Cwnd/mss, b.packetConservation)
	}
	// Within the round: never below in flight + acked, no growth beyond.
	sample(true, 61*mss, 1*mss, 0, r.delivered-100*mss)
	if s.Cwnd != 62*mss {
		t.Fatalf("first round of recovery: cwnd %d segments, want 62", s.Cwnd/mss)
	}
	sample(true, 66*mss, 1*mss, 0, r.delivered-100*mss)
	if s.Cwnd != 67*mss {
		t.Fatalf("first round of recovery, more in flight: cwnd %d segments, want 67 (66 + 1)", s.Cwnd/mss)
	}
	// A later loss in the round comes off cwnd, conservation holds the floor.
	sample(true, 60*mss, 1*mss, 4*mss, r.delivered-100*mss)
	if s.Cwnd != 63*mss {
		t.Fatalf("loss in the first round: cwnd %d segments, want 63 (67 - 4)", s.Cwnd/mss)
	}
	// The round ends (a segment sent after recovery began is
	// delivered): cwnd grows by what is acked again.
	sample(true, 60*mss, 2*mss, 0, r.delivered)
	if s.Cwnd != 65*mss || b.packetConservation {
		t.Fatalf("after the first round: cwnd %d segments, conservation %v; want 65, false", s.Cwnd/mss, b.packetConservation)
	}
	// Recovery ends: the cwnd saved when it began is back.
	sample(false, 60*mss, 2*mss, 0, r.delivered)
	if s.Cwnd != 104*mss {
		t.Fatalf("leaving recovery: cwnd %d segments, want 104 (the 102 saved, + 2 acked)", s.Cwnd/mss)
	}
}
