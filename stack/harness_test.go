package stack

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// chanEP is a test link: frames the stack writes are captured; frames
// injected are delivered synchronously on the test goroutine.
type chanEP struct {
	mu    sync.Mutex
	out   [][]byte
	recv  link.Receiver
	stats link.Stats
	mtu   int
	// discard drops written frames instead of keeping them (benchmarks).
	discard bool
	// onWrite, when set, sees every written frame after it was captured.
	onWrite func(f []byte)
	// skip, when set, leaves out the written frames it matches.
	skip func(f []byte) bool
}

func (c *chanEP) MTU() int               { return c.mtu }
func (c *chanEP) Kind() link.Kind        { return link.KindEthernet }
func (c *chanEP) HardwareAddr() wire.MAC { return hostMAC }
func (c *chanEP) Attach(r link.Receiver) { c.recv = r }
func (c *chanEP) Stats() *link.Stats     { return &c.stats }
func (c *chanEP) Close() error           { return nil }
func (c *chanEP) WriteFrames(fs [][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.discard {
		return len(fs), nil
	}
	for _, f := range fs {
		if c.skip != nil && c.skip(f) {
			continue
		}
		c.out = append(c.out, append([]byte(nil), f...))
	}
	if hook := c.onWrite; hook != nil {
		// Outside the lock: the hook may send through the stack again.
		c.mu.Unlock()
		for _, f := range fs {
			hook(f)
		}
		c.mu.Lock()
	}
	return len(fs), nil
}

func (c *chanEP) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.out
	c.out = nil
	return o
}

// ndpOrMLD matches the neighbour discovery and MLD messages a host's
// timers send by themselves (router solicitations, reports, DAD), which
// a test counting its own frames must not see: they come when the
// timer goroutines get to run, after the test's first take or not.
func ndpOrMLD(f []byte) bool {
	if len(f) < 14+40+1 || wire.Ethernet(f).EtherType() != wire.EtherTypeIPv6 {
		return false
	}
	nh, off := f[14+6], 14+40
	if nh == wire.ProtoHopByHop && len(f) > off+8 {
		nh, off = f[off], off+8*(int(f[off+1])+1)
	}
	if nh != wire.ProtoICMPv6 || len(f) <= off {
		return false
	}
	switch f[off] {
	case wire.ICMPv6RouterSolicit, wire.ICMPv6NeighborSolic, wire.ICMPv6NeighborAdvert,
		wire.ICMPv6MLDQuery, wire.ICMPv6MLDReport, wire.ICMPv6MLDDone, wire.ICMPv6MLDv2Report:
		return true
	}
	return false
}

func (c *chanEP) inject(f []byte) { c.recv.DeliverFrames([][]byte{f}) }

var (
	hostMAC  = wire.MAC{2, 0, 0, 0, 0, 1}
	peerMAC  = wire.MAC{2, 0, 0, 0, 0, 2}
	hostAddr = netip.MustParseAddr("10.0.0.1")
	peerAddr = netip.MustParseAddr("10.0.0.2")
)

type harness struct {
	t   *testing.T
	s   *Stack
	ep  *chanEP
	nic *NIC
	clk *clock.Manual
}

func newHarness(t *testing.T, opts Options) *harness {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	opts.Clock = clk
	s := New(opts)
	ep := &chanEP{mtu: 1500}
	nic := s.AddNIC("eth0", ep)
	nic.AddAddress(netip.PrefixFrom(hostAddr, 24))
	nic.SetStatic(peerAddr, peerMAC)
	ep.take() // gratuitous ARP
	t.Cleanup(s.Close)
	return &harness{t: t, s: s, ep: ep, nic: nic, clk: clk}
}

// ipFrame builds an Ethernet frame carrying an IPv4 packet from the peer.
func ipFrame(h wire.IPv4Header, payload []byte) []byte {
	h.TotalLen = h.Len() + len(payload)
	if h.TTL == 0 {
		h.TTL = 64
	}
	if !h.Src.IsValid() {
		h.Src = peerAddr
	}
	if !h.Dst.IsValid() {
		h.Dst = hostAddr
	}
	f := make([]byte, 14+h.TotalLen)
	wire.PutEthernet(f, hostMAC, peerMAC, wire.EtherTypeIPv4)
	n := h.Put(f[14:])
	copy(f[14+n:], payload)
	return f
}

func udpPayload(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8+len(data))
	wire.PutUDP(u, sport, dport, len(data))
	copy(u[8:], data)
	wire.UDP(u).FillChecksum(wire.PseudoHeaderSum(src.As4(), dst.As4(), wire.ProtoUDP, len(u)))
	return u
}

func echoPayload(id, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = wire.ICMPEcho
	wire.ICMPv4(m).SetID(id)
	wire.ICMPv4(m).SetSeq(seq)
	copy(m[8:], data)
	wire.ICMPv4(m).FillChecksum()
	return m
}

// parseOut parses a captured frame as IPv4.
func parseOut(t *testing.T, f []byte) wire.IPv4 {
	t.Helper()
	info, err := wire.ParseEthernet(f)
	if err != nil || info.EtherType != wire.EtherTypeIPv4 {
		t.Fatalf("not an IPv4 frame: %x", f)
	}
	h, err := wire.ParseIPv4(f[info.HeaderLen:])
	if err != nil {
		t.Fatalf("bad IPv4 out: %v", err)
	}
	return h
}
