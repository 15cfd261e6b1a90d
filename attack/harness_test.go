package attack

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// The lab: one switch with the victim (10.0.0.1), a legitimate client
// (10.0.0.2) and the attacker's raw port (10.0.0.66). The victim's default
// gateway 10.0.0.254 resolves to the attacker's MAC, so packets with
// spoofed off-link sources are answered towards the attacker's port, as
// they would be towards a router. Every test runs inside a synctest
// bubble: the link goroutines and the stacks' timers run on virtual time,
// and synctest.Wait lets the network settle before an assertion.
var (
	victimMAC   = wire.MAC{2, 0, 0, 0, 0, 1}
	clientMAC   = wire.MAC{2, 0, 0, 0, 0, 2}
	attackerMAC = wire.MAC{2, 0, 0, 0, 0, 0x66}

	victimIP   = netip.MustParseAddr("10.0.0.1")
	clientIP   = netip.MustParseAddr("10.0.0.2")
	attackerIP = netip.MustParseAddr("10.0.0.66")
	gatewayIP  = netip.MustParseAddr("10.0.0.254")
)

// scaled returns n, or n/div under the race detector (see raceEnabled).
func scaled(n, div int) int {
	if raceEnabled {
		return n / div
	}
	return n
}

type lab struct {
	t      *testing.T
	sw     *link.Switch
	V      *stack.Stack // the victim
	VNIC   *stack.NIC
	VNet   *socket.Net
	vtx    *txTap       // what the victim transmits
	C      *stack.Stack // the legitimate client
	CNet   *socket.Net
	A      *attacker
	filler *link.SwitchPort // only for warmUp, closed after
	closed bool
	// Set: deliveries to the victim, the client, the attacker wait (warmUp).
	holdV, holdC, holdA atomic.Pointer[chan struct{}]
}

// newLab builds the lab; call it inside synctest.Test.
func newLab(t *testing.T, vopts stack.Options) *lab {
	t.Helper()
	l := &lab{t: t, sw: link.NewSwitch(1500)}
	if vopts.Name == "" {
		vopts.Name = "victim"
	}
	if vopts.Clock == nil {
		vopts.Clock = newVictimClock()
	}
	l.V = stack.New(vopts)
	l.vtx = &txTap{SwitchPort: l.sw.Port(victimMAC), hold: &l.holdV}
	l.VNIC = l.V.AddNIC("eth0", l.vtx)
	must(t, l.VNIC.AddAddress(netip.PrefixFrom(victimIP, 24)))
	l.VNIC.SetStatic(clientIP, clientMAC)
	l.VNIC.SetStatic(gatewayIP, attackerMAC)
	l.VNIC.SetStatic(attackerIP, attackerMAC)
	must(t, l.V.SetDefaultGateway(gatewayIP))
	l.VNet = socket.New(l.V)

	l.C = stack.New(stack.Options{Name: "client"})
	cn := l.C.AddNIC("eth0", gatedPort{l.sw.Port(clientMAC), &l.holdC})
	must(t, cn.AddAddress(netip.PrefixFrom(clientIP, 24)))
	cn.SetStatic(victimIP, victimMAC)
	l.CNet = socket.New(l.C)

	l.A = &attacker{port: l.sw.Port(attackerMAC)}
	l.A.port.Attach(gated{l.A, &l.holdA})
	l.filler = l.sw.Port(fillerMAC)
	l.filler.Attach(discard{})
	t.Cleanup(l.close)
	// Twice: one pass does not always leave a queue at its high-water
	// mark (measured: up to 1.5 MiB of buffers allocated later). Then the
	// filler leaves, so floods during the test do not fill its queue.
	l.warmUp()
	l.warmUp()
	l.filler.Close()
	return l
}

// warmUp fills the link queues of the victim, the client and the
// attacker to their high-water mark, so the buffers the queues keep (a
// batch in delivery plus 1024 queued frames each) are in every "before"
// figure and the heap deltas measure the hosts' state, not the links'.
// Deliveries are held at each port so a full batch and a full queue
// exist at once; the frames come from a filler port, to a MAC nobody has,
// so the switch floods each to every port and the hosts drop them cheaply
// (Link.InNotForUs).
func (l *lab) warmUp() {
	junk := make([]byte, 1514)
	wire.PutEthernet(junk, wire.MAC{2, 0xf1, 0, 0, 0, 0}, fillerMAC, 0x88b5)
	push := func() {
		for i := 0; i < 1100; i++ {
			l.filler.WriteFrames([][]byte{junk}) // full queues drop: fine
		}
	}
	hold := func(ch chan struct{}) {
		for _, p := range []*atomic.Pointer[chan struct{}]{&l.holdV, &l.holdC, &l.holdA} {
			if ch == nil {
				p.Store(nil)
			} else {
				p.Store(&ch)
			}
		}
	}
	ch1, ch2 := make(chan struct{}), make(chan struct{})
	hold(ch1)
	push()
	// Each receiver takes a full batch and stops again; then fill the
	// queues behind it.
	hold(ch2)
	close(ch1)
	synctest.Wait()
	push()
	hold(nil)
	close(ch2)
	synctest.Wait()
}

var fillerMAC = wire.MAC{2, 0, 0, 0, 0, 0xf0}

// discard is a receiver that drops everything (the filler port's).
type discard struct{}

func (discard) DeliverFrames([][]byte) {}

// gated is a receiver that waits while the lab holds deliveries.
type gated struct {
	r    link.Receiver
	hold *atomic.Pointer[chan struct{}]
}

func (g gated) DeliverFrames(fs [][]byte) {
	if ch := g.hold.Load(); ch != nil {
		<-*ch
	}
	g.r.DeliverFrames(fs)
}

// gatedPort is a switch port whose deliveries the lab can hold.
type gatedPort struct {
	*link.SwitchPort
	hold *atomic.Pointer[chan struct{}]
}

func (p gatedPort) Attach(r link.Receiver) { p.SwitchPort.Attach(gated{r, p.hold}) }

func (l *lab) close() {
	if l.closed {
		return
	}
	l.closed = true
	l.C.Close()
	l.V.Close()
	l.A.port.Close()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// txTap is the victim's switch port, watching every frame the victim sends.
type txTap struct {
	*link.SwitchPort
	hold *atomic.Pointer[chan struct{}]
	mu   sync.Mutex
	fn   func(f []byte)
	all  atomic.Uint64
}

func (p *txTap) Attach(r link.Receiver) { p.SwitchPort.Attach(gated{r, p.hold}) }

func (p *txTap) WriteFrames(fs [][]byte) (int, error) {
	p.all.Add(uint64(len(fs)))
	p.mu.Lock()
	fn := p.fn
	p.mu.Unlock()
	if fn != nil {
		for _, f := range fs {
			fn(f)
		}
	}
	return p.SwitchPort.WriteFrames(fs)
}

// watch sets the function that sees each transmitted frame (nil: none).
// It runs on the sender's goroutine and must be safe for concurrent use.
func (p *txTap) watch(fn func(f []byte)) {
	p.mu.Lock()
	p.fn = fn
	p.mu.Unlock()
}

// attacker is a raw frame injector on its own switch port. What reaches
// its port is counted and, when keep is set, kept for the test to read.
type attacker struct {
	port *link.SwitchPort
	mu   sync.Mutex
	keep bool
	rx   [][]byte
	n    atomic.Uint64
}

func (a *attacker) DeliverFrames(fs [][]byte) {
	a.n.Add(uint64(len(fs)))
	a.mu.Lock()
	if a.keep {
		for _, f := range fs {
			a.rx = append(a.rx, append([]byte(nil), f...))
		}
	}
	a.mu.Unlock()
}

// take returns and forgets the kept frames.
func (a *attacker) take() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rx
	a.rx = nil
	return r
}

func (a *attacker) record(on bool) {
	a.mu.Lock()
	a.keep = on
	if !on {
		a.rx = nil
	}
	a.mu.Unlock()
}

// send puts every frame on the wire, waiting for room at a full queue
// (the attacker is as fast as the victim can take frames, never faster:
// the link itself must not be what drops the attack).
func (a *attacker) send(fs ...[]byte) {
	for len(fs) > 0 {
		n, err := a.port.WriteFrames(fs)
		fs = fs[n:]
		if err != nil && err != link.ErrQueueFull {
			return
		}
		if len(fs) > 0 {
			a.port.WaitRoom(nil)
		}
	}
}

// --- frame builders ---

// ipFrame wraps an IPv4 packet in an Ethernet frame.
func ipFrame(dstMAC, srcMAC wire.MAC, h wire.IPv4Header, payload []byte) []byte {
	if h.TTL == 0 {
		h.TTL = 64
	}
	h.TotalLen = h.Len() + len(payload)
	f := make([]byte, wire.EthernetHeaderLen+h.TotalLen)
	wire.PutEthernet(f, dstMAC, srcMAC, wire.EtherTypeIPv4)
	n := h.Put(f[wire.EthernetHeaderLen:])
	copy(f[wire.EthernetHeaderLen+n:], payload)
	return f
}

// tcpFrame is a TCP segment from src to dst, sent by the attacker's MAC.
func tcpFrame(src, dst netip.AddrPort, h wire.TCPHeader, data []byte) []byte {
	h.SrcPort, h.DstPort = src.Port(), dst.Port()
	seg := make([]byte, h.Len()+len(data))
	n := h.Put(seg)
	copy(seg[n:], data)
	wire.TCP(seg).FillChecksum(wire.PseudoHeaderSum(src.Addr().As4(), dst.Addr().As4(), wire.ProtoTCP, len(seg)))
	return ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoTCP, Src: src.Addr(), Dst: dst.Addr(), DF: true}, seg)
}

// udpFrame is a UDP datagram from src to dst, sent by the attacker's MAC.
func udpFrame(src, dst netip.AddrPort, data []byte) []byte {
	u := make([]byte, wire.UDPHeaderLen+len(data))
	wire.PutUDP(u, src.Port(), dst.Port(), len(data))
	copy(u[wire.UDPHeaderLen:], data)
	wire.UDP(u).FillChecksum(wire.PseudoHeaderSum(src.Addr().As4(), dst.Addr().As4(), wire.ProtoUDP, len(u)))
	return ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoUDP, Src: src.Addr(), Dst: dst.Addr()}, u)
}

// echoRequest is an ICMP echo request body.
func echoRequest(id, seq uint16, data []byte) []byte {
	m := make([]byte, wire.ICMPv4HeaderLen+len(data))
	m[0] = wire.ICMPEcho
	wire.ICMPv4(m).SetID(id)
	wire.ICMPv4(m).SetSeq(seq)
	copy(m[8:], data)
	wire.ICMPv4(m).FillChecksum()
	return m
}

// arpFrame is an ARP packet from the attacker's port.
func arpFrame(dst wire.MAC, op uint16, senderMAC wire.MAC, senderIP netip.Addr, targetMAC wire.MAC, targetIP netip.Addr) []byte {
	f := make([]byte, wire.EthernetHeaderLen+wire.ARPLen)
	wire.PutEthernet(f, dst, attackerMAC, wire.EtherTypeARP)
	info := wire.ARPInfo{Op: op, SenderMAC: senderMAC, SenderIP: senderIP, TargetMAC: targetMAC, TargetIP: targetIP}
	info.Put(f[wire.EthernetHeaderLen:])
	return f
}

// parseTCP reads an Ethernet frame as IPv4/TCP; ok is false otherwise.
func parseTCP(f []byte) (ip wire.IPv4, t wire.TCP, ok bool) {
	info, err := wire.ParseEthernet(f)
	if err != nil || info.EtherType != wire.EtherTypeIPv4 {
		return nil, nil, false
	}
	ip, err = wire.ParseIPv4(f[info.HeaderLen:])
	if err != nil || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
		return nil, nil, false
	}
	t, err = wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
	if err != nil {
		return nil, nil, false
	}
	return ip, t, true
}

// spoofed returns the i-th spoofed source, spread over 198.18.0.0/15
// (the benchmarking range), with a port.
func spoofed(i int) netip.AddrPort {
	a := [4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)}
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1024+i%60000))
}

// --- memory and counters ---

// liveHeap is the live heap after a full collection (twice, so that
// sync.Pool victims are gone too).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// counters is every counter of a host: the stack's sections and TCP's.
type counters map[string]uint64

func snap(s *stack.Stack) counters {
	c := counters{}
	for _, st := range s.Stats().Snapshot() {
		c[st.Section+"."+st.Name] = st.Value
	}
	ts := s.TCP.Stats()
	v := reflect.ValueOf(ts)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			c["TCP."+v.Type().Field(i).Name] = f.Uint()
		}
	}
	return c
}

// since is c minus an earlier snapshot (counters that went down, like
// CurrEstab, show as zero).
func (c counters) since(old counters) counters {
	d := counters{}
	for k, v := range c {
		if v > old[k] {
			d[k] = v - old[k]
		}
	}
	return d
}

func (c counters) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, c[k])
	}
	return b.String()
}

// get reads a counter that may not exist in this tree (0 then).
func (c counters) get(name string) uint64 { return c[name] }

// sum adds the named counters.
func (c counters) sum(names ...string) uint64 {
	var s uint64
	for _, n := range names {
		s += c[n]
	}
	return s
}

// measure is one attack's record: the victim's live heap and counters
// before, then report logs both and the difference.
type measure struct {
	t      *testing.T
	name   string
	v      *stack.Stack
	heap0  uint64
	c0     counters
	heap1  uint64
	moved  counters
	virt0  time.Time
	elapse time.Duration
}

func begin(t *testing.T, name string, v *stack.Stack) *measure {
	return &measure{t: t, name: name, v: v, heap0: liveHeap(), c0: snap(v), virt0: time.Now()}
}

// end takes the after-figures and logs them.
func (m *measure) end() *measure {
	m.heap1 = liveHeap()
	m.moved = snap(m.v).since(m.c0)
	m.elapse = time.Since(m.virt0)
	m.t.Logf("%s: victim heap %s -> %s (%+.1f KiB), virtual time %v\n  counters moved: %v",
		m.name, kib(m.heap0), kib(m.heap1), (float64(m.heap1)-float64(m.heap0))/1024, m.elapse, m.moved)
	return m
}

// grew is the heap growth in bytes (negative when it shrank).
func (m *measure) grew() int64 { return int64(m.heap1) - int64(m.heap0) }

func kib(n uint64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }
