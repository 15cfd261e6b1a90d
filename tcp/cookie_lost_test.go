package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// A cookie connection whose handshake ACK and first data segments are
// lost (the incast scenario: 1,000 workers, a shallow switch buffer)
// first shows the listener a later segment, whose sequence number is
// not ISN+1 and so fails the cookie check. It used to be answered with
// a RST, killing the connection; now it is dropped and the sender's
// retransmission from ISN+1 completes the connection with all its data.
func TestSynCookieLostFirstData(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(1)
	s.inject(seg{flags: fS, seq: 100, win: 65535, opts: peerSynOpts(7)})
	s.expectOne("SYN-ACK")
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	s.inject(seg{flags: fS, seq: 5000, win: 65535, opts: peerSynOpts(9)})
	ck := s.expectOne("cookie SYN-ACK")
	if ck.h.Flags != fSA || ck.h.Ack != 5001 {
		t.Fatal(ck)
	}
	ts := wire.TCPOptions{HasTS: true, TSVal: 10, TSEcr: ck.h.Options.TSVal}
	first, second := []byte("0123456789"), []byte("abcdefghij")
	// The ACK and the first segment are lost; the second arrives.
	s.inject(seg{flags: fPA, seq: 5011, ack: ck.h.Seq + 1, win: 100, opts: ts, data: second})
	s.expectNone("later segment of a cookie connection")
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatal("connection before its cookie was checked")
	}
	if st := s.p.Stats(); st.SynCookiesFailed != 1 || st.SynCookiesRecv != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The retransmission from ISN+1 passes the cookie check.
	s.inject(seg{flags: fPA, seq: 5001, ack: ck.h.Seq + 1, win: 100, opts: ts, data: first})
	c, ra, err := l.Accept()
	if err != nil || ra != s.remote {
		t.Fatal(err, ra)
	}
	s.inject(seg{flags: fPA, seq: 5011, ack: ck.h.Seq + 1, win: 100, opts: ts, data: second})
	if got := string(readAll(c)); got != "0123456789abcdefghij" {
		t.Fatal(got)
	}
	for _, o := range s.out() {
		if o.h.Flags&fR != 0 {
			t.Fatalf("reset sent: %v", o)
		}
	}
	// With no cookie sent recently, a stray ACK is still reset.
	s2 := newScript(t, Config{})
	l2 := s2.p.NewEndpoint()
	l2.Bind(s2.local)
	l2.Listen(16)
	s2.inject(seg{flags: fPA, seq: 5011, ack: 777, win: 100, data: second})
	if r := s2.expectOne("RST"); r.h.Flags != fR || r.h.Seq != 777 {
		t.Fatal(r)
	}
}
