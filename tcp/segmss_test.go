package tcp

import (
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// Data segments that carry SACK blocks must still fit the path MTU: the
// blocks take their room from the payload (a full-size segment plus SACK
// blocks would be refused with EMSGSIZE, since TCP sets DF, and stall
// recovery whenever both directions carry data).
func TestDataWithSACKFitsMTU(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(peerSynOpts(100)) // SACK and timestamps, like Linux
	// Out-of-order data from the peer: our next segments carry a SACK block.
	ts := wire.TCPOptions{HasTS: true, TSVal: 101}
	s.inject(seg{flags: fA, seq: 2001, ack: iss + 1, win: 65535, opts: ts, data: make([]byte, 100)})
	s.out()
	if _, err := c.Write(make([]byte, 4*1460)); err != nil {
		t.Fatal(err)
	}
	sawSACK := false
	for _, o := range s.out() {
		if len(o.payload) == 0 {
			continue
		}
		total := 20 + o.h.Len() + len(o.payload) // IP + TCP header + data
		if total > 1500 {
			t.Fatalf("segment of %d bytes exceeds the MTU: %v", total, o)
		}
		sawSACK = sawSACK || o.h.Options.NumSACK > 0
	}
	if !sawSACK {
		t.Fatal("no data segment carried the SACK block")
	}
}
