package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

// relayPort is the port of the stack's transparent sockets that the
// divert rules name; nothing else listens on the relay's stack.
const relayPort = 1

// relayOpts are relay's own flags.
type relayOpts struct {
	maxConns, maxFlows int
	// Per client address (0: no limit), so one client cannot take every
	// place under the global limits.
	maxConnsPerClient, maxFlowsPerClient int
	udpTimeout                           time.Duration
	dialTimeout                          time.Duration
	// The loop guard: every upstream kernel socket gets SO_MARK mark (0:
	// none) and SO_BINDTODEVICE bindDevice ("": none), so a policy rule
	// (or the device) sends the relay's own traffic out of the real
	// interface instead of back into the TUN.
	mark       uint32
	bindDevice string
	// timeoutCache: how long a destination whose connect timed out is
	// answered with silence without a new connect (0: off).
	timeoutCache time.Duration
	icmp         relayICMPOpts // relay_icmp.go
}

// relayTimeoutCacheMax bounds the destinations the timeout cache holds;
// beyond, a timed-out destination is not remembered (counted as full).
const relayTimeoutCacheMax = 1024

func relayCmd() *cobra.Command {
	var f hostFlags
	var o relayOpts
	c := &cobra.Command{
		Use:     "relay --tun NAME [--netns NS] --addr CIDR[,CIDR...] [--mtu N] [--offload] [--pcap FILE] [--max-conns N] [--max-udp-flows N] [--max-conns-per-client N] [--max-udp-flows-per-client N] [--udp-timeout D] [--connect-timeout D] [--mark N] [--bind-device IFNAME] [--timeout-cache D]",
		Example: "  ip netns exec S sockstack relay --netns C --tun tun0 --addr 10.99.0.2/24,fd00:99::2/64",
		Short:   "Relay all TCP and UDP arriving on a TUN to its original destinations through the host kernel (tun2socks)",
		Long: `Runs a sockstack host on a layer 3 TUN device and diverts every TCP
connection and UDP datagram arriving on it, whatever its destination
(transparent proxying, docs/transparent.md), to transparent sockets. Each
connection is relayed to its original destination through a socket of the
host kernel of this process (so through this process's network namespace),
with half-close both ways. The client's SYN is answered only once the
kernel's connect has: if it succeeds, the handshake completes; if it is
refused, the client gets a reset (ECONNREFUSED); if the destination is
unreachable, an ICMP destination unreachable (EHOSTUNREACH, ENETUNREACH);
if it times out (--connect-timeout), nothing, so the client's own connect
times out; for --timeout-cache after that, new SYNs to that destination
(the client's retransmissions) get the same silence without a new connect.
UDP gets one kernel socket per client and original destination,
answers go back from the original destination, and a flow ends after
--udp-timeout without traffic. Beyond --max-conns relays (or
--max-conns-per-client from one client address) connection attempts are
refused, beyond --max-udp-flows flows (--max-udp-flows-per-client from one
client) datagrams are dropped; all are counted. Runs until SIGINT or SIGTERM, then prints its counters.

When the TUN carries the default route (tun2socks), the relay's own
connections would be routed back into it: --mark N sets SO_MARK on every
upstream socket (with "ip rule add fwmark N lookup TABLE" sending them out
of the real interface), --bind-device IFNAME binds them to that interface
(SO_BINDTODEVICE). Without either, the relay knows its own traffic when
it comes back (a SYN or datagram from one of its upstream sockets'
addresses): it resets or drops it at once, counts it (loops=) and warns
once. See docs/transparent.md.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.tun == "" {
				return usageErr(cmd, "relay needs --tun NAME (a TUN device: ip tuntap add dev NAME mode tun)")
			}
			if f.addr == "" {
				return usageErr(cmd, "relay needs --addr CIDR (the stack's own addresses on the TUN)")
			}
			if _, err := parseAddrs(f.addr); err != nil {
				return usageErr(cmd, "--addr: %v", err)
			}
			switch {
			case o.maxConns < 1:
				return usageErr(cmd, "--max-conns %d: want at least 1", o.maxConns)
			case o.maxFlows < 1:
				return usageErr(cmd, "--max-udp-flows %d: want at least 1", o.maxFlows)
			case o.maxConnsPerClient < 0:
				return usageErr(cmd, "--max-conns-per-client %d: want 0 (no limit) or more", o.maxConnsPerClient)
			case o.maxFlowsPerClient < 0:
				return usageErr(cmd, "--max-udp-flows-per-client %d: want 0 (no limit) or more", o.maxFlowsPerClient)
			case o.udpTimeout <= 0:
				return usageErr(cmd, "--udp-timeout %v: want a positive duration, like 60s", o.udpTimeout)
			case o.dialTimeout <= 0:
				return usageErr(cmd, "--connect-timeout %v: want a positive duration, like 10s", o.dialTimeout)
			case o.timeoutCache < 0:
				return usageErr(cmd, "--timeout-cache %v: want 0 (off) or a positive duration, like 10s", o.timeoutCache)
			case o.icmp.check() != "":
				return usageErr(cmd, "%s", o.icmp.check())
			}
			if err := checkUpstream(o); err != nil {
				return err
			}
			f.tap, f.l3, f.queues = f.tun, true, 1
			ctx, stop := cmdContext(cmd)
			defer stop()
			return runRelay(ctx, cmd.OutOrStdout(), &f, o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.tun, "tun", "", "the layer 3 TUN device to run on (it must exist)")
	fl.StringVar(&f.netns, "netns", "", "network namespace (under /run/netns) that holds the TUN; the relay's kernel sockets stay in this process's namespace")
	fl.StringVar(&f.addr, "addr", "", "the stack's own addresses on the TUN, as CIDRs, comma-separated (e.g. 10.99.0.2/24,fd00:99::2/64)")
	fl.IntVar(&f.mtu, "mtu", 0, "set the TUN's MTU (0: keep the device's)")
	fl.BoolVar(&f.offload, "offload", false, "exchange 64 KB super-segments with partial checksums with the kernel (IFF_VNET_HDR, TUNSETOFFLOAD)")
	fl.StringVar(&f.pcap, "pcap", "", "write every packet on the TUN to a pcap file (raw IP)")
	fl.IntVar(&o.maxConns, "max-conns", 1024, "most TCP connections relayed (or being connected) at once; more are refused with a reset and counted")
	fl.IntVar(&o.maxFlows, "max-udp-flows", 1024, "most UDP flows (client, original destination) at once; datagrams of more are dropped and counted")
	fl.IntVar(&o.maxConnsPerClient, "max-conns-per-client", 0, "most TCP connections at once from one client address (0: only --max-conns); more are refused with a reset and counted")
	fl.IntVar(&o.maxFlowsPerClient, "max-udp-flows-per-client", 0, "most UDP flows at once from one client address (0: only --max-udp-flows); datagrams of more are dropped and counted")
	fl.DurationVar(&o.udpTimeout, "udp-timeout", 60*time.Second, "a UDP flow without traffic either way for this long ends")
	fl.DurationVar(&o.dialTimeout, "connect-timeout", 10*time.Second, "how long a kernel connect to an original destination may take; the client's SYN waits for it, unanswered")
	fl.Uint32Var(&o.mark, "mark", 0, "set SO_MARK to N on every upstream socket, TCP and UDP (0x.. for hex; needs CAP_NET_ADMIN), so `ip rule add fwmark N lookup main` keeps the relay's traffic out of the TUN")
	fl.DurationVar(&o.timeoutCache, "timeout-cache", 10*time.Second, "after a connect to a destination timed out, answer new SYNs to it (the client's retransmissions) with silence for this long instead of connecting again (0: off)")
	fl.StringVar(&o.bindDevice, "bind-device", "", "bind every upstream socket to this interface (SO_BINDTODEVICE), so the relay's traffic leaves through it and not the TUN")
	addRelayICMPFlags(c, &o.icmp)
	return c
}

// relayStats are relay's counters, printed when it stops.
type relayStats struct {
	relayed      atomic.Uint64 // TCP connections relayed (kernel connect and client's handshake succeeded)
	refused      atomic.Uint64 // TCP connection attempts the relay itself reset: limit, own address
	overLimit    atomic.Uint64 // of refused: beyond --max-conns
	clientLimit  atomic.Uint64 // of refused: beyond --max-conns-per-client
	ownAddr      atomic.Uint64 // of refused: to the stack's own address
	dialFailed   atomic.Uint64 // TCP attempts whose kernel connect failed, answered as it failed:
	dialRefused  atomic.Uint64 // - refused (ECONNREFUSED): a reset
	dialUnreach  atomic.Uint64 // - unreachable (EHOSTUNREACH, ENETUNREACH, EACCES, EPERM): ICMP unreachable
	dialTimeout  atomic.Uint64 // - longer than --connect-timeout: no answer, the client retransmits
	dialOther    atomic.Uint64 // - anything else: a reset
	handshakeErr atomic.Uint64 // kernel connect succeeded, the client's handshake did not
	bytesOut     atomic.Uint64 // TCP bytes client -> destination
	bytesIn      atomic.Uint64 // TCP bytes destination -> client
	flows        atomic.Uint64 // UDP flows opened
	expired      atomic.Uint64 // UDP flows ended by --udp-timeout
	dgramOut     atomic.Uint64 // UDP datagrams client -> destination
	dgramIn      atomic.Uint64 // UDP datagrams destination -> client
	drops        atomic.Uint64 // UDP datagrams dropped
	flowLimit    atomic.Uint64 // of drops: beyond --max-udp-flows
	flowCliLimit atomic.Uint64 // of drops: beyond --max-udp-flows-per-client
	udpSendErrs  atomic.Uint64 // of drops: a send failed (either side) or the flow's socket could not be opened
	udpFull      atomic.Uint64 // of drops: the flow's kernel socket had no room, from the loop every flow shares
	flowSocks    atomic.Uint64 // flows with their own connected transparent socket in the stack
	flowSockOut  atomic.Uint64 // of dgramOut: arrived on a flow's own socket
	// The timeout cache (--timeout-cache).
	tcAdded atomic.Uint64 // destinations remembered after a timed-out connect
	tcHits  atomic.Uint64 // SYNs answered with silence from it, no connect (also in dialTimeout)
	tcFull  atomic.Uint64 // timed-out destinations not remembered: the cache was full
	// Loops: a diverted SYN or datagram from the local address of one of
	// the relay's own upstream sockets (no --mark/--bind-device while the
	// TUN carries the route), rejected at once.
	loopTCP  atomic.Uint64 // SYNs reset
	loopUDP  atomic.Uint64 // datagrams dropped
	loopICMP atomic.Uint64 // echo requests dropped: the relay's own echo (relay_icmp.go)
}

// loopString is the loop detector's counters line.
func (s *relayStats) loopString() string {
	t, u, i := s.loopTCP.Load(), s.loopUDP.Load(), s.loopICMP.Load()
	return fmt.Sprintf("loops=%d (tcp=%d udp=%d icmp=%d)", t+u+i, t, u, i)
}

// cacheString is the timeout cache's counters line.
func (s *relayStats) cacheString() string {
	return fmt.Sprintf("timeout-cache added=%d hits=%d full=%d", s.tcAdded.Load(), s.tcHits.Load(), s.tcFull.Load())
}

func (s *relayStats) String() string {
	return fmt.Sprintf("tcp relayed=%d refused=%d (limit=%d client-limit=%d own=%d) connect-failed=%d (refused=%d unreachable=%d timed-out=%d other=%d) handshake-failed=%d bytes-out=%d bytes-in=%d; udp flows=%d expired=%d datagrams-out=%d datagrams-in=%d dropped=%d (limit=%d client-limit=%d errors=%d full=%d) flow-sockets=%d via-flow-socket=%d",
		s.relayed.Load(), s.refused.Load(), s.overLimit.Load(), s.clientLimit.Load(), s.ownAddr.Load(),
		s.dialFailed.Load(), s.dialRefused.Load(), s.dialUnreach.Load(), s.dialTimeout.Load(), s.dialOther.Load(),
		s.handshakeErr.Load(), s.bytesOut.Load(), s.bytesIn.Load(),
		s.flows.Load(), s.expired.Load(), s.dgramOut.Load(), s.dgramIn.Load(), s.drops.Load(), s.flowLimit.Load(), s.flowCliLimit.Load(), s.udpSendErrs.Load(), s.udpFull.Load(), s.flowSocks.Load(), s.flowSockOut.Load())
}

// heldSummary is the stack's held-SYN counters (tcp.HoldSYNStats).
func heldSummary(h tcp.HoldSYNStats) string {
	return fmt.Sprintf("held SYNs=%d retransmitted=%d queue-full=%d completed=%d reset=%d icmp=%d silent=%d expired=%d aborted=%d complete-failed=%d cookies=%d established=%d seq-mismatch=%d syn-data=%d no-route=%d client-reset=%d",
		h.Held, h.Retrans, h.QueueFull, h.Completed, h.Reset, h.ICMP, h.Silent, h.Expired, h.Aborted, h.CompleteFailed,
		h.Cookies, h.Established, h.SeqMismatch, h.SynData, h.NoRoute, h.ClientReset)
}

// relay is one running relay.
type relay struct {
	ctx   context.Context // ends on stop: connects under way give up
	o     relayOpts
	n     *socket.Net
	own   []netip.Addr // the stack's own addresses: never relayed
	stats relayStats
	wg    sync.WaitGroup

	mu          sync.Mutex
	conns       map[net.Conn]struct{} // both ends of every live TCP relay
	active      int                   // live TCP relays
	clientConns map[netip.Addr]int    // live TCP relays per client address (with --max-conns-per-client)
	flows       map[flowKey]*udpFlow
	clientFlows map[netip.Addr]int // flows per client address (with --max-udp-flows-per-client)
	// dialUDP opens a flow's kernel socket (nil: net.DialUDP; tests
	// put their own destinations behind it).
	dialUDP func(orig netip.AddrPort) (net.Conn, error)
	closed  bool
	// timedOut holds, per original destination, until when (since
	// relayEpoch) a connect to it is not tried again (--timeout-cache).
	timedOut map[netip.AddrPort]time.Duration
	// now is the time since relayEpoch (tests set their own).
	now func() time.Duration

	// upstream holds the local address of every live upstream kernel
	// socket (TCP and UDP), so that one coming back into the TUN is
	// known as a loop by one lookup. It needs no limit of its own: an
	// entry lives only as long as an admitted TCP relay (--max-conns) or
	// a UDP flow (--max-udp-flows).
	upMu sync.Mutex
	// route answers bindUpstream's source-address lookups (made at
	// the first).
	route     *routeSource
	routeOnce sync.Once
	// Counted: after SO_REUSEADDR (bindUpstream) two live sockets may
	// share one local address, to different destinations.
	upstream map[netip.AddrPort]int
	// warn receives the loop warning (nil: stderr), printed once.
	warn     io.Writer
	loopOnce sync.Once
	// bufsOut counts the UDP buffers taken from relayBufs and not yet
	// given back: 0 whenever every flow is idle.
	bufsOut atomic.Int64

	icmp *relayICMP // echoes and UDP unreachables (relay_icmp.go)
}

type flowKey struct{ client, orig netip.AddrPort }

type udpFlow struct {
	k    net.Conn       // the kernel's socket, connected to the original destination
	s    *socket.Socket // the stack's side: bound to the original destination, connected to the client; nil if it could not be made
	last atomic.Int64   // time of the flow's last datagram either way, since relayEpoch
	// local is k's local address, in the relay's upstream set while the
	// flow lives (invalid: not recorded).
	local netip.AddrPort
	// done is closed when the flow ends: udpOut waits on it with the
	// stack socket's readiness.
	done     chan struct{}
	doneOnce sync.Once

	// unreach is what its ICMP errors quote (relay_icmp.go).
	unreach flowUnreach
	// hops is the TTL (hop limit) k sends with, the client's less one
	// (relay_hops.go); 0 until set.
	hops atomic.Int32
}

// close ends both sides of the flow.
func (fl *udpFlow) close() {
	fl.doneOnce.Do(func() {
		if fl.done != nil {
			close(fl.done)
		}
	})
	fl.k.Close()
	if fl.s != nil {
		fl.s.Close()
	}
}

// relayBufs are the UDP flows' datagram buffers: a flow takes one only
// while a datagram is in hand (read, then sent), so an idle flow holds
// none, however many flows there are.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}

func (r *relay) getBuf() *[]byte {
	r.bufsOut.Add(1)
	return relayBufs.Get().(*[]byte)
}

func (r *relay) putBuf(b *[]byte) {
	r.bufsOut.Add(-1)
	relayBufs.Put(b)
}

func runRelay(ctx context.Context, w io.Writer, f *hostFlags, o relayOpts) error {
	e, err := f.openTAP(w)
	if err != nil {
		return err
	}
	defer e.Close()
	addrs, _ := parseAddrs(f.addr) // checked before
	r := &relay{ctx: ctx, o: o, n: e.net, conns: map[net.Conn]struct{}{}, flows: map[flowKey]*udpFlow{},
		clientConns: map[netip.Addr]int{}, clientFlows: map[netip.Addr]int{}, timedOut: map[netip.AddrPort]time.Duration{}}
	for _, p := range addrs {
		r.own = append(r.own, p.Addr())
	}
	r.icmp = newRelayICMP(e.st, e.nic, o.icmp)
	for _, dst := range []string{"0.0.0.0/0", "::/0"} {
		if err := e.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP | stack.TransparentUDP,
			Dst: netip.MustParsePrefix(dst), NIC: e.nic, ToPort: relayPort}); err != nil {
			return fmt.Errorf("divert rule for %s: %v", dst, err)
		}
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	nets := []string{"4"}
	if f.v6 {
		nets = append(nets, "6")
	}
	for _, v := range nets {
		host := "0.0.0.0"
		if v == "6" {
			host = "::"
		}
		addr := net.JoinHostPort(host, fmt.Sprint(relayPort))
		// Held SYNs: the client's handshake is answered only once the
		// kernel's connect has (relayHeld). Each is answered within
		// --connect-timeout; the hold timeout is the backstop.
		l, err := netconn.ListenTransparentHeld(e.net, "tcp"+v, addr, o.dialTimeout+5*time.Second)
		if err != nil {
			return fmt.Errorf("transparent listener tcp%s: %v", v, err)
		}
		closers = append(closers, l)
		u, us, err := listenRelayUDP(e.net, "udp"+v, addr)
		if err != nil {
			return fmt.Errorf("transparent socket udp%s: %v", v, err)
		}
		closers = append(closers, u)
		r.wg.Add(2)
		go r.acceptLoop(l)
		go r.udpLoop(us)
	}
	closers = append(closers, r.icmp.start(r, f.v6, w))
	fmt.Fprintf(w, "sockstack relay: %s; all TCP and UDP arriving on it goes to its destination through this process's kernel sockets\n", e.where)
	if !f.v6 {
		fmt.Fprintln(w, "  IPv6 off (no IPv6 --addr): only IPv4 is relayed")
	}
	if o.mark != 0 {
		fmt.Fprintf(w, "  upstream sockets marked %d (0x%x): SO_MARK\n", o.mark, o.mark)
	}
	if o.bindDevice != "" {
		fmt.Fprintf(w, "  upstream sockets bound to %s: SO_BINDTODEVICE\n", o.bindDevice)
	}
	if f.pcap != "" {
		fmt.Fprintf(w, "  capturing to %s\n", f.pcap)
	}
	// Said once the kernel's side of the TUN carries packets
	// (relay_tun.go): before, a client's first ones were dropped.
	if waited, err := waitTUNReady(f.tap, f.netns, tunReadyWait); err != nil {
		fmt.Fprintf(w, "  warning: %v: packets routed into it are dropped until it is\n", err)
	} else if waited {
		fmt.Fprintf(w, "  waited for the kernel to bring %s up\n", f.tap)
	}
	fmt.Fprintln(w, "  running; SIGINT or SIGTERM stops it")

	<-ctx.Done()
	fmt.Fprintln(w, "sockstack relay: shutting down")
	for _, c := range closers {
		c.Close()
	}
	closers = nil
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	for _, fl := range r.flows {
		fl.close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if r.route != nil {
		r.route.close()
	}
	for _, s := range e.net.Sockets() {
		s.Close()
	}
	if left := drainTCP(e.st, exitGrace/2); left > 0 {
		fmt.Fprintf(w, "  %d connection(s) still closing; resetting them\n", left)
	}
	fmt.Fprintf(w, "  relay: %s\n", &r.stats)
	fmt.Fprintf(w, "  relay: %s\n", r.icmp)
	fmt.Fprintf(w, "  relay: %s\n", heldSummary(e.st.TCP.HoldSYNStats()))
	fmt.Fprintf(w, "  relay: %s\n", r.stats.cacheString())
	fmt.Fprintf(w, "  relay: %s\n", r.stats.loopString())
	printSummary(w, e.st)
	return e.Close()
}

func (r *relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *relay) isOwn(a netip.Addr) bool {
	a = a.Unmap()
	for _, o := range r.own {
		if o == a {
			return true
		}
	}
	return false
}

// reset closes c with a reset (SO_LINGER 0), the answer to a connection
// that cannot go on.
func reset(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// acceptLoop takes the clients' connection attempts, before any answer
// to them: each is relayed (relayHeld) or, beyond --max-conns or
// --max-conns-per-client or to the stack's own address, reset.
func (r *relay) acceptLoop(l *netconn.HeldListener) {
	defer r.wg.Done()
	for {
		req, err := l.Next()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || r.isClosed() {
				return
			}
			continue
		}
		if r.isUpstream(req.Client()) {
			// The relay's own connect came back: reset at once, so that
			// connect fails (ECONNREFUSED) and with it the client's.
			r.stats.loopTCP.Add(1)
			r.warnLoop("TCP", req.Client(), req.OrigDst())
			req.Reject(socket.RejectReset)
			continue
		}
		if r.isOwn(req.OrigDst().Addr()) {
			r.stats.refused.Add(1)
			r.stats.ownAddr.Add(1)
			req.Reject(socket.RejectReset)
			continue
		}
		if r.cachedTimeout(req.OrigDst()) {
			// The client's retransmission (or another client) after a
			// connect there timed out: answered as that connect was,
			// with silence, not with a new connect.
			req.Reject(socket.RejectSilent)
			continue
		}
		if !r.admit(req.Client().Addr()) {
			req.Reject(socket.RejectReset)
			continue
		}
		r.wg.Add(1)
		go r.relayHeld(req)
	}
}

// admit takes a place for a TCP relay from client under --max-conns and
// --max-conns-per-client; false (counted) when there is none.
func (r *relay) admit(client netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.active >= r.o.maxConns {
		r.stats.refused.Add(1)
		r.stats.overLimit.Add(1)
		return false
	}
	if m := r.o.maxConnsPerClient; m > 0 {
		if r.clientConns[client] >= m {
			r.stats.refused.Add(1)
			r.stats.clientLimit.Add(1)
			return false
		}
		r.clientConns[client]++
	}
	r.active++
	return true
}

// release gives back a place admit took.
func (r *relay) release(client netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if r.o.maxConnsPerClient > 0 {
		if r.clientConns[client]--; r.clientConns[client] <= 0 {
			delete(r.clientConns, client)
		}
	}
}

func (r *relay) forget(cs ...net.Conn) {
	r.mu.Lock()
	for _, c := range cs {
		delete(r.conns, c)
	}
	r.mu.Unlock()
}

// track registers c to be closed when the relay stops; false when it
// has stopped already.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

// rejection is how the client learns of a failed kernel connect: the
// same answer the destination's network gave the relay, counted.
func (r *relay) rejection(err error) socket.Reject {
	r.stats.dialFailed.Add(1)
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		r.stats.dialRefused.Add(1)
		return socket.RejectReset
	case errors.Is(err, syscall.EHOSTUNREACH):
		r.stats.dialUnreach.Add(1)
		return socket.RejectHostUnreach
	case errors.Is(err, syscall.ENETUNREACH):
		r.stats.dialUnreach.Add(1)
		return socket.RejectNetUnreach
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		// A prohibit route or a firewall rule refused the connect.
		r.stats.dialUnreach.Add(1)
		return socket.RejectAdminProhibited
	case errors.As(err, &ne) && ne.Timeout():
		// No answer: neither does the client get one, as without the
		// relay. Its retransmitted SYN is a new attempt.
		r.stats.dialTimeout.Add(1)
		return socket.RejectSilent
	}
	r.stats.dialOther.Add(1)
	return socket.RejectReset
}

// relayHeld connects to the original destination of a held SYN from the
// kernel first, and answers the client as the destination answered the
// kernel: the handshake completes only if the connect did; otherwise a
// reset, an ICMP unreachable or nothing (rejection). Then it copies both
// ways, passing each side's end on as a FIN.
func (r *relay) relayHeld(req *netconn.HeldRequest) {
	defer r.wg.Done()
	defer r.release(req.Client().Addr())
	k, local, err := r.dialUpstream(req.OrigDst())
	defer r.dropUpstream(local)
	if err != nil {
		if r.ctx.Err() != nil {
			return // stopping: the listener is closed, and so the request
		}
		how := r.rejection(err)
		if how == socket.RejectSilent {
			r.rememberTimeout(req.OrigDst())
		}
		req.Reject(how)
		return
	}
	if !r.track(k) {
		k.Close()
		req.Reject(socket.RejectReset)
		return
	}
	c, err := req.Complete(r.ctx)
	if err != nil {
		// The client went away (or the relay stops): the destination
		// sees the connection end.
		r.stats.handshakeErr.Add(1)
		r.forget(k)
		k.Close()
		return
	}
	if !r.track(c) {
		r.forget(k)
		k.Close()
		reset(c)
		return
	}
	r.stats.relayed.Add(1)
	r.pipe(c, k)
}

// dialUpstream connects to orig from the kernel, with the loop guard,
// and records the socket's local address in the upstream set before the
// connect starts (bindUpstream); the caller drops it when the socket has
// closed. On error nothing stays recorded.
func (r *relay) dialUpstream(orig netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	var local netip.AddrPort
	d := net.Dialer{Timeout: r.o.dialTimeout, Control: func(network, address string, c syscall.RawConn) error {
		if err := r.o.control(network, address, c); err != nil {
			return err
		}
		r.dropUpstream(local) // a second attempt of the same dial
		local = r.bindUpstream(network, orig, c)
		r.addUpstream(local)
		return nil
	}}
	k, err := d.DialContext(r.ctx, "tcp", orig.String())
	if err != nil {
		r.dropUpstream(local)
		return nil, netip.AddrPort{}, err
	}
	return k, local, nil
}

// pipe copies between the client's connection c and the kernel's k
// until both ways have ended, then closes and forgets both.
func (r *relay) pipe(c, k net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, n *atomic.Uint64) {
		m, err := io.Copy(dst, src)
		n.Add(uint64(m))
		if err != nil {
			// A reset or a failed write: nothing more can pass either
			// way, and the other side learns it as a reset too.
			reset(dst)
			reset(src)
		} else if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(k, c, &r.stats.bytesOut)
	pipe(c, k, &r.stats.bytesIn)
	// Both ways must end: the first done may be this goroutine's own, and
	// closing then would cut a client still sending after the
	// destination's FIN (and leave the other pipe running untracked).
	<-done
	<-done
	c.Close()
	k.Close()
	r.forget(c, k)
}

// listenRelayUDP opens the transparent UDP socket of one family on the
// rule's port: the net.PacketConn (closing it ends udpLoop) and its
// socket, which udpLoop reads with each datagram's TTL.
func listenRelayUDP(n *socket.Net, network, address string) (*netconn.UDPConn, *socket.Socket, error) {
	var s *socket.Socket
	lc := netconn.ListenConfig{Net: n, Control: func(nw, a string, so *socket.Socket) error {
		s = so
		return netconn.Transparent(nw, a, so)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, address)
	if err != nil {
		return nil, nil, err
	}
	u, ok := pc.(*netconn.UDPConn)
	if !ok || s == nil {
		pc.Close()
		return nil, nil, fmt.Errorf("listen %s %s: not a UDP socket", network, address)
	}
	return u, s, nil
}

// udpLoop reads the diverted datagrams of one family and hands each to
// its flow's kernel socket.
func (r *relay) udpLoop(u *socket.Socket) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, orig, hops, err := u.RecvMsgHops(buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EBADF) || r.isClosed() {
				return
			}
			continue
		}
		if !orig.IsValid() || !src.IsValid() || r.isOwn(orig.Addr()) {
			r.stats.drops.Add(1)
			continue
		}
		if r.isUpstream(src) {
			// A flow's own kernel socket sent it into the TUN.
			r.stats.loopUDP.Add(1)
			r.warnLoop("UDP", src, orig)
			continue
		}
		orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
		if r.hopExpired(flowKey{src, orig}, buf[:n], hops) {
			continue // relay_hops.go: no flow for it
		}
		fl := r.flow(flowKey{src, orig})
		if fl == nil {
			continue
		}
		// Never blocking: this loop takes every flow's first datagram,
		// and one flow's full socket must not hold up the others.
		r.toKernel(fl, buf[:n], hops, false)
	}
}

// relayEpoch is what flows' last-use times count from: durations on the
// monotonic clock, which a change of the system's clock does not move (a
// wall-clock stamp would keep flows for as long as the clock went back,
// or expire them all when it jumped forward).
var relayEpoch = time.Now()

// toKernel sends a client's datagram on its flow's kernel socket; false
// (counted) when the kernel refused it. With wait false it does not wait
// for room in the socket's send buffer: a datagram that does not fit is
// dropped (as a congested path drops it) and counted.
func (r *relay) toKernel(fl *udpFlow, b []byte, hops int, wait bool) bool {
	fl.last.Store(int64(time.Since(relayEpoch)))
	if r.hopExpired(fl.unreach.key, b, hops) { // relay_hops.go
		return false
	}
	r.setFlowHops(fl, hops)
	fl.unreach.remember(b) // relay_icmp.go: what an ICMP error about it quotes
	var err error
	if wait {
		_, err = fl.k.Write(b)
	} else {
		err = tryWrite(fl.k, b)
	}
	if err != nil {
		r.stats.drops.Add(1)
		if errors.Is(err, syscall.EAGAIN) {
			r.stats.udpFull.Add(1)
		} else {
			r.stats.udpSendErrs.Add(1)
			r.sendUnreach(fl, b, err) // relay_icmp.go
		}
		return false
	}
	r.stats.dgramOut.Add(1)
	return true
}

// tryWrite makes one non-blocking send attempt on c's socket: EAGAIN
// when its send buffer (or a datagram peer's queue) is full, where
// c.Write would wait for room.
func tryWrite(c net.Conn, b []byte) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		_, err := c.Write(b)
		return err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			_, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true // done either way: never wait for room
			}
		}
	})
	if err != nil {
		return err // closed
	}
	return werr
}

// flow finds or opens the flow of key; nil (counted) when it cannot.
func (r *relay) flow(key flowKey) *udpFlow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fl, ok := r.flows[key]; ok {
		return fl
	}
	if r.closed {
		return nil
	}
	if len(r.flows) >= r.o.maxFlows {
		r.stats.drops.Add(1)
		r.stats.flowLimit.Add(1)
		return nil
	}
	perClient := r.o.maxFlowsPerClient > 0
	if perClient && r.clientFlows[key.client.Addr()] >= r.o.maxFlowsPerClient {
		r.stats.drops.Add(1)
		r.stats.flowCliLimit.Add(1)
		return nil
	}
	// Connected, so only the original destination's answers come back.
	dial := r.dialUDP
	if dial == nil {
		dial = func(a netip.AddrPort) (net.Conn, error) {
			d := net.Dialer{Control: r.o.control}
			return d.Dial("udp", a.String())
		}
	}
	k, err := dial(key.orig)
	if err != nil {
		r.stats.drops.Add(1)
		r.stats.udpSendErrs.Add(1)
		r.unreachTo(key, nil, err) // relay_icmp.go: no route, the client learns it
		return nil
	}
	fl := &udpFlow{k: k, s: r.flowSocket(key), done: make(chan struct{})}
	fl.unreach.key = key
	// A connected UDP socket has its local address from the connect,
	// before its first datagram leaves: recorded now, it is known
	// before that datagram could come back.
	if a, ok := k.LocalAddr().(*net.UDPAddr); ok {
		fl.local = a.AddrPort()
		r.addUpstream(fl.local)
	}
	fl.last.Store(int64(time.Since(relayEpoch)))
	r.flows[key] = fl
	if perClient {
		r.clientFlows[key.client.Addr()]++
	}
	r.stats.flows.Add(1)
	r.wg.Add(1)
	go r.udpBack(key, fl)
	if fl.s != nil {
		r.stats.flowSocks.Add(1)
		r.wg.Add(1)
		go r.udpOut(fl)
	}
	return fl
}

// flowSocket opens the stack's socket of a flow, as a TPROXY UDP proxy
// does: transparent, bound to the original destination and connected to
// the client, so that the client's next datagrams arrive on it (a
// connected transparent socket takes them before the one on relayPort)
// and answers leave from the original destination without a socket per
// datagram. nil when it cannot be made: the flow then answers with
// netconn.WriteFromTo.
func (r *relay) flowSocket(key flowKey) *socket.Socket {
	fam := socket.AF_INET
	if key.orig.Addr().Is6() {
		fam = socket.AF_INET6
	}
	s, err := r.n.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return nil
	}
	if s.SetSockOptInt(socket.SOL_IP, socket.IP_TRANSPARENT, 1) != nil ||
		s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) != nil ||
		s.Bind(socket.InetAddr(key.orig)) != nil || s.Connect(socket.InetAddr(key.client)) != nil {
		s.Close()
		return nil
	}
	return s
}

// udpOut passes the client's datagrams that arrive on the flow's own
// socket to the kernel, until the flow ends. It waits for readability
// without a buffer and takes one from relayBufs per datagram, so an idle
// flow holds none.
func (r *relay) udpOut(fl *udpFlow) {
	defer r.wg.Done()
	e := waiter.Entry{C: make(chan struct{}, 1)}
	fl.s.Waiter().Register(&e, waiter.EventIn)
	defer fl.s.Waiter().Unregister(&e)
	for {
		// Drain, then look: a datagram after the look leaves a token.
		select {
		case <-e.C:
		default:
		}
		if fl.s.Readiness(waiter.EventIn) == 0 {
			select {
			case <-e.C:
			case <-fl.done:
				return
			}
			continue
		}
		b := r.getBuf()
		n, _, _, hops, err := fl.s.RecvMsgHops(*b, socket.MSG_DONTWAIT)
		if err != nil {
			r.putBuf(b)
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ECONNREFUSED) {
				continue // gone already, or an ICMP error: UDP goes on
			}
			return // closed (EBADF) when the flow ends
		}
		ok := r.toKernel(fl, (*b)[:n], hops, true) // the flow's own goroutine may wait
		r.putBuf(b)
		if ok {
			r.stats.flowSockOut.Add(1)
		}
	}
}

// udpBack sends a flow's answers to its client from the original
// destination until the flow has been idle for --udp-timeout.
func (r *relay) udpBack(key flowKey, fl *udpFlow) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		if r.flows[key] == fl {
			delete(r.flows, key)
			if r.o.maxFlowsPerClient > 0 {
				if r.clientFlows[key.client.Addr()]--; r.clientFlows[key.client.Addr()] <= 0 {
					delete(r.clientFlows, key.client.Addr())
				}
			}
		}
		r.mu.Unlock()
		fl.close()
		r.dropUpstream(fl.local)
	}()
	kr := r.newKernelReader(fl.k)
	for {
		fl.k.SetReadDeadline(relayEpoch.Add(time.Duration(fl.last.Load()) + r.o.udpTimeout))
		b, n, err := kr.read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if time.Since(relayEpoch.Add(time.Duration(fl.last.Load()))) >= r.o.udpTimeout {
					r.stats.expired.Add(1)
					return
				}
				continue // traffic out since: a later deadline
			}
			var ne *net.OpError
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				// An ICMP error (ECONNREFUSED) for an earlier datagram: UDP goes on.
				r.udpUnreach(fl, err) // relay_icmp.go: the client learns it too
				continue
			}
			return
		}
		fl.last.Store(int64(time.Since(relayEpoch)))
		if fl.s != nil {
			_, err = fl.s.Send((*b)[:n], socket.MSG_NOSIGNAL)
		} else {
			_, err = netconn.WriteFromTo(r.n, (*b)[:n], key.orig, key.client)
		}
		r.putBuf(b)
		if err != nil {
			r.stats.drops.Add(1)
			r.stats.udpSendErrs.Add(1)
			continue
		}
		r.stats.dgramIn.Add(1)
	}
}

// kernelReader reads a flow's kernel socket one datagram at a time into
// a buffer from relayBufs, which the caller gives back. It waits for
// readability (and the socket's read deadline) in the runtime's poller
// without a buffer: the buffer is taken only when a read finds a
// datagram, and given back at once when it finds none (EAGAIN). Made
// once per flow, so a read allocates nothing.
type kernelReader struct {
	r    *relay
	k    net.Conn
	rc   syscall.RawConn // nil: k is no syscall.Conn, read with k.Read
	fn   func(fd uintptr) bool
	b    *[]byte
	n    int
	rerr error
}

func (r *relay) newKernelReader(k net.Conn) *kernelReader {
	kr := &kernelReader{r: r, k: k}
	if sc, ok := k.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			kr.rc = rc
		}
	}
	kr.fn = kr.tryRead
	return kr
}

// tryRead is the RawConn.Read callback: false to wait for readability.
func (kr *kernelReader) tryRead(fd uintptr) bool {
	kr.b = kr.r.getBuf()
	for {
		kr.n, kr.rerr = syscall.Read(int(fd), *kr.b)
		if kr.rerr != syscall.EINTR {
			break
		}
	}
	if kr.rerr == syscall.EAGAIN {
		kr.r.putBuf(kr.b)
		kr.b = nil
		return false // wait for readability, holding nothing
	}
	return true
}

// read returns the next datagram: a buffer the caller gives back
// (putBuf) and its length.
func (kr *kernelReader) read() (*[]byte, int, error) {
	if kr.rc == nil {
		b := kr.r.getBuf()
		n, err := kr.k.Read(*b)
		if err != nil {
			kr.r.putBuf(b)
			return nil, 0, err
		}
		return b, n, nil
	}
	kr.b, kr.rerr = nil, nil
	err := kr.rc.Read(kr.fn)
	if err == nil && kr.rerr != nil {
		err = &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("read", kr.rerr)}
	}
	if err != nil {
		if kr.b != nil {
			kr.r.putBuf(kr.b)
			kr.b = nil
		}
		return nil, 0, err
	}
	b := kr.b
	kr.b = nil
	return b, kr.n, nil
}

// bindUpstream binds an upstream TCP socket, before its connect, to the
// local address its connect would use, port 0, and returns that address
// with the port the kernel gave (invalid when it could not). A connect
// picks the source address and port only as its SYN leaves, and that
// SYN may come straight back into the TUN: the address must be in the
// upstream set before, so it is chosen here. The source address is the
// one the kernel's routing picks for the destination (a route lookup
// with the loop guard's mark and device, relay_route.go), so binding it
// keeps the connect's route. Not the wildcard address: the
// port alone would mistake a client elsewhere that happens to use it for
// a loop. The cost: a route lookup per connect (one netlink request and
// answer), and a port per local address rather than per destination.
func (r *relay) bindUpstream(network string, dst netip.AddrPort, c syscall.RawConn) netip.AddrPort {
	v6 := len(network) > 0 && network[len(network)-1] == '6'
	r.routeOnce.Do(func() { r.route = newRouteSource(r.o) })
	src, ok := r.route.source(dst.Addr()) // relay_route.go
	if !ok || !v6 && !src.Is4() {
		return netip.AddrPort{} // the connect fails as it would, or loops unseen
	}
	var got netip.AddrPort
	c.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		switch {
		case v6:
			sa = &unix.SockaddrInet6{Addr: src.As16()}
		case src.Is4():
			sa = &unix.SockaddrInet4{Addr: src.As4()}
		default:
			return
		}
		// SO_REUSEADDR lets the port choice take a port held by
		// TIME_WAIT sockets when no other is free, as a connect's own
		// choice would: a bind takes a port per local address, where a
		// connect needs one per destination.
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if unix.Bind(int(fd), sa) != nil {
			return
		}
		got = sockname(int(fd))
	})
	return got
}

// sockname is fd's local address, IPv4-mapped as IPv4 (invalid on error).
func sockname(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// addUpstream records a the local address of a live upstream socket
// (nothing when invalid).
func (r *relay) addUpstream(a netip.AddrPort) {
	if !a.IsValid() {
		return
	}
	a = orig4(a)
	r.upMu.Lock()
	if r.upstream == nil {
		r.upstream = map[netip.AddrPort]int{}
	}
	r.upstream[a]++
	r.upMu.Unlock()
}

// dropUpstream forgets a, when its socket has closed.
func (r *relay) dropUpstream(a netip.AddrPort) {
	if !a.IsValid() {
		return
	}
	r.upMu.Lock()
	a = orig4(a)
	if r.upstream[a]--; r.upstream[a] <= 0 {
		delete(r.upstream, a)
	}
	r.upMu.Unlock()
}

// isUpstream reports whether a is the local address of one of the
// relay's live upstream sockets: what arrives from it is a loop.
func (r *relay) isUpstream(a netip.AddrPort) bool {
	a = orig4(a)
	r.upMu.Lock()
	_, ok := r.upstream[a]
	r.upMu.Unlock()
	return ok
}

// warnLoop says once, on stderr, that the relay saw its own traffic come
// back, and how to stop it.
func (r *relay) warnLoop(proto string, from, to netip.AddrPort) {
	r.loopOnce.Do(func() {
		w := r.warn
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintf(w, "sockstack relay: warning: routing loop: %s from %s to %s is the relay's own upstream socket come back into the TUN (the TUN carries the route to the destination); rejected, and every further one (counted as loops). Keep the relay's traffic out of the TUN: --mark N with `ip rule add fwmark N lookup TABLE` (TABLE routing via the real interface), or --bind-device IFNAME; see docs/transparent.md\n", proto, from, to)
	})
}

// control sets the loop guard (--mark, --bind-device) on an upstream
// socket before it connects.
func (o relayOpts) control(_, _ string, c syscall.RawConn) error {
	if o.mark == 0 && o.bindDevice == "" {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) { serr = o.guard(int(fd)) })
	if err != nil {
		return err
	}
	return serr
}

// guard sets SO_MARK and SO_BINDTODEVICE on fd as the flags ask, with
// errors that name the flag and what it needs.
func (o relayOpts) guard(fd int) error {
	if o.mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(o.mark)); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("--mark %d: setting SO_MARK needs CAP_NET_ADMIN (run as root): %w", o.mark, err)
			}
			return fmt.Errorf("--mark %d: SO_MARK: %w", o.mark, err)
		}
	}
	if o.bindDevice != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, o.bindDevice); err != nil {
			switch {
			case errors.Is(err, unix.ENODEV):
				return fmt.Errorf("--bind-device %s: no such interface in the relay's network namespace: %w", o.bindDevice, err)
			case errors.Is(err, unix.EPERM):
				return fmt.Errorf("--bind-device %s: SO_BINDTODEVICE needs CAP_NET_RAW here (run as root): %w", o.bindDevice, err)
			}
			return fmt.Errorf("--bind-device %s: SO_BINDTODEVICE: %w", o.bindDevice, err)
		}
	}
	return nil
}

// checkUpstream tries the loop guard on a throwaway socket before the
// relay starts, so a flag the kernel refuses (no privilege, no such
// interface) is an error at once rather than a reset for every client.
func checkUpstream(o relayOpts) error {
	if o.mark == 0 && o.bindDevice == "" {
		return nil
	}
	if n := len(o.bindDevice); n >= unix.IFNAMSIZ {
		return fmt.Errorf("--bind-device %s: an interface name has at most %d characters", o.bindDevice, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("a socket to check --mark and --bind-device: %w", err)
		}
	}
	defer unix.Close(fd)
	return o.guard(fd)
}

// since is the time since relayEpoch, or the test's clock.
func (r *relay) since() time.Duration {
	if r.now != nil {
		return r.now()
	}
	return time.Since(relayEpoch)
}

// orig4 is the form of an original destination the cache keys on (an
// IPv4-mapped address as IPv4).
func orig4(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// cachedTimeout reports (and counts as a timed-out connect) whether a
// connect to orig timed out within --timeout-cache.
func (r *relay) cachedTimeout(orig netip.AddrPort) bool {
	if r.o.timeoutCache <= 0 {
		return false
	}
	orig = orig4(orig)
	r.mu.Lock()
	until, ok := r.timedOut[orig]
	if ok && r.since() >= until {
		delete(r.timedOut, orig)
		ok = false
	}
	r.mu.Unlock()
	if ok {
		r.stats.tcHits.Add(1)
		r.stats.dialFailed.Add(1)
		r.stats.dialTimeout.Add(1)
	}
	return ok
}

// rememberTimeout notes that a connect to orig timed out, for
// --timeout-cache; with the cache full (expired entries dropped first)
// it is not remembered, and counted.
func (r *relay) rememberTimeout(orig netip.AddrPort) {
	if r.o.timeoutCache <= 0 {
		return
	}
	orig = orig4(orig)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timedOut == nil {
		r.timedOut = map[netip.AddrPort]time.Duration{}
	}
	now := r.since()
	if _, ok := r.timedOut[orig]; !ok && len(r.timedOut) >= relayTimeoutCacheMax {
		for a, until := range r.timedOut {
			if now >= until {
				delete(r.timedOut, a)
			}
		}
		if len(r.timedOut) >= relayTimeoutCacheMax {
			r.stats.tcFull.Add(1)
			return
		}
	}
	r.timedOut[orig] = now + r.o.timeoutCache
	r.stats.tcAdded.Add(1)
}
