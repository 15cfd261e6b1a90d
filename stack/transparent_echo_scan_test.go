package stack

import (
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// A diverted echo reaches every raw ICMP socket that takes it, the
// transparent taker and the others, also with more of them than
// deliverEcho collects in its one scan (echoTakersMax); with no
// transparent one among them none gets it, and it is counted.
func TestTransparentEchoManyRawSockets(t *testing.T) {
	for _, c := range []struct {
		name        string
		others      int
		transparent bool
	}{
		{"few", 2, true},
		{"more_than_collected", echoTakersMax + 2, true},
		{"none_transparent", echoTakersMax + 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, raw := echoHarness(t, c.transparent)
			eps := []*DgramEndpoint{raw}
			for range c.others {
				e := h.s.NewDgram(KindRaw, wire.ProtoICMP)
				t.Cleanup(e.Close)
				eps = append(eps, e)
			}
			h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, echoPayload(5, 1, []byte("all"))))
			b := make([]byte, 256)
			got := 0
			for _, e := range eps {
				if n, _, _, err := e.RecvFrom(b, false); err == nil && n > 20 && string(b[n-3:n]) == "all" {
					got++
				}
			}
			st := h.s.Stats()
			want, noSock := len(eps), uint64(0)
			if !c.transparent {
				want, noSock = 0, 1
			}
			if got != want || st.TProxy.EchoNoSocket.Load() != noSock || st.Raw.InDelivers.Load() != uint64(want) {
				t.Fatalf("%d of %d raw sockets got it (want %d); no-socket %d, raw delivers %d",
					got, len(eps), want, st.TProxy.EchoNoSocket.Load(), st.Raw.InDelivers.Load())
			}
		})
	}
}
