package tcp

import (
	"testing"
	"unsafe"

	"github.com/sockstack/sockstack/wire"
)

// TestTimeWaitKeepsHops: the TIME_WAIT record answers with the
// connection's TTL / hop limit, 0 (IPV6_UNICAST_HOPS 0) included, not
// with the host default (Linux uses the default here: docs/DECISIONS.md
// says why sockstack does not). The record stays in its size class (a
// bool in the padding).
func TestTimeWaitKeepsHops(t *testing.T) {
	if n := unsafe.Sizeof(twRecord{}); n > 160 {
		t.Fatalf("twRecord is %d bytes, over its 160-byte size class", n)
	}
	for _, ttl := range []int{0, 7} {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(peerSynOpts(100))
		if err := c.SetTTL(ttl); err != nil {
			t.Fatal(err)
		}
		c.Close()
		fin := s.expectOne("FIN")
		if int(fin.ttl) != ttl || fin.hopZero != (ttl == 0) {
			t.Fatalf("ttl %d: FIN went out with ttl %d hopZero %v", ttl, fin.ttl, fin.hopZero)
		}
		ts := wire.TCPOptions{HasTS: true, TSVal: 200}
		s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts})
		a := s.expectOne("ACK of FIN")
		if !inTimeWait(c) {
			t.Fatal(c.State())
		}
		if int(a.ttl) != ttl || a.hopZero != (ttl == 0) {
			t.Fatalf("ttl %d: ACK entering TIME_WAIT: ttl %d hopZero %v", ttl, a.ttl, a.hopZero)
		}
		ts.TSVal++
		s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535, opts: ts})
		r := s.expectOne("re-ACK from the TIME_WAIT record")
		if int(r.ttl) != ttl || r.hopZero != (ttl == 0) {
			t.Fatalf("ttl %d: TIME_WAIT re-ACK went out with ttl %d hopZero %v (the host default)", ttl, r.ttl, r.hopZero)
		}
	}
}
