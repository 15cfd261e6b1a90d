package torture

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// The IPv4 grid over IPv6: the same loss, reordering, duplication and
// wire corruption (link.Impair), and corruption past the FCS, which
// link.Impair applies to IPv4 frames only: hostCorrupt6 does it for
// IPv6 TCP frames as they are delivered to either stack. IPv6 has no
// header checksum, so the bits flipped are those the TCP checksum
// covers (the source address, through the pseudo-header, and the TCP
// segment); the receiver must drop and count every one.
var ipv6 = family{
	af:   socket.AF_INET6,
	a:    netip.MustParsePrefix("fd00:7::1/64"),
	b:    netip.MustParsePrefix("fd00:7::2/64"),
	opts: stack.Options{DADTransmits: -1}, // addresses usable at once; DAD is tested in stack
	v6:   true,
	wrap: func(seed int64, a, b link.Endpoint) (link.Endpoint, link.Endpoint, func(bool) uint64) {
		ca := &hostCorrupt6{Endpoint: a, rng: rand.New(rand.NewPCG(uint64(seed), 61)), p: 0.005}
		cb := &hostCorrupt6{Endpoint: b, rng: rand.New(rand.NewPCG(uint64(seed), 62)), p: 0.005}
		return ca, cb, func(toB bool) uint64 {
			if toB {
				return cb.bad.Load()
			}
			return ca.bad.Load()
		}
	},
	caught: func(st *stack.Stack) uint64 {
		return st.Stats().IP6.InDiscards.Load() + // TCP checksum (pseudo-header included)
			st.Stats().IP6.InBadSource.Load() // a source flipped into a multicast or own address
	},
}

func TestTortureIPv6ImpairedBothWays(t *testing.T) {
	n := size()
	corruptedSeen.Store(0)
	for seed := 1; seed <= seeds(); seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { runSeedOn(t, int64(seed), n, ipv6) })
	}
	if corruptedSeen.Load() == 0 {
		t.Error("no corrupted frame reached a stack: the checksums were not exercised")
	}
}

// hostCorrupt6 flips 1-3 bits of one 16-bit word in a fraction p of the
// IPv6 TCP frames it delivers, within the part the TCP checksum covers.
type hostCorrupt6 struct {
	link.Endpoint
	r   link.Receiver
	mu  sync.Mutex
	rng *rand.Rand
	p   float64
	bad atomic.Uint64
}

func (c *hostCorrupt6) Attach(r link.Receiver) {
	c.r = r
	c.Endpoint.Attach(c)
}

const (
	ethHdr    = 14
	ip6Hdr    = 40
	ip6SrcOff = ethHdr + 8
)

func (c *hostCorrupt6) DeliverFrames(frames [][]byte) {
	c.mu.Lock()
	for i, f := range frames {
		if len(f) < ethHdr+ip6Hdr+20 || binary.BigEndian.Uint16(f[12:]) != 0x86dd || f[ethHdr+6] != 6 {
			continue // not an IPv6 TCP frame without extension headers
		}
		if c.rng.Float64() >= c.p {
			continue
		}
		// The covered words: the source address (8 words) and the
		// segment; the destination is left alone (a flipped one is
		// "not for us", counted elsewhere, and may be another host's).
		words := 8 + (len(f)-ethHdr-ip6Hdr)/2
		w := c.rng.IntN(words)
		off := ip6SrcOff + 2*w
		if w >= 8 {
			off = ethHdr + ip6Hdr + 2*(w-8)
		}
		g := append([]byte(nil), f...) // the frame may be shared with a duplicate
		v := binary.BigEndian.Uint16(g[off:])
		for k := 1 + c.rng.IntN(3); k > 0; {
			bit := uint16(1) << c.rng.IntN(16)
			if v&bit == (binary.BigEndian.Uint16(g[off:]) & bit) {
				v ^= bit
				k--
			}
		}
		binary.BigEndian.PutUint16(g[off:], v)
		frames[i] = g
		c.bad.Add(1)
	}
	c.mu.Unlock()
	c.r.DeliverFrames(frames)
}
