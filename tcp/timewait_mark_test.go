package tcp

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// TestTimeWaitKeepsMark: the TIME_WAIT record answers with the
// connection's SO_MARK, as Linux's tw_mark, so policy routing sends the
// re-ACK the way the connection went; a reset for a segment without a
// connection carries mark 0 (Linux with fwmark_reflect off).
func TestTimeWaitKeepsMark(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(peerSynOpts(100))
	c.SetMark(7)
	c.Close()
	if fin := s.expectOne("FIN"); fin.mark != 7 {
		t.Fatalf("FIN went out with mark %d", fin.mark)
	}
	ts := wire.TCPOptions{HasTS: true, TSVal: 200}
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts})
	if a := s.expectOne("ACK of FIN"); a.mark != 7 {
		t.Fatalf("ACK entering TIME_WAIT: mark %d", a.mark)
	}
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	ts.TSVal++
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts})
	if r := s.expectOne("re-ACK from the TIME_WAIT record"); r.mark != 7 {
		t.Fatalf("TIME_WAIT re-ACK went out with mark %d, want the connection's 7", r.mark)
	}
	s.local = netip.AddrPortFrom(s.local.Addr(), 9) // a port with no connection
	s.inject(seg{flags: fA, seq: 5, ack: 6, win: 100})
	if r := s.expectOne("RST without a connection"); r.h.Flags&wire.TCPFlagRST == 0 || r.mark != 0 {
		t.Fatalf("reply %v mark %d, want a RST with mark 0", r, r.mark)
	}
}
