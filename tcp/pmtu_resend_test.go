package tcp

import (
	"testing"
	"time"
)

// A Packet Too Big (or fragmentation needed) for data in flight resends
// it at once in smaller segments. That resend restarts the RTO as any
// retransmission does (Linux's tcp_simple_retransmit ->
// tcp_xmit_retransmit_queue -> tcp_rearm_rto): a tail loss probe armed
// for the segments it replaced would resend the tail a few round trips
// of a fast path later, before an ACK of the resend could be expected.
func TestFragNeededResendRestartsRTO(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(sackOpts)
	// An RTT sample of 10 ms (the handshake's was 0): the probe is due a
	// few milliseconds after a send.
	c.Write(make([]byte, 100))
	s.expectOne("100 bytes")
	s.clk.Advance(10 * time.Millisecond)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 101, win: 65535})
	s.out()
	c.Write(make([]byte, 3000))
	if o := s.out(); len(o) != 3 {
		t.Fatalf("3000 bytes: %v", o)
	}
	s.clk.Advance(time.Millisecond)
	s.p.HandleError(s.local, s.remote, iss+101, ErrFragNeeded, 1000)
	o := s.out()
	got := 0
	for _, p := range o {
		got += len(p.payload)
	}
	if len(o) != 4 || o[0].h.Seq != iss+101 || len(o[0].payload) != 960 || got != 3000 {
		t.Fatalf("resent after the ICMP: %v", o)
	}
	// Nothing more until the RTO, which resends the first segment.
	p, el := s.waitOne(2 * time.Second)
	if el < minRTO || p.h.Seq != iss+101 || len(p.payload) != 960 {
		t.Fatalf("after the resend: %v after %v, want the first segment after the RTO (>= %v)", p, el, minRTO)
	}
	if st := s.p.Stats(); st.TLPProbes != 0 {
		t.Fatalf("%d tail loss probes", st.TLPProbes)
	}
}
