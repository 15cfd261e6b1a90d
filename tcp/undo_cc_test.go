package tcp

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// TestDSACKUndoPerCC: a timeout whose retransmission the peer reports
// as a duplicate is undone per congestion control: CUBIC gets back
// cwnd, ssthresh and its W_max (RFC 9438 4.9), NewReno cwnd and
// ssthresh; BBR, which never reduced for the loss, restores the cwnd
// it saved on leaving the loss state and only forgets its full-pipe
// evidence (Linux's bbr_undo_cwnd).
func TestDSACKUndoPerCC(t *testing.T) {
	for _, cc := range []string{"cubic", "newreno", "bbr"} {
		s := newScript(t, Config{CongestionControl: cc})
		_, c, iss := s.passiveOpen(sackOpts)
		var wMax float64
		if cu, ok := c.cc.(*cubic); ok {
			cu.wMax = 33 // as after an earlier episode
			wMax = cu.wMax
		}
		before := c.Info()
		c.Write(make([]byte, 1000))
		s.out()
		for i := 0; i < 5000 && s.p.Stats().Timeouts == 0; i++ {
			s.clk.Advance(time.Millisecond)
		}
		s.out()
		if i := c.Info(); i.SndCwnd != 1 {
			t.Fatalf("%s: after the RTO: cwnd %d", cc, i.SndCwnd)
		}
		if b, ok := c.cc.(*bbr); ok {
			b.fullBW = 12345
		}
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1001, win: 65535,
			opts: wire.TCPOptions{NumSACK: 1, SACK: [4]wire.SACKBlock{{Left: iss + 1, Right: iss + 1001}}}})
		i := c.Info()
		if s.p.Stats().DSACKUndo != 1 {
			t.Fatalf("%s: DSACKUndo %d", cc, s.p.Stats().DSACKUndo)
		}
		if i.SndCwnd < before.SndCwnd {
			t.Fatalf("%s: cwnd %d after the undo, %d before the episode", cc, i.SndCwnd, before.SndCwnd)
		}
		switch x := c.cc.(type) {
		case *cubic:
			if x.wMax != wMax || i.SndSsthresh != before.SndSsthresh {
				t.Fatalf("cubic: W_max %v ssthresh %d after the undo, want %v and %d", x.wMax, i.SndSsthresh, wMax, before.SndSsthresh)
			}
		case *newReno:
			if i.SndSsthresh != before.SndSsthresh {
				t.Fatalf("newreno: ssthresh %d, want %d", i.SndSsthresh, before.SndSsthresh)
			}
		case *bbr:
			if x.fullBW != 0 {
				t.Fatalf("bbr: full-pipe evidence %d kept", x.fullBW)
			}
		}
	}
}
