package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// ICMP through the relay (docs/transparent.md, "ICMP through the
// relay"): echo requests a divert rule hands to the relay's transparent
// raw sockets are sent to their destinations from a host socket, and
// the replies come back to the client from the destination's address;
// a UDP flow whose kernel socket reports the destination refused or
// unreachable makes the stack send the client that ICMP error.

// relayICMPOpts are the relay's ICMP flags.
type relayICMPOpts struct {
	off       bool          // --no-icmp
	maxEchoes int           // --max-echoes: outstanding at once
	timeout   time.Duration // --echo-timeout
	sock      string        // --echo-socket: auto, ping or raw
}

func addRelayICMPFlags(c *cobra.Command, o *relayICMPOpts) {
	fl := c.Flags()
	fl.BoolVar(&o.off, "no-icmp", false, "relay no pings and send clients no ICMP errors for their UDP flows")
	fl.IntVar(&o.maxEchoes, "max-echoes", 256, "most echo requests awaiting their reply at once; more are dropped and counted")
	fl.DurationVar(&o.timeout, "echo-timeout", 10*time.Second, "how long a relayed echo request waits for its reply")
	fl.StringVar(&o.sock, "echo-socket", "auto", "the host socket echoes leave from: ping (SOCK_DGRAM/IPPROTO_ICMP, needs net.ipv4.ping_group_range), raw (needs CAP_NET_RAW) or auto (ping, else raw)")
}

// check validates the flags (a usage error's text, or "").
func (o *relayICMPOpts) check() string {
	switch {
	case o.maxEchoes < 1 || o.maxEchoes > 65535:
		return fmt.Sprintf("--max-echoes %d: want 1 to 65535", o.maxEchoes)
	case o.timeout <= 0:
		return fmt.Sprintf("--echo-timeout %v: want a positive duration, like 10s", o.timeout)
	case o.sock != "auto" && o.sock != "ping" && o.sock != "raw":
		return fmt.Sprintf("--echo-socket %q: want auto, ping or raw", o.sock)
	}
	return ""
}

// relayICMPStats are the ICMP counters, printed when the relay stops.
type relayICMPStats struct {
	requests    atomic.Uint64 // echo requests from clients taken
	sent        atomic.Uint64 // of requests: sent to their destination
	replies     atomic.Uint64 // replies relayed back to the client
	timedOut    atomic.Uint64 // sent, no reply within --echo-timeout
	dropped     atomic.Uint64 // requests not sent:
	overLimit   atomic.Uint64 // - --max-echoes outstanding already
	sendErrs    atomic.Uint64 // - the host's send failed (or no host socket)
	stray       atomic.Uint64 // host replies matching no outstanding request (late, or not ours)
	replyErrs   atomic.Uint64 // replies the stack could not send to the client
	errorsIn    atomic.Uint64 // ICMP errors about a relayed echo (unreachable, time exceeded): passed to its client
	errorsRL    atomic.Uint64 // of errorsIn: not passed, the stack's ICMP rate limit
	unreachSent atomic.Uint64 // ICMP unreachables sent to UDP clients
	unreachRL   atomic.Uint64 // of those due: not sent, the stack's ICMP rate limit
	// TTL (hop limit) 1 on arrival: not forwarded, time exceeded sent
	// (relay_hops.go).
	ttlEcho atomic.Uint64 // echo requests
	ttlUDP  atomic.Uint64 // UDP datagrams (also in the UDP drops)
	ttlRL   atomic.Uint64 // of both: the time exceeded held back by the rate limit (or --no-icmp)
}

// relayICMP is the relay's ICMP half.
type relayICMP struct {
	o     relayICMPOpts
	st    *stack.Stack
	nic   *stack.NIC
	stats relayICMPStats
	fams  []*echoFamily
	// pending are the echoes sent, awaiting their reply; their number
	// is bounded by --max-echoes over both families.
	mu      sync.Mutex
	pending map[echoKey]*echoPending
	closed  bool
}

// echoKey names a relayed echo on the host side: the destination and
// the sequence number the relay gave it (the identifier is the host
// socket's, the same for every echo of a family).
type echoKey struct {
	dst netip.Addr
	seq uint16
}

// echoPending is the client's side of a relayed echo.
type echoPending struct {
	client, orig netip.Addr
	id, seq      uint16
	timer        *time.Timer
	req          []byte // the request's start, which an ICMP error about it quotes
}

// echoFamily is one address family's pair of sockets.
type echoFamily struct {
	v6  bool
	in  *socket.Socket // the stack's transparent raw socket: the clients' requests
	out net.PacketConn // the host's socket to the destinations
	raw bool           // out is a raw socket: the relay's own identifier, id
	// id is the identifier of the relay's echoes: the raw socket's
	// choice, or the one the kernel bound the ping socket to (idKnown
	// false when it could not be learnt: no loop detection then).
	id      uint16
	idKnown bool
	next    atomic.Uint32 // the next sequence number to try
	oob     [32]byte      // sendEcho's control message (the requests loop's own)
}

func newRelayICMP(st *stack.Stack, nic *stack.NIC, o relayICMPOpts) *relayICMP {
	return &relayICMP{o: o, st: st, nic: nic, pending: map[echoKey]*echoPending{}}
}

// start opens each family's sockets, adds the echo divert rules and
// starts the loops (tracked by r.wg); the closer ends them. A family
// whose host socket cannot be opened gets no rule (its echoes stay
// unanswered, as before) and a message saying why.
func (ic *relayICMP) start(r *relay, v6 bool, w io.Writer) io.Closer {
	if ic.o.off {
		fmt.Fprintln(w, "  ICMP off (--no-icmp): pings are not relayed, UDP clients get no unreachables")
		return ic
	}
	fams := []bool{false}
	if v6 {
		fams = append(fams, true)
	}
	for _, is6 := range fams {
		name := "IPv4"
		if is6 {
			name = "IPv6"
		}
		f, how, err := ic.openFamily(r, is6)
		if err != nil {
			fmt.Fprintf(w, "  %s echo: %v; pings through the relay get no answer\n", name, err)
			continue
		}
		dst := "0.0.0.0/0"
		if is6 {
			dst = "::/0"
		}
		if err := ic.st.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentICMPEcho, Dst: netip.MustParsePrefix(dst), NIC: ic.nic}); err != nil {
			f.close()
			fmt.Fprintf(w, "  %s echo: divert rule: %v\n", name, err)
			continue
		}
		fmt.Fprintf(w, "  %s echo requests are relayed from %s\n", name, how)
		ic.mu.Lock()
		ic.fams = append(ic.fams, f)
		ic.mu.Unlock()
		r.wg.Add(2)
		go ic.requests(r, f)
		go ic.replies(r, f)
	}
	return ic
}

// openFamily opens a family's stack-side and host-side sockets.
func (ic *relayICMP) openFamily(r *relay, v6 bool) (*echoFamily, string, error) {
	f := &echoFamily{v6: v6}
	var err error
	var how string
	if f.out, f.raw, how, err = openEchoConn(v6, ic.o.sock, r.o); err != nil {
		return nil, "", err
	}
	if f.raw {
		f.id, f.idKnown = uint16(rand.Uint32()), true
	} else if a, ok := f.out.LocalAddr().(*net.UDPAddr); ok && a.Port != 0 {
		f.id, f.idKnown = uint16(a.Port), true // bound in openPingConn
	}
	f.next.Store(rand.Uint32())
	if f.in, err = stackEchoSocket(r.n, v6); err != nil {
		f.out.Close()
		return nil, "", fmt.Errorf("the stack's raw socket: %v", err)
	}
	return f, how, nil
}

// stackEchoSocket opens the stack's transparent raw socket of a family,
// which the echo rule's requests reach.
func stackEchoSocket(n *socket.Net, v6 bool) (*socket.Socket, error) {
	fam, proto, level, opt := socket.AF_INET, socket.IPPROTO_ICMP, socket.SOL_IP, socket.IP_TRANSPARENT
	if v6 {
		fam, proto, level, opt = socket.AF_INET6, socket.IPPROTO_ICMPV6, socket.IPPROTO_IPV6, socket.IPV6_TRANSPARENT
	}
	s, err := n.Socket(fam, socket.SOCK_RAW, proto)
	if err != nil {
		return nil, err
	}
	err = s.SetSockOptInt(level, opt, 1)
	if err == nil && v6 {
		// Only echo requests; the destination comes with each.
		var filt socket.ICMP6Filter
		for i := range filt {
			filt[i] = ^uint32(0)
		}
		filt[128>>5] &^= 1 << (128 & 31)
		if err = s.SetSockOpt(socket.IPPROTO_ICMPV6, socket.ICMP6_FILTER, filt); err == nil {
			err = s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
		}
		if err == nil { // the client's hop limit, which the relay's echo carries on less one
			err = s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (f *echoFamily) close() {
	f.in.Close()
	f.out.Close()
}

// openEchoConn opens the host socket echoes leave from: an unprivileged
// ICMP ping socket (the kernel picks its identifier and computes the
// checksums), else with mode auto a raw socket. Either gets the loop
// guard of the relay's other upstream sockets (--mark, --bind-device).
func openEchoConn(v6 bool, mode string, o relayOpts) (c net.PacketConn, raw bool, how string, err error) {
	fam, proto, rawNet, rawAddr, sysctl := unix.AF_INET, unix.IPPROTO_ICMP, "ip4:icmp", "0.0.0.0", "net.ipv4.ping_group_range"
	if v6 {
		fam, proto, rawNet, rawAddr = unix.AF_INET6, unix.IPPROTO_ICMPV6, "ip6:ipv6-icmp", "::"
	}
	var perr error
	if mode != "raw" {
		if c, perr = openPingConn(fam, proto, o); perr == nil {
			return c, false, "an ICMP ping socket", nil
		}
		if mode == "ping" {
			return nil, false, "", fmt.Errorf("no ICMP ping socket (%v): %s must include group %d", perr, sysctl, os.Getegid())
		}
	}
	lc := net.ListenConfig{Control: o.control}
	c, rerr := lc.ListenPacket(context.Background(), rawNet, rawAddr)
	if rerr == nil {
		return c, true, "a raw ICMP socket", nil
	}
	if perr == nil {
		return nil, false, "", fmt.Errorf("no raw ICMP socket: %v (needs CAP_NET_RAW)", rerr)
	}
	return nil, false, "", fmt.Errorf("neither an ICMP ping socket (%v: %s must include group %d) nor a raw one (%v: needs CAP_NET_RAW)",
		perr, sysctl, os.Getegid(), rerr)
}

// openPingConn makes a SOCK_DGRAM ICMP socket a net.PacketConn (as a
// UDP one: the identifier stands where a port would).
func openPingConn(fam, proto int, o relayOpts) (net.PacketConn, error) {
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	// ICMP errors about its echoes (unreachable, time exceeded) come
	// to the error queue, to be passed to the clients.
	if fam == unix.AF_INET {
		err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_RECVERR, 1)
	} else {
		err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
	}
	if err == nil {
		err = o.guard(fd)
	}
	if err == nil {
		// Bound now, the kernel picks the identifier (a ping socket's
		// port) at once: the relay knows its own echoes by it, should
		// they come back into the TUN (a loop).
		if fam == unix.AF_INET {
			err = unix.Bind(fd, &unix.SockaddrInet4{})
		} else {
			err = unix.Bind(fd, &unix.SockaddrInet6{})
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "ping")
	defer f.Close()
	return net.FilePacketConn(f)
}

// Close ends the loops (their sockets close) and the timers.
func (ic *relayICMP) Close() error {
	ic.mu.Lock()
	ic.closed = true
	fams := ic.fams
	for k, p := range ic.pending {
		p.timer.Stop()
		delete(ic.pending, k)
	}
	ic.mu.Unlock()
	for _, f := range fams {
		f.close()
	}
	return nil
}

// requests reads the clients' echo requests from the stack and sends
// each to its destination.
func (ic *relayICMP) requests(r *relay, f *echoFamily) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		var n int
		var from socket.Sockaddr
		var orig netip.Addr
		var err error
		var m []byte
		hops := 0
		if f.v6 {
			var info socket.Msg6Info
			n, _, from, info, err = f.in.RecvMsg6(buf, 0)
			orig, m = info.Addr, buf[:max(n, 0)]
			if info.HasHopLimit {
				hops = info.HopLimit
			}
		} else {
			n, from, err = f.in.RecvFrom(buf, 0)
			if err == nil {
				orig, m = ipv4Echo(buf[:n])
				if n >= 20 {
					hops = int(buf[8])
				}
			}
		}
		if err != nil {
			if errors.Is(err, syscall.EBADF) || r.isClosed() {
				return
			}
			continue
		}
		sa, ok := from.(*socket.SockaddrInet)
		want := uint8(8)
		if f.v6 {
			want = 128
		}
		// The raw socket sees every echo delivered to the stack too:
		// its own addresses' are answered by the stack.
		if !ok || len(m) < 8 || m[0] != want || !orig.IsValid() || r.isOwn(orig) {
			continue
		}
		client := sa.AddrPort.Addr().Unmap()
		if ic.looped(f, orig.Unmap(), m) {
			r.stats.loopICMP.Add(1)
			r.warnLoop("ICMP echo", netip.AddrPortFrom(client, 0), netip.AddrPortFrom(orig.Unmap(), 0))
			continue
		}
		if !ic.echoHops(client, orig.Unmap(), m, hops) { // relay_hops.go
			continue
		}
		ic.relayEcho(f, client, orig.Unmap(), m, hops)
	}
}

// ipv4Echo is the original destination and ICMP message of a raw IPv4
// socket's packet.
func ipv4Echo(p []byte) (netip.Addr, []byte) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return netip.Addr{}, nil
	}
	hl := int(p[0]&0xf) * 4
	if hl < 20 || len(p) < hl {
		return netip.Addr{}, nil
	}
	return netip.AddrFrom4([4]byte(p[16:20])), p[hl:]
}

// looped reports whether the echo request m to orig is one of the
// relay's own echoes come back into the TUN (the TUN carries the route
// to orig and no --mark or --bind-device keeps the host socket out of
// it): it carries the host socket's identifier and the sequence number
// of an echo to orig still outstanding. That echo is then over (no
// reply can come: each round would only send it again); the client
// behind it hears nothing.
func (ic *relayICMP) looped(f *echoFamily, orig netip.Addr, m []byte) bool {
	if !f.idKnown || binary.BigEndian.Uint16(m[4:6]) != f.id {
		return false
	}
	k := echoKey{dst: orig, seq: binary.BigEndian.Uint16(m[6:8])}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	p := ic.pending[k]
	if p == nil {
		return false
	}
	p.timer.Stop()
	delete(ic.pending, k)
	return true
}

// relayEcho sends the echo request m from client to orig, under
// --max-echoes, with a sequence number no outstanding echo to orig has.
func (ic *relayICMP) relayEcho(f *echoFamily, client, orig netip.Addr, m []byte, hops int) {
	st := &ic.stats
	st.requests.Add(1)
	p := &echoPending{client: client, orig: orig, id: binary.BigEndian.Uint16(m[4:6]), seq: binary.BigEndian.Uint16(m[6:8]),
		req: append([]byte(nil), m[:min(len(m), 64)]...)}
	ic.mu.Lock()
	if ic.closed {
		ic.mu.Unlock()
		return
	}
	if len(ic.pending) >= ic.o.maxEchoes {
		ic.mu.Unlock()
		st.dropped.Add(1)
		st.overLimit.Add(1)
		return
	}
	// At most maxEchoes (< 65536) are taken: a free number is near.
	k := echoKey{dst: orig}
	for {
		k.seq = uint16(f.next.Add(1))
		if _, used := ic.pending[k]; !used {
			break
		}
	}
	ic.pending[k] = p
	p.timer = time.AfterFunc(ic.o.timeout, func() {
		ic.mu.Lock()
		if ic.pending[k] == p {
			delete(ic.pending, k)
			st.timedOut.Add(1)
		}
		ic.mu.Unlock()
	})
	ic.mu.Unlock()

	out := make([]byte, len(m))
	copy(out, m)
	binary.BigEndian.PutUint16(out[4:6], f.id) // a ping socket puts its own
	binary.BigEndian.PutUint16(out[6:8], k.seq)
	out[1], out[2], out[3] = 0, 0, 0 // a ping socket takes code 0 only
	var to net.Addr = &net.UDPAddr{IP: orig.AsSlice()}
	if f.raw {
		to = &net.IPAddr{IP: orig.AsSlice()}
		if !f.v6 {
			binary.BigEndian.PutUint16(out[2:4], icmpChecksum(out)) // the kernel fills ICMPv6's only
		}
	}
	if err := f.sendEcho(out, to, max(hops-1, 0)); err != nil { // relay_hops.go
		ic.mu.Lock()
		if ic.pending[k] == p {
			delete(ic.pending, k)
			p.timer.Stop()
		}
		ic.mu.Unlock()
		st.dropped.Add(1)
		st.sendErrs.Add(1)
		return
	}
	st.sent.Add(1)
}

// replies reads the host socket and passes each reply to an
// outstanding echo back to its client, from the echo's destination.
func (ic *relayICMP) replies(r *relay, f *echoFamily) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	want := uint8(0)
	if f.v6 {
		want = 129
	}
	for {
		n, from, err := f.out.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || r.isClosed() {
				return
			}
			// A ping socket's pending error (IP_RECVERR): the details
			// are in its error queue.
			ic.drainErrQueue(f)
			continue
		}
		m := buf[:n]
		if f.raw && n >= 8 && m[0] != want {
			ic.rawError(f, m, addrOf(from)) // a raw socket sees every ICMP message
			continue
		}
		if n < 8 || m[0] != want {
			continue
		}
		if f.raw && binary.BigEndian.Uint16(m[4:6]) != f.id {
			continue // another program's
		}
		k := echoKey{dst: addrOf(from), seq: binary.BigEndian.Uint16(m[6:8])}
		ic.mu.Lock()
		p := ic.pending[k]
		if p != nil {
			delete(ic.pending, k)
			p.timer.Stop()
		}
		ic.mu.Unlock()
		if p == nil {
			ic.stats.stray.Add(1)
			continue
		}
		binary.BigEndian.PutUint16(m[4:6], p.id)
		binary.BigEndian.PutUint16(m[6:8], p.seq)
		m[1], m[2], m[3] = 0, 0, 0
		if !f.v6 {
			binary.BigEndian.PutUint16(m[2:4], icmpChecksum(m)) // the stack fills ICMPv6's only
		}
		if err := ic.reply(f, p, m); err != nil {
			ic.stats.replyErrs.Add(1)
			continue
		}
		ic.stats.replies.Add(1)
	}
}

// echoError passes an ICMP error about the relayed echo (dst, seq) to
// its client: the same type and code, from the address that reported it,
// quoting the client's request. The echo is then over.
func (ic *relayICMP) echoError(dst netip.Addr, seq uint16, from netip.Addr, typ, code uint8) {
	k := echoKey{dst: dst, seq: seq}
	ic.mu.Lock()
	p := ic.pending[k]
	if p != nil {
		delete(ic.pending, k)
		p.timer.Stop()
	}
	ic.mu.Unlock()
	if p == nil {
		ic.stats.stray.Add(1)
		return
	}
	ic.stats.errorsIn.Add(1)
	if ic.st.SendEchoError(from, p.client, p.orig, typ, code, p.req) == syscall.EAGAIN {
		ic.stats.errorsRL.Add(1)
	}
}

// rawError reads an ICMP error a raw socket got, if it quotes one of
// the relay's echoes (its identifier), and passes it on.
func (ic *relayICMP) rawError(f *echoFamily, m []byte, from netip.Addr) {
	var q []byte
	switch {
	case !f.v6 && (m[0] == 3 || m[0] == 11):
		if in := m[8:]; len(in) >= 20 && in[0]>>4 == 4 && in[9] == unix.IPPROTO_ICMP {
			if hl := int(in[0]&0xf) * 4; len(in) >= hl+8 {
				q = in[hl:]
			}
		}
	case f.v6 && (m[0] == 1 || m[0] == 3):
		if in := m[8:]; len(in) >= 48 && in[0]>>4 == 6 && in[6] == unix.IPPROTO_ICMPV6 {
			q = in[40:]
		}
	}
	req := uint8(8)
	if f.v6 {
		req = 128
	}
	if q == nil || q[0] != req || binary.BigEndian.Uint16(q[4:6]) != f.id {
		return // not about the relay's echoes
	}
	var dst netip.Addr
	if f.v6 {
		dst = netip.AddrFrom16([16]byte(m[8+24 : 8+40]))
	} else {
		dst = netip.AddrFrom4([4]byte(m[8+16 : 8+20]))
	}
	ic.echoError(dst, binary.BigEndian.Uint16(q[6:8]), from, m[0], m[1])
}

// drainErrQueue reads a ping socket's error queue (IP_RECVERR,
// IPV6_RECVERR): each entry is an ICMP error about one of its echoes,
// the echo as sent, its destination and the reporting address.
func (ic *relayICMP) drainErrQueue(f *echoFamily) {
	sc, ok := f.out.(syscall.Conn)
	if !ok || f.raw {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [512]byte
	var oob [512]byte
	rc.Control(func(fd uintptr) {
		for range 64 { // bounded: the queue is the kernel's, refilled meanwhile
			n, oobn, _, sa, err := unix.Recvmsg(int(fd), b[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			dst := sockaddrAddr(sa)
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || n < 8 || !dst.IsValid() {
				continue
			}
			for _, cm := range msgs {
				if !(cm.Header.Level == unix.SOL_IP && cm.Header.Type == unix.IP_RECVERR ||
					cm.Header.Level == unix.SOL_IPV6 && cm.Header.Type == unix.IPV6_RECVERR) || len(cm.Data) < 16 {
					continue
				}
				// struct sock_extended_err, then the offender's sockaddr.
				d := cm.Data
				if d[4] != unix.SO_EE_ORIGIN_ICMP && d[4] != unix.SO_EE_ORIGIN_ICMP6 {
					continue // a local error: no ICMP to pass on
				}
				var from netip.Addr
				switch o := d[16:]; {
				case len(o) >= 8 && binary.LittleEndian.Uint16(o) == unix.AF_INET:
					from = netip.AddrFrom4([4]byte(o[4:8]))
				case len(o) >= 24 && binary.LittleEndian.Uint16(o) == unix.AF_INET6:
					from = netip.AddrFrom16([16]byte(o[8:24])).Unmap()
				}
				ic.echoError(dst, binary.BigEndian.Uint16(b[6:8]), from, d[5], d[6])
			}
		}
	})
}

// sockaddrAddr is the address of a recvmsg peer.
func sockaddrAddr(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap()
	}
	return netip.Addr{}
}

// reply sends m to the client from the echo's original destination:
// IPV6_PKTINFO or IP_PKTINFO with a source the stack does not have,
// which the socket's IP_TRANSPARENT allows.
func (ic *relayICMP) reply(f *echoFamily, p *echoPending, m []byte) error {
	to := socket.InetAddr(netip.AddrPortFrom(p.client, 0))
	var err error
	if f.v6 {
		_, err = f.in.SendMsg(m, 0, to, socket.In6Pktinfo{Addr: p.orig})
	} else {
		_, err = f.in.SendMsg(m, 0, to, socket.InPktinfo{SpecDst: p.orig})
	}
	return err
}

// addrOf is a host socket's peer address.
func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort().Addr().Unmap()
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// icmpChecksum is the Internet checksum of an ICMP message (its own
// checksum field zero).
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)&1 != 0 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func (ic *relayICMP) String() string {
	s := &ic.stats
	tp := &ic.st.Stats().TProxy
	return fmt.Sprintf("icmp echo-requests=%d (diverted=%d no-socket=%d) sent=%d replies=%d timed-out=%d dropped=%d (limit=%d errors=%d) stray=%d reply-errors=%d icmp-errors=%d (rate-limited=%d); udp-unreachables sent=%d rate-limited=%d; ttl-exceeded echo=%d udp=%d (not sent=%d)",
		s.requests.Load(), tp.DivertedEcho.Load(), tp.EchoNoSocket.Load(), s.sent.Load(), s.replies.Load(), s.timedOut.Load(),
		s.dropped.Load(), s.overLimit.Load(), s.sendErrs.Load(), s.stray.Load(), s.replyErrs.Load(), s.errorsIn.Load(), s.errorsRL.Load(),
		s.unreachSent.Load(), s.unreachRL.Load(), s.ttlEcho.Load(), s.ttlUDP.Load(), s.ttlRL.Load())
}

// UDP unreachables.

// unreachQuote is as much of a client's datagram as an error quotes
// (IPv6's 1280-byte minimum MTU less the headers).
const unreachQuote = 1280 - 40 - 8 - 40 - 8

// flowUnreach is a UDP flow's memory for its ICMP errors: its key and
// the start of the client's last datagram, which an error quotes.
type flowUnreach struct {
	key  flowKey
	mu   sync.Mutex
	n    int
	last [unreachQuote]byte
}

// remember keeps the start of the client's datagram b.
func (u *flowUnreach) remember(b []byte) {
	u.mu.Lock()
	u.n = copy(u.last[:], b)
	u.mu.Unlock()
}

// unreachErrno is the errno of err a client learns of by ICMP, or 0.
func unreachErrno(err error) syscall.Errno {
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return e
		}
	}
	return 0
}

// udpUnreach is udpBack's hook for an error its flow's kernel socket
// read: the destination's refusal (ICMP port unreachable to the relay)
// or an unreachable reaches the client as the same ICMP error, quoting
// its last datagram of the flow.
func (r *relay) udpUnreach(fl *udpFlow, err error) {
	fl.unreach.mu.Lock()
	q := make([]byte, fl.unreach.n)
	copy(q, fl.unreach.last[:])
	fl.unreach.mu.Unlock()
	r.sendUnreach(fl, q, err)
}

// sendUnreach sends the client of fl the ICMP error for err about its
// datagram b (toKernel's hook when a send fails: Linux reports a
// pending error of a connected socket to its next send too).
func (r *relay) sendUnreach(fl *udpFlow, b []byte, err error) {
	r.unreachTo(fl.unreach.key, b, err)
}

// unreachTo sends the client of flow key the ICMP error for err about
// its datagram b; flow's hook too when the flow's kernel socket cannot
// even connect (no route: EHOSTUNREACH, ENETUNREACH), with b nil.
func (r *relay) unreachTo(key flowKey, b []byte, err error) {
	ic := r.icmp
	errno := unreachErrno(err)
	if ic == nil || ic.o.off || errno == 0 {
		return
	}
	switch ic.st.SendUDPUnreach(key.client, key.orig, b, errno) {
	case nil:
		ic.stats.unreachSent.Add(1)
	case syscall.EAGAIN:
		ic.stats.unreachRL.Add(1)
	}
}
