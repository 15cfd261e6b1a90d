package stack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Segments whose payload comes in two pieces of any parity (a send ring
// that wraps) leave with a correct checksum and the bytes in order.
func TestTCPOutputChecksumSplitPayload(t *testing.T) {
	h := newHarness(t, Options{})
	data := make([]byte, 1400)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	for _, split := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {1, 1399}, {255, 256}, {301, 1000}, {700, 700}, {1399, 1}, {1400, 0}} {
		p0, p1 := data[:split[0]], data[split[0]:split[0]+split[1]]
		seg := &tcp.Segment{
			Local:  netip.AddrPortFrom(hostAddr, 40000),
			Remote: netip.AddrPortFrom(peerAddr, 80),
			Header: wire.TCPHeader{Seq: 1, Ack: 2, Flags: wire.TCPFlagACK, Window: 100,
				Options: wire.TCPOptions{HasTS: true, TSVal: 5, TSEcr: 6}},
			Payload: [2][]byte{p0, p1},
		}
		if err := (tcpHost{h.s}).Output(seg); err != nil {
			t.Fatalf("split %v: %v", split, err)
		}
		out := h.ep.take()
		if len(out) != 1 {
			t.Fatalf("split %v: %d frames", split, len(out))
		}
		ip := parseOut(t, out[0])
		seg2, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
		if err != nil {
			t.Fatalf("split %v: %v", split, err)
		}
		if want := append(append([]byte(nil), p0...), p1...); !bytes.Equal(seg2.Payload(), want) {
			t.Fatalf("split %v: payload differs", split)
		}
	}
}
