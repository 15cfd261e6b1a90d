package tcp

import "time"

// Congestion events outside loss recovery proper: a loss repaired by a
// tail loss probe (RFC 8985 7.4), slow-start restart after idle (RFC
// 5681 4.1), CUBIC's epoch after idle, and the TCP_CORK ceiling.

// corkCeiling is how long TCP_CORK may hold a partial segment when
// nothing is in flight (the 200 ms tcp(7) documents).
const corkCeiling = 200 * time.Millisecond

// txStart runs before a data segment leaves. If nothing was in flight,
// the congestion control learns how long the sender was idle (Linux's
// CA_EVENT_TX_START), and after an idle longer than the RTO cwnd
// restarts (Linux's tcp_slow_start_after_idle=1): the network may have
// changed, so a full old cwnd must not be sent as one burst.
func (e *Endpoint) txStart(now time.Duration) {
	if e.sndUna != e.sndMax || e.lastDataSent == 0 || (e.cc == nil && !e.everConnected) {
		return
	}
	idle := now - e.lastDataSent
	// A control lazyCC has not made yet is fresh: idle moves nothing.
	if ci, ok := e.cc.(ccIdler); ok {
		ci.OnTxStart(&e.ccs, idle, now)
	}
	if idle > e.rto {
		e.cwndRestart(idle)
	}
}

// cwndRestart halves cwnd for every RTO of idle beyond the first, down
// to the initial window (Linux's tcp_cwnd_restart); ssthresh keeps 3/4
// of the old cwnd so that slow start regains it quickly.
func (e *Endpoint) cwndRestart(idle time.Duration) {
	restart := min(initCwndSegs*e.sndMSS, e.ccs.Cwnd)
	cwnd := e.ccs.Cwnd
	if !e.recovery {
		e.ccs.Ssthresh = max(e.ccs.Ssthresh, cwnd/2+cwnd/4)
	}
	for idle -= e.rto; idle > 0 && cwnd > restart; idle -= e.rto {
		cwnd /= 2
	}
	e.ccs.Cwnd = max(cwnd, restart)
	e.ccs.bytesAcked = 0
}

// tlpSent notes that a tail loss probe (always a retransmission here)
// went out, so that its ACK can tell whether it repaired a loss.
func (e *Endpoint) tlpSent() {
	if !e.recovery {
		e.tlpRetrans, e.tlpHigh = true, e.sndMax
	}
}

// tlpAcked decides a probe's episode on an ACK (RFC 8985 7.4, Linux's
// tcp_process_tlp_ack): a D-SACK, or a pure duplicate ACK once the
// probe's data is acknowledged, says the original arrived too, so
// nothing was lost; an ACK beyond the probe without either says the
// probe repaired a loss, and cwnd is reduced as for any loss.
func (e *Endpoint) tlpAcked(prevUna uint32, prevDSACKs uint32, ack uint32, pureDup bool, now time.Duration) {
	if !e.tlpRetrans {
		return
	}
	if e.recovery {
		e.tlpRetrans = false // recovery reduces cwnd itself
		return
	}
	if seqLT(ack, e.tlpHigh) {
		return
	}
	switch {
	case e.dsacks != prevDSACKs:
		e.tlpRetrans = false
	case seqGT(ack, e.tlpHigh):
		e.tlpRetrans = false
		e.ccs.InFlight = e.ccs.Cwnd
		e.ccs.SRTT, e.ccs.MinRTT = e.srtt, e.minRTT
		e.ccAlg().OnLoss(&e.ccs, now)
	case ack == prevUna && pureDup:
		e.tlpRetrans = false
	}
}

// corkHold is called when TCP_CORK keeps a partial segment back: with
// nothing in flight no ACK will release it, so the persist timer sends
// it after corkCeiling (it sends what the window allows).
func (e *Endpoint) corkHold(now time.Duration) {
	if e.sndUna == e.sndMax && e.persistAt == 0 {
		e.persistAt = now + corkCeiling
		e.armTimer(e.persistAt)
	}
}
