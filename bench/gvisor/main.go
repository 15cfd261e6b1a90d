// Command gvisor measures BENCH.md's five figures (bulk, rr, conn, mem,
// udp) for gVisor's netstack, sockstack and Linux loopback in one run, with
// the same measurement code (sockstack's perf package) for all three, and
// prints a markdown table with the ratio sockstack/gVisor.
//
// It lives in its own module so that the main module never depends on
// gVisor.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/sockstack/sockstack/perf"
)

// linkQueue is the channel.Endpoint queue length per direction (BENCH.md).
const linkQueue = 1024

// gvisorEnv returns two gVisor stacks, 10.0.0.1 (A) and 10.0.0.2 (B),
// joined by channel.Endpoint links with the given IP MTU, behind a
// gvLink giving them the run's link semantics. One goroutine per
// direction takes each outbound frame off one endpoint's queue, copies
// it into a fresh packet buffer (as a real link would) and injects it
// into the other endpoint. Frames carry no link header: channel.Endpoint
// is an IP-level link, which is how gVisor's own tests use it.
//
// With gso the link takes super-segments whole, as sockstack's in-memory
// link does: gVisor's TCP hands it packets of up to 64 KB (the ceiling
// sockstack's link has, not channel.Endpoint's 32 KB) with a partial
// checksum (HostGSOSupported, what its fdbased link does with a TAP's
// virtio-net header), and the receiving stack takes them whole without
// verifying the checksum (RX checksum offload), as sockstack's does.
// GVisorGSOSupported would not do: gVisor's TCP then cuts its large
// segments to the MSS itself before the link (sendTCPBatch), so nothing
// above the MTU crosses it.
func gvisorEnv(mtu int, mode perf.LinkMode, gso bool) (*perf.Env, error) {
	p, err := newGvPair(mtu, mode, gso)
	if err != nil {
		return nil, err
	}
	return p.env, nil
}

// gvPair is gvisorEnv's Env with its two links (A's and B's outbound).
type gvPair struct {
	env    *perf.Env
	ea, eb *gvLink
}

func newGvPair(mtu int, mode perf.LinkMode, gso bool) (*gvPair, error) {
	addrA := tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	addrB := tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
	ca := channel.New(linkQueue, uint32(mtu), "")
	cb := channel.New(linkQueue, uint32(mtu), "")
	if gso {
		for _, c := range []*channel.Endpoint{ca, cb} {
			c.SupportedGSOKind = stack.HostGSOSupported
			c.LinkEPCapabilities |= stack.CapabilityTXChecksumOffload | stack.CapabilityRXChecksumOffload
		}
	}
	ea := newGvLink(ca, linkQueue, mode, gso)
	eb := newGvLink(cb, linkQueue, mode, gso)
	sa, err := newGvisorStack(ea, addrA)
	if err != nil {
		return nil, err
	}
	sb, err := newGvisorStack(eb, addrB)
	if err != nil {
		sa.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); forward(ea, cb) }()
	go func() { defer wg.Done(); forward(eb, ca) }()

	stackOf := func(side byte) *stack.Stack {
		if side == 'A' {
			return sa
		}
		return sb
	}
	env := &perf.Env{
		Name:  "gvisor",
		AddrB: "10.0.0.2",
		ListenB: func(network, addr string) (net.Listener, error) {
			fa, err := fullAddr(addr)
			if err != nil {
				return nil, err
			}
			return gonet.ListenTCP(sb, fa, ipv4.ProtocolNumber)
		},
		DialA: func(ctx context.Context, network, addr string) (net.Conn, error) {
			fa, err := fullAddr(addr)
			if err != nil {
				return nil, err
			}
			return gonet.DialContextTCP(ctx, sa, fa, ipv4.ProtocolNumber)
		},
		ListenPacket: func(side byte, network, addr string) (net.PacketConn, error) {
			fa, err := fullAddr(addr)
			if err != nil {
				return nil, err
			}
			return listenUDP(stackOf(side), fa)
		},
		Drops: func() perf.Drops {
			d := perf.Drops{Link: ea.full.Load() + eb.full.Load()}
			for _, s := range []*stack.Stack{sa, sb} {
				st := s.Stats()
				// DroppedPackets: the transport layer's own drops (a
				// full TCP segment queue, a full accept queue).
				d.Stack += st.UDP.ReceiveBufferErrors.Value() + st.IP.MalformedPacketsReceived.Value() +
					st.UDP.MalformedPacketsReceived.Value() + st.DroppedPackets.Value()
				d.Retrans += st.TCP.Retransmits.Value()
			}
			return d
		},
		Close: func() {
			// Closing the endpoints closes their queues, which ends the
			// forwarding goroutines.
			ea.close()
			eb.close()
			wg.Wait()
			sa.Close()
			sb.Close()
			sa.Wait()
			sb.Wait()
		},
	}
	return &gvPair{env: env, ea: ea, eb: eb}, nil
}

// gvLink gives a channel.Endpoint the run's link semantics. Drop: a
// packet that finds the queue full is lost (counted, and reported to
// gVisor as sent, as a wire would). Push back: the writer waits until
// the forwarder has taken a packet off the queue (counted once per
// packet held back). full is the link column of the table either way,
// as sockstack's pipe counts the frames its full queue lost or refused.
type gvLink struct {
	*channel.Endpoint
	mode    perf.LinkMode
	gso     bool
	full    atomic.Uint64 // packets that found the queue full
	super   atomic.Uint64 // packets forwarded that were larger than the MTU
	waiting atomic.Int32  // writers held back
	wake    int           // a held-back writer resumes at this queue length
	room    chan struct{} // the queue has drained to wake
	done    chan struct{}
	once    sync.Once
}

// newGvLink wraps c, whose queue holds queueLen packets. A held-back
// writer resumes when the queue has drained to half: waking it for every
// packet taken would make the forwarder and the writer take turns per
// packet, a cost sockstack's pipe does not have (its reader takes the
// whole queue at once).
func newGvLink(c *channel.Endpoint, queueLen int, mode perf.LinkMode, gso bool) *gvLink {
	return &gvLink{Endpoint: c, mode: mode, gso: gso, wake: queueLen / 2, room: make(chan struct{}, 1), done: make(chan struct{})}
}

// GSOMaxSize implements stack.GSOEndpoint: with gso, the 64 KB that
// sockstack's in-memory link carries as one frame.
func (l *gvLink) GSOMaxSize() uint32 {
	if l.gso {
		return stack.GVisorGSOMaxSize
	}
	return l.Endpoint.GSOMaxSize()
}

func (l *gvLink) close() {
	l.once.Do(func() { close(l.done) })
	l.Endpoint.Close()
}

// WritePackets implements stack.LinkEndpoint.
func (l *gvLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n, err := l.Endpoint.WritePackets(pkts)
	if err != nil || n == pkts.Len() {
		return n, err
	}
	rest := pkts.AsSlice()[n:]
	l.full.Add(uint64(len(rest)))
	if l.mode == perf.Drop {
		return pkts.Len(), nil
	}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	for i := 0; i < len(rest); {
		var more stack.PacketBufferList
		for _, p := range rest[i:] {
			more.PushBack(p)
		}
		k, err := l.Endpoint.WritePackets(more)
		if err != nil {
			return n + i, err
		}
		if i += k; i == len(rest) {
			break
		}
		select {
		case <-l.room:
		case <-l.done:
			return n + i, &tcpip.ErrClosedForSend{}
		}
	}
	return pkts.Len(), nil
}

func newGvisorStack(ep stack.LinkEndpoint, addr tcpip.Address) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("sack: %v", err)
	}
	// Without TIME-WAIT reuse the conn figure runs out of ports (BENCH.md).
	tw := tcpip.TCPTimeWaitReuseGlobal
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
		return nil, fmt.Errorf("time-wait reuse: %v", err)
	}
	if err := s.CreateNIC(1, ep); err != nil {
		return nil, fmt.Errorf("nic: %v", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24},
	}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("address: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s, nil
}

// forward copies every frame queued for output on from into to's input,
// and tells a pushed-back writer of from that there is room.
func forward(from *gvLink, to *channel.Endpoint) {
	for {
		pkt := from.take()
		if pkt == nil {
			return // queue closed
		}
		v := pkt.ToView() // a copy of the whole frame
		pkt.DecRef()
		if v.Size() > int(from.MTU()) {
			from.super.Add(1)
		}
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		to.InjectInbound(ipv4.ProtocolNumber, in)
		in.DecRef()
	}
}

// take waits for the next outbound packet (nil when the queue is closed)
// and tells a held-back writer when the queue has drained to l.wake.
func (l *gvLink) take() *stack.PacketBuffer {
	pkt := l.ReadContext(context.Background())
	if pkt != nil && l.waiting.Load() > 0 && l.NumQueued() <= l.wake {
		select {
		case l.room <- struct{}{}:
		default:
		}
	}
	return pkt
}

func fullAddr(s string) (tcpip.FullAddress, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return tcpip.FullAddress{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, err
	}
	fa := tcpip.FullAddress{Port: uint16(p)}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return tcpip.FullAddress{}, err
		}
		fa.Addr = tcpip.AddrFromSlice(ip.AsSlice())
	}
	return fa, nil
}

// udpConn is gonet's UDPConn with SetReadBuffer, so perf.UDP's request
// for a 4 MiB receive buffer reaches gVisor as it reaches the others.
type udpConn struct {
	*gonet.UDPConn
	ep tcpip.Endpoint
}

func (c udpConn) SetReadBuffer(n int) error {
	c.ep.SocketOptions().SetReceiveBufferSize(int64(n), true)
	return nil
}

// listenUDP does what gonet.DialUDP does for a bound, unconnected socket,
// keeping the endpoint for SetReadBuffer.
func listenUDP(s *stack.Stack, laddr tcpip.FullAddress) (net.PacketConn, error) {
	var wq waiter.Queue
	ep, err := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		return nil, errors.New(err.String())
	}
	if err := ep.Bind(laddr); err != nil {
		ep.Close()
		return nil, errors.New(err.String())
	}
	return udpConn{gonet.NewUDPConn(&wq, ep), ep}, nil
}

// ---- measurement and table ----

type config struct {
	runs      int
	bulkBytes int64
	rr        int
	conn      time.Duration
	mem       int
	udp       int
	only      map[string]bool
	stacks    []string
	links     []perf.LinkMode
	gvisorGSO bool
}

// metric is one row of the table: a value per run.
type metric struct {
	figure, unit string
	higher       bool // higher is better (for the reader; the ratio is plain)
}

type figure struct {
	name    string
	mtu     int
	metrics []metric
	run     func(env *perf.Env) ([]float64, error) // one value per metric
}

func figures(cfg config) []figure {
	bulk := func(mtu int) figure {
		n := strconv.Itoa(mtu)
		return figure{"bulk" + n, mtu, []metric{
			{"bulk MTU " + n, "Gbit/s", true},
			{"bulk MTU " + n + " CPU", "cores busy", false},
			{"bulk MTU " + n + " CPU per byte", "ns/KiB", false},
		}, func(e *perf.Env) ([]float64, error) {
			r, err := perf.Bulk(e, cfg.bulkBytes)
			return []float64{r.Gbps(), r.Cores(), float64(r.CPU.Nanoseconds()) / (float64(r.Bytes) / 1024)}, err
		}}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	return []figure{
		bulk(1500),
		bulk(65000),
		{"rr", 1500, []metric{{"rr p50", "µs", false}, {"rr mean", "µs", false}, {"rr p99", "µs", false}},
			func(e *perf.Env) ([]float64, error) {
				r, err := perf.RR(e, 1000, cfg.rr)
				return []float64{us(r.P50), us(r.Mean), us(r.P99)}, err
			}},
		{"conn", 1500, []metric{{"conn", "conn/s", true}},
			func(e *perf.Env) ([]float64, error) {
				r, err := perf.Conn(e, cfg.conn)
				return []float64{r}, err
			}},
		{"mem", 1500, []metric{{"mem per idle conn (both ends)", "bytes", false}},
			func(e *perf.Env) ([]float64, error) {
				n := cfg.mem
				if e.Name == perf.Kernel().Name {
					n = linuxMemConns(cfg.mem)
				}
				r, err := perf.Mem(e, n)
				return []float64{r}, err
			}},
		{"udp", 1500, []metric{{"udp 64 B received", "dgram/s", true}, {"udp loss", "%", false}},
			func(e *perf.Env) ([]float64, error) {
				r, err := perf.UDP(e, cfg.udp)
				return []float64{r.Rate(), r.Loss()}, err
			}},
	}
}

func makeEnv(name string, mtu int, mode perf.LinkMode, gso bool) (*perf.Env, error) {
	switch name {
	case "sockstack":
		return perf.SockstackLink(mtu, mode), nil
	case "gvisor":
		return gvisorEnv(mtu, mode, gso)
	case "linux":
		return perf.Kernel(), nil
	}
	return nil, fmt.Errorf("unknown stack %q", name)
}

func main() {
	var cfg config
	var bulkMiB int64
	var only, stacks string
	flag.IntVar(&cfg.runs, "runs", 3, "runs per figure and stack (median with min-max is reported)")
	flag.Int64Var(&bulkMiB, "bulk-mib", 1024, "MiB sent per bulk run")
	flag.IntVar(&cfg.rr, "rr", 50000, "timed round trips (after 1,000 warm-up)")
	flag.DurationVar(&cfg.conn, "conn-time", 5*time.Second, "duration of the conn figure")
	flag.IntVar(&cfg.mem, "mem", 10000, "idle connections for the mem figure")
	flag.IntVar(&cfg.udp, "udp", 1000000, "datagrams for the udp figure")
	flag.StringVar(&only, "only", "", "comma list of figures: bulk1500, bulk65000, rr, conn, mem, udp (default all)")
	flag.StringVar(&stacks, "stacks", "sockstack,gvisor,linux", "comma list of stacks: sockstack, gvisor, linux")
	var links string
	flag.StringVar(&links, "link", "pushback,drop", "comma list of link semantics for both in-memory stacks: pushback (a full queue makes the sender wait), drop (a full queue loses the frame)")
	flag.BoolVar(&cfg.gvisorGSO, "gvisor-gso", true, "give gVisor segmentation offload (super-segments of up to 64 KB with partial checksums, carried whole, as sockstack has on its in-memory link)")
	flag.Parse()
	for _, l := range strings.Split(links, ",") {
		switch strings.TrimSpace(l) {
		case "pushback":
			cfg.links = append(cfg.links, perf.PushBack)
		case "drop":
			cfg.links = append(cfg.links, perf.Drop)
		default:
			fmt.Fprintf(os.Stderr, "unknown link semantics %q (want pushback, drop)\n", l)
			os.Exit(2)
		}
	}
	cfg.bulkBytes = bulkMiB << 20
	if only != "" {
		cfg.only = map[string]bool{}
		for _, f := range strings.Split(only, ",") {
			cfg.only[strings.TrimSpace(f)] = true
		}
	}
	for _, s := range strings.Split(stacks, ",") {
		s = strings.TrimSpace(s)
		if s != "sockstack" && s != "gvisor" && s != "linux" {
			fmt.Fprintf(os.Stderr, "unknown stack %q (want sockstack, gvisor, linux)\n", s)
			os.Exit(2)
		}
		cfg.stacks = append(cfg.stacks, s)
	}
	if cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "-runs must be at least 1")
		os.Exit(2)
	}
	raiseFileLimit(uint64(2*cfg.mem + 1024))
	if err := run(os.Stdout, os.Stderr, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(out, progress io.Writer, cfg config) error {
	fmt.Fprintf(out, "%s; GOMAXPROCS %d of %d CPUs; runs %d; bulk %d MiB, rr %d, conn %v, mem %d, udp %d; gVisor GSO %v\n\n",
		gvisorVersion(), runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.runs, cfg.bulkBytes>>20, cfg.rr, cfg.conn, cfg.mem, cfg.udp, cfg.gvisorGSO)
	// One column per stack and link semantics (Linux loopback has one
	// behaviour of its own: one column), then the ratio per semantics.
	type column struct {
		stack string
		mode  perf.LinkMode
	}
	var cols []column
	hdr, sep := "| figure | unit |", "|---|---|"
	for _, s := range cfg.stacks {
		for _, m := range cfg.links {
			cols = append(cols, column{s, m})
			if s == "linux" {
				hdr += " linux |"
				sep += "---|"
				break
			}
			hdr += fmt.Sprintf(" %s, %v |", s, m)
			sep += "---|"
		}
	}
	hasRatio := contains(cfg.stacks, "sockstack") && contains(cfg.stacks, "gvisor")
	if hasRatio {
		for _, m := range cfg.links {
			hdr += fmt.Sprintf(" sockstack/gvisor, %v |", m)
			sep += "---|"
		}
	}
	var figs []figure
	for _, f := range figures(cfg) {
		if cfg.only == nil || cfg.only[f.name] {
			figs = append(figs, f)
		}
	}
	results := map[string]map[perf.LinkMode]figResult{}
	var notes []string
	for _, mode := range cfg.links {
		for _, f := range figs {
			r, n := runFigure(progress, cfg, f, mode)
			if results[f.name] == nil {
				results[f.name] = map[perf.LinkMode]figResult{}
			}
			results[f.name][mode] = r
			notes = append(notes, n...)
		}
	}
	fmt.Fprintln(out, hdr)
	fmt.Fprintln(out, sep)
	for _, f := range figs {
		first := results[f.name][cfg.links[0]]
		for m, mt := range first.metrics {
			row := fmt.Sprintf("| %s | %s |", mt.figure, mt.unit)
			for _, c := range cols {
				row += " " + results[f.name][c.mode].cells[c.stack][m] + " |"
			}
			if hasRatio {
				for _, mode := range cfg.links {
					row += " " + results[f.name][mode].ratio[m] + " |"
				}
			}
			fmt.Fprintln(out, row)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, "- "+n)
		}
	}
	return nil
}

// dropMetrics follow every figure but mem: what the link between the
// hosts lost, what the stacks dropped themselves, and TCP's
// retransmissions, per run (the Linux column has none of them).
// The link row counts frames that found the link queue full: lost under
// drop, held back (gVisor) or refused with ENOBUFS (sockstack) under push
// back.
var dropMetrics = []metric{{"link queue full", "frames", false}, {"stack drops", "packets", false}, {"TCP retransmits", "segments", false}}

// figResult is one figure under one link semantics: per stack a table
// cell for each metric (median [min–max], or – when not measured), and
// the ratio of medians sockstack/gVisor.
type figResult struct {
	metrics []metric
	cells   map[string][]string
	ratio   []string
}

// runFigure measures one figure under one link semantics for every
// stack and returns its cells and notes.
func runFigure(progress io.Writer, cfg config, f figure, mode perf.LinkMode) (res figResult, notes []string) {
	metrics := f.metrics
	withDrops := f.name != "mem"
	if withDrops {
		metrics = append([]metric(nil), f.metrics...)
		for _, d := range dropMetrics {
			d.figure = f.name + ": " + d.figure
			metrics = append(metrics, d)
		}
	}
	// vals[stack][metric] = one value per run. Runs interleave the
	// stacks so that drift on this shared machine hits all alike.
	vals := map[string][][]float64{}
	for _, s := range cfg.stacks {
		vals[s] = make([][]float64, len(metrics))
	}
	failed := map[string]bool{}
	for i := 0; i < cfg.runs; i++ {
		for _, s := range cfg.stacks {
			if failed[s] {
				continue
			}
			if s == "linux" && mode != cfg.links[0] {
				// Loopback has one behaviour of its own; measure it once.
				failed[s] = true
				continue
			}
			if s == "linux" && f.name == "mem" {
				// Do not start what the descriptor limit cannot finish;
				// measure with as many connections as it allows.
				if n := linuxMemConns(cfg.mem); n < min(cfg.mem, 1000) {
					failed[s] = true
					notes = append(notes, fmt.Sprintf("mem on linux skipped: the file descriptor limit %d (which cannot be raised here) leaves room for %d connections", fileLimit(), n))
					fmt.Fprintln(progress, notes[len(notes)-1])
					continue
				}
				if i == 0 {
					notes = append(notes, "mem on linux counts Go's heap and stacks only: the kernel's socket memory (its slab, most of a Linux connection's cost) is not in it")
				}
				if n := linuxMemConns(cfg.mem); n < cfg.mem && i == 0 {
					notes = append(notes, fmt.Sprintf("mem on linux measured with %d connections, not %d: two descriptors per connection, and the file descriptor limit is %d (it cannot be raised here)", n, cfg.mem, fileLimit()))
					fmt.Fprintln(progress, notes[len(notes)-1])
				}
			}
			env, err := makeEnv(s, f.mtu, mode, cfg.gvisorGSO)
			if err != nil {
				notes = append(notes, err.Error())
				failed[s] = true
				continue
			}
			var before perf.Drops
			if env.Drops != nil {
				before = env.Drops()
			}
			t0 := time.Now()
			v, err := f.run(env)
			if withDrops {
				if env.Drops != nil {
					after := env.Drops()
					v = append(v, float64(after.Link-before.Link), float64(after.Stack-before.Stack), float64(after.Retrans-before.Retrans))
				} else {
					v = append(v, math.NaN(), math.NaN(), math.NaN())
				}
			}
			env.Close()
			if err != nil {
				// One stack failing a figure (say, Linux out of file
				// descriptors for mem) must not lose the others.
				failed[s] = true
				notes = append(notes, fmt.Sprintf("%s (%v) on %s failed in run %d: %v", f.name, mode, s, i+1, err))
				fmt.Fprintln(progress, notes[len(notes)-1])
				continue
			}
			fmt.Fprintf(progress, "%s (%v) %s run %d: %s (%.1fs)\n", f.name, mode, s, i+1, fmtVals(v), time.Since(t0).Seconds())
			for m := range metrics {
				vals[s][m] = append(vals[s][m], v[m])
			}
			debug.FreeOSMemory() // start each measurement from a settled heap
		}
	}
	res = figResult{metrics: metrics, cells: map[string][]string{}, ratio: make([]string, len(metrics))}
	for _, s := range cfg.stacks {
		res.cells[s] = make([]string, len(metrics))
	}
	for m := range metrics {
		for _, s := range cfg.stacks {
			res.cells[s][m] = "–"
			if failed[s] || len(vals[s][m]) == 0 || math.IsNaN(vals[s][m][0]) {
				continue
			}
			med, lo, hi := median(vals[s][m])
			res.cells[s][m] = fmt.Sprintf("%s [%s–%s]", num(med), num(lo), num(hi))
		}
		res.ratio[m] = "–"
		measured := func(s string) bool { return !failed[s] && len(vals[s]) > m && len(vals[s][m]) > 0 }
		if m >= len(f.metrics) || !measured("sockstack") || !measured("gvisor") {
			continue
		}
		a, _, _ := median(vals["sockstack"][m])
		b, _, _ := median(vals["gvisor"][m])
		if b != 0 {
			res.ratio[m] = fmt.Sprintf("%.2f", a/b)
		}
	}
	return res, notes
}

func fmtVals(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = num(x)
	}
	return strings.Join(s, " ")
}

// num prints 3-4 significant digits, with thousands separators for big
// numbers.
func num(x float64) string {
	switch {
	case x >= 10000:
		s := strconv.FormatInt(int64(x+0.5), 10)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

func median(xs []float64) (med, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// raiseFileLimit makes room for the mem figure on Linux loopback, whose
// connections are real file descriptors (two per connection). Raising the
// hard limit needs privilege; without it the figure may fail with EMFILE.
func raiseFileLimit(n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(rl.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// linuxMemConns is how many connections the mem figure opens on Linux
// loopback: want, or as many as the descriptor limit leaves room for (two
// per connection, 64 spare).
func linuxMemConns(want int) int {
	return max(0, min(want, (int(fileLimit())-64)/2))
}

func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// gvisorVersion reports the gVisor module version this binary was built
// with.
func gvisorVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "gvisor.dev/gvisor" {
				return d.Path + " " + d.Version
			}
		}
	}
	return "gvisor.dev/gvisor (version unknown)"
}
