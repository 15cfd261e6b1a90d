package tcp

import (
	"time"

	"github.com/sockstack/sockstack/wire"
)

// Explicit Congestion Notification (RFC 3168). Negotiated in the
// handshake (ECE+CWR on the SYN, ECE on the SYN-ACK); then new data
// leaves ECN-capable (ECT(0)), a receiver that gets a CE mark sets ECE
// on every ACK until a segment with CWR arrives, and the sender answers
// ECE like a loss, at most once per window of data, and sets CWR on its
// next new data segment. Independent of the congestion control (BBR,
// like Linux's BBR v1, saves cwnd and otherwise ignores it). See
// docs/DECISIONS.md for the default.

// ECNMode is when a Protocol uses ECN (Linux's net.ipv4.tcp_ecn).
type ECNMode uint8

const (
	// ECNPassive accepts ECN when the peer asks for it and does not ask
	// itself (the default; Linux's tcp_ecn=2).
	ECNPassive ECNMode = iota
	// ECNOn asks for ECN on outgoing connections and accepts it on
	// incoming ones (tcp_ecn=1).
	ECNOn
	// ECNOff neither asks nor accepts (tcp_ecn=0).
	ECNOff
)

// IP ECN field values (RFC 3168 5).
const (
	ecnECT0 = 0x02
	ecnCE   = 0x03
)

// ecnState is one connection's ECN state.
type ecnState struct {
	ok      bool   // negotiated
	asked   bool   // active open: the latest SYN asked for ECN
	echo    bool   // receiver: a CE arrived; ECE on every ACK until CWR
	cwr     bool   // sender: CWR owed on the next new data segment
	high    uint32 // sender: the end of the segment that carried CWR
	reduced bool   // sender: high is set
}

// ecnSynFlags are the ECN flags of a SYN (active) or SYN-ACK. A
// retransmitted SYN does not ask: a middlebox may be dropping
// ECN-setup SYNs (RFC 3168 6.1.1.1; Linux's tcp_ecn_fallback).
func (e *Endpoint) ecnSynFlags(active bool) uint8 {
	if active {
		e.ecn.asked = e.p.cfg.ECN == ECNOn && e.backoff == 0
		if e.ecn.asked {
			return wire.TCPFlagECE | wire.TCPFlagCWR
		}
		return 0
	}
	if e.ecn.ok {
		return wire.TCPFlagECE
	}
	return 0
}

// ecnSynReceived decides ECN for a passive open from the peer's SYN.
func (e *Endpoint) ecnSynReceived(s *segment) {
	e.ecn = ecnState{ok: e.p.cfg.ECN != ECNOff && s.has(wire.TCPFlagECE) && s.has(wire.TCPFlagCWR)}
}

// ecnSynAckReceived decides ECN for an active open: asked for, and the
// SYN-ACK has ECE without CWR (a SYN-ACK with both is a broken echo).
func (e *Endpoint) ecnSynAckReceived(s *segment) {
	e.ecn = ecnState{ok: e.ecn.asked && s.has(wire.TCPFlagECE) && !s.has(wire.TCPFlagCWR)}
}

// ecnInput takes the receiver side of an acceptable segment: CWR ends
// the echo, then a CE mark (re)starts it, and its first ACK goes at once.
func (e *Endpoint) ecnInput(s *segment) {
	if !e.ecn.ok {
		return
	}
	if s.has(wire.TCPFlagCWR) {
		e.ecn.echo = false
	}
	if s.ecn == ecnCE {
		e.p.st.InCEPkts.Add(1)
		if !e.ecn.echo {
			e.ecn.echo = true
			e.ackNow = true
			// The sender may have a small window: the next ACK goes at
			// once too (Linux's tcp_ecn_check_ce: quickack mode, 2).
			e.enterQuickAck(2)
		}
	}
}

// ecnOnAck is the sender's answer to ECE (RFC 3168 6.1.2): reduce as
// for a loss, not during loss recovery (which already reduced), and owe
// CWR. The receiver repeats ECE until our CWR reaches it, so ECE on an
// ACK sent before it saw CWR (one that does not cover the segment that
// carried it) is the same congestion, and no new reduction.
func (e *Endpoint) ecnOnAck(s *segment, now time.Duration) {
	if !e.ecn.ok || !s.has(wire.TCPFlagECE) || s.has(wire.TCPFlagSYN) {
		return
	}
	if e.ecn.cwr || (e.ecn.reduced && seqLT(e.sndUna, e.ecn.high)) {
		return
	}
	e.ecn.reduced, e.ecn.cwr = true, true
	e.ecn.high = e.sndMax // until the CWR segment leaves
	if e.recovery || (e.inLoss && seqGT(e.lossHigh, e.sndUna)) {
		return
	}
	e.p.st.ECNCwndReductions.Add(1)
	e.ccs.InFlight = min(e.ccs.Cwnd, int(e.sndMax-e.sndUna))
	e.ccs.SRTT, e.ccs.MinRTT = e.srtt, e.minRTT
	e.ccAlg().OnLoss(&e.ccs, now)
	e.ccs.bytesAcked = 0
}

// ecnOutput sets the ECN bits of an outgoing segment: ECT(0) on new
// data only (RFC 3168 6.1.5: not on retransmissions, pure ACKs or
// window probes), CWR on the first new data after a reduction, ECE on
// every ACK while the receiver echoes.
func (e *Endpoint) ecnOutput(seg *Segment, seq uint32, n int) {
	if !e.ecn.ok {
		return
	}
	h := &seg.Header
	if h.Flags&(wire.TCPFlagSYN|wire.TCPFlagRST) != 0 {
		return
	}
	if e.ecn.echo && h.Flags&wire.TCPFlagACK != 0 {
		h.Flags |= wire.TCPFlagECE
	}
	if n > 0 && seqGEQ(seq, e.sndMax) {
		seg.TOS |= ecnECT0
		if e.ecn.cwr {
			e.ecn.cwr = false
			e.ecn.high = seq + uint32(n)
			h.Flags |= wire.TCPFlagCWR
		}
	}
}
