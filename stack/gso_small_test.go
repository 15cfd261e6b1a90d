package stack

import (
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// A super-segment that fits the MTU whole is still cut to its segment
// size: TCP makes one whenever the payload is over its MSS, which a small
// MSS (the peer's, or TCP_MAXSEG) keeps far under the MTU. Sent whole,
// the peer would get segments larger than the MSS it allowed.
func TestGSOSmallMSSUnderMTU(t *testing.T) {
	flags := uint8(wire.TCPFlagACK | wire.TCPFlagPSH)
	h := newHarness(t, Options{})
	for _, mss := range []int{88, 536} {
		payload := randPayload(3*mss + 36)
		sendSuper(t, h, payload, mss, flags)
		checkSegments(t, h.ep.take(), payload, mss, flags)
	}

	ep := &chanEP{mtu: 1500}
	s, _ := newGSO6(t, ep)
	ep.take()
	for _, mss := range []int{88, 536} {
		payload := randPayload(3*mss + 36)
		sendSuper6(t, s, payload, mss, flags)
		checkSegments6(t, ep.take(), payload, mss, flags)
	}
}
