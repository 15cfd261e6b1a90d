package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
	"golang.org/x/sys/unix"
)

func init() {
	extraCommands = append(extraCommands, pingCmd, echoCmd)
}

// cmdContext ends when the command's context does (SIGINT/SIGTERM: see
// run) or when cancelled.
func cmdContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithCancel(cmd.Context())
}

// sigContext is cmdContext (the name the can commands use).
func sigContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return cmdContext(cmd)
}

// sockIO makes a stream socket an io.ReadWriter.
type sockIO struct{ s sockapi.Sock }

func (r sockIO) Read(b []byte) (int, error) {
	n, err := r.s.Recv(b, 0)
	if err == nil && n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return n, err
}

func (r sockIO) Write(b []byte) (int, error) {
	if err := r.s.SendAll(b, 0); err != nil {
		return 0, err
	}
	return len(b), nil
}

// seconds is a flag value in seconds as ping takes them ("0.2").
type seconds time.Duration

func (s *seconds) String() string {
	return strconv.FormatFloat(time.Duration(*s).Seconds(), 'g', -1, 64)
}
func (s *seconds) Type() string { return "seconds" }
func (s *seconds) Set(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("want seconds, like 0.2")
	}
	if f < 0 || f > 1e6 {
		return fmt.Errorf("%s seconds: out of range 0..1000000", v)
	}
	*s = seconds(f * float64(time.Second))
	return nil
}

// --- ping ---

type pingOpts struct {
	count    int
	size     int
	interval time.Duration
	ttl      int // -1: the default
	wait     time.Duration
	deadline time.Duration
	quiet    bool
	name     string     // the host as given, when it was a name
	self     netip.Addr // our address, for errors the stack reports itself
	root     bool       // iputils lets only root go below 2 ms
}

// minUserInterval is iputils' floor for -i without privileges.
const minUserInterval = 2 * time.Millisecond

// check refuses what iputils ping refuses, with its words.
func (o *pingOpts) check() error {
	if o.count < 0 {
		return fmt.Errorf("invalid argument: '%d': out of range: 1 <= value <= 9223372036854775807", o.count)
	}
	if o.size < 0 {
		return fmt.Errorf("invalid argument: '%d': out of range: 0 <= value <= 2147483647", o.size)
	}
	if o.size > 65507 {
		return fmt.Errorf("packet size %d is too large. Maximum is 65507", o.size)
	}
	if o.ttl < -1 || o.ttl > 255 {
		return fmt.Errorf("invalid argument: '%d': out of range: 0 <= value <= 255", o.ttl)
	}
	if o.interval < minUserInterval && !o.root {
		return fmt.Errorf("cannot flood; minimal interval allowed for user is %dms", minUserInterval.Milliseconds())
	}
	return nil
}

func pingCmd() *cobra.Command {
	var f hostFlags
	var o pingOpts
	c := &cobra.Command{
		Use:     "ping [flags] HOST",
		Short:   "Send ICMP echo requests and print replies and statistics, like iputils ping",
		Example: "  sockstack ping -c 3 server\n  sockstack ping -6 -c 3 server\n  sockstack ping -c 1 fe80::ff:fe00:102%eth0\n  sockstack ping --kernel -i 0.2 localhost",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if cmd.Flags().Changed("count") && o.count == 0 {
				return usageErr(cmd, "invalid argument: '0': out of range: 1 <= value <= 9223372036854775807")
			}
			// The privilege that matters is the stack's: sockstack's own
			// stack is this process's, the kernel's asks for root.
			o.root = !f.kernel || os.Geteuid() == 0
			if err := o.check(); err != nil {
				return usageErr(cmd, "%v", err)
			}
			return f.runTarget(cmd, args[0], func(ctx context.Context, e *env, dst netip.Addr) error {
				if _, perr := netip.ParseAddr(args[0]); perr != nil {
					o.name = args[0]
				}
				if e.nic != nil && len(e.nic.Addrs()) > 0 {
					o.self = e.nic.Addrs()[0].Addr()
				}
				return runPing(ctx, cmd.OutOrStdout(), e.api, dst, o)
			})
		},
	}
	f.register(c, clientTool)
	fl := c.Flags()
	fl.IntVarP(&o.count, "count", "c", 0, "stop after sending this many requests (default: until interrupted)")
	fl.IntVarP(&o.size, "size", "s", 56, "data bytes per request")
	o.interval, o.wait, o.ttl = time.Second, 2*time.Second, -1
	fl.VarP((*seconds)(&o.interval), "interval", "i", "seconds between requests, like 0.2 (below 0.002 only as root with --kernel)")
	fl.IntVarP(&o.ttl, "ttl", "t", -1, "IP time to live (default: the stack's)")
	fl.VarP((*seconds)(&o.wait), "timeout", "W", "seconds to wait for the last replies")
	fl.VarP((*seconds)(&o.deadline), "deadline", "w", "stop after this many seconds in all")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "only the summary")
	return c
}

// pingConn is ping's sockets: send goes out, recv brings replies, errs
// (when not nil) brings the errors the stack reports on the sending
// socket (ARP found nobody: Destination Host Unreachable).
type pingConn struct {
	send, recv, errs sockapi.Sock
	raw              bool   // recv delivers IP headers (the TTL can be shown)
	id               uint16 // 0: choose one (raw sending)
}

func (p *pingConn) Close() {
	for _, s := range []sockapi.Sock{p.send, p.recv, p.errs} {
		if s != nil {
			s.Close()
		}
	}
}

// openPing prefers a ping (datagram) socket to send, because the stack
// reports errors to it, with a raw socket beside it to read the replies'
// TTL; with only one of the two (the kernel: raw for root, ping sockets
// under net.ipv4.ping_group_range) it uses that one for everything.
func openPing(api sockapi.API, dst netip.Addr) (*pingConn, error) {
	if dst.Is6() {
		return openPing6(api, dst)
	}
	raw, rawErr := api.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
	dg, dgErr := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	if dg != nil {
		// IP_RECVERR, as iputils: every ICMP error about our requests
		// (soft ones too: host unreachable, time exceeded) is reported,
		// and the error queue says which request and who answered.
		dg.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1)
		err := dg.Connect(socket.InetAddr(netip.AddrPortFrom(dst, 0)))
		if errors.Is(err, syscall.ENETUNREACH) {
			dg.Close()
			if raw != nil {
				raw.Close()
			}
			return nil, errors.New("ping: connect: Network is unreachable")
		}
		var sa socket.Sockaddr
		if err == nil {
			sa, err = dg.GetSockName()
		}
		fa, ok := sa.(*socket.SockaddrInet)
		if err != nil || !ok {
			dg.Close()
			dg, dgErr = nil, syscall.EINVAL
		} else if raw != nil {
			return &pingConn{send: dg, recv: raw, errs: dg, raw: true, id: fa.AddrPort.Port()}, nil
		} else {
			return &pingConn{send: dg, recv: dg, id: fa.AddrPort.Port()}, nil
		}
	}
	if raw != nil {
		return &pingConn{send: raw, recv: raw, raw: true}, nil
	}
	return nil, fmt.Errorf("ping: socket: %v (raw sockets need CAP_NET_RAW; ping sockets need net.ipv4.ping_group_range to include your group): %w", rawErr, dgErr)
}

type pingReply struct {
	seq   int
	bytes int
	ttl   int
	from  netip.Addr
	at    time.Time
	err   string // an ICMP error instead of a reply
	local bool   // err was reported by the sending socket (no ICMP seen yet)
	// qseq is the request an error is about, read from the error
	// queue (IP_RECVERR) when qseqOK; else the last request is meant.
	qseq   int
	qseqOK bool
}

// unreachText are iputils' words for the Destination Unreachable codes.
var unreachText = [...]string{
	"Destination Net Unreachable", "Destination Host Unreachable", "Destination Protocol Unreachable",
	"Destination Port Unreachable", "Frag needed and DF set", "Source Route Failed",
	"Destination Net Unknown", "Destination Host Unknown", "Source Host Isolated",
	"Destination Net Prohibited", "Destination Host Prohibited",
	"Destination Net Unreachable for Type of Service", "Destination Host Unreachable for Type of Service",
	"Packet filtered", "Precedence Violation", "Precedence Cutoff",
}

// errnoText words an error the stack reports on the socket itself (no
// ICMP message came: ARP found nobody, or no route).
func errnoText(err error) string {
	switch {
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "Destination Host Unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "Destination Net Unreachable"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "Destination Port Unreachable"
	}
	return err.Error()
}

func runPing(ctx context.Context, w io.Writer, api sockapi.API, dst netip.Addr, o pingOpts) error {
	if o.ttl == 0 && o.interval == 0 && o.wait == 0 {
		o.ttl = -1 // a zero pingOpts from a test: defaults
	}
	if o.interval <= 0 {
		o.interval = time.Second
	}
	if o.size < 0 || o.size > 65507 {
		return fmt.Errorf("ping: packet size %d is too large. Maximum is 65507", o.size)
	}
	pc, err := openPing(api, dst)
	if err != nil {
		return err
	}
	defer pc.Close()
	s, raw := pc.send, pc.raw
	v6 := dst.Is6()
	if o.ttl >= 0 && v6 {
		// ping -6 -t: the unicast hop limit (0 included, as iputils).
		if err := s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, o.ttl); err != nil {
			return fmt.Errorf("ping: hop limit %d: %w", o.ttl, err)
		}
	} else if o.ttl > 0 {
		if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_TTL, o.ttl); err != nil {
			return fmt.Errorf("ping: ttl %d: %w", o.ttl, err)
		}
	}
	id := pc.id
	if id == 0 {
		var idb [2]byte
		rand.Read(idb[:])
		id = uint16(idb[0])<<8 | uint16(idb[1])
	}
	shown := dst.String()
	if o.name != "" {
		shown = o.name
	}
	if v6 {
		// iputils' IPv6 header line.
		fmt.Fprintf(w, "PING %s(%v) %d data bytes\n", shown, dst, o.size)
	} else {
		fmt.Fprintf(w, "PING %s (%v) %d(%d) bytes of data.\n", shown, dst, o.size, o.size+28)
	}

	replies := make(chan pingReply, 64)
	var recvWG sync.WaitGroup
	stopRecv := make(chan struct{})
	reader := func(s sockapi.Sock, errsOnly bool) {
		defer recvWG.Done()
		buf := make([]byte, 65536+60)
		ebuf := make([]byte, 576)
		s.SetTimeout(100 * time.Millisecond)
		for {
			select {
			case <-stopRecv:
				return
			default:
			}
			var n, hops int
			var from socket.Sockaddr
			var err error
			if v6 {
				n, from, hops, err = recvHops(s, buf)
			} else {
				n, from, err = s.RecvFrom(buf, 0)
			}
			if err != nil {
				if errors.Is(err, syscall.EAGAIN) {
					continue
				}
				if errors.Is(err, syscall.EBADF) {
					return
				}
				// The stack's own reports (and a ping socket's ICMP
				// errors) arrive this way; the error queue tells which
				// request and who reported it.
				r := pingReply{seq: -1, err: errnoText(err), from: o.self, at: time.Now()}
				if q, ok := readErrQueue(s, ebuf); ok {
					r.err = q.text(v6)
					if q.from.IsValid() {
						r.from = q.from
					}
					if len(q.payload) >= 8 && q.origin != socket.SO_EE_ORIGIN_LOCAL {
						r.qseq, r.qseqOK = int(wire.ICMPv4(q.payload).Seq()), true
					}
				}
				select {
				case replies <- r:
				case <-stopRecv:
					return
				}
				continue
			}
			if errsOnly {
				continue // the replies are read from the raw socket
			}
			var r pingReply
			var ok bool
			if v6 {
				r, ok = parsePing6Reply(buf[:n], hops, raw, id)
			} else {
				r, ok = parsePingReply(buf[:n], raw, id, dst)
			}
			if !ok {
				continue
			}
			if fa, ok := from.(*socket.SockaddrInet); ok && !r.from.IsValid() {
				r.from = fa.AddrPort.Addr()
				if r.from.IsLinkLocalUnicast() && r.from.Zone() == "" && r.from == dst.WithZone("") {
					r.from = dst // iputils shows the scope: fe80::1%eth0
				}
			}
			r.at = time.Now()
			select {
			case replies <- r:
			case <-stopRecv:
				return
			}
		}
	}
	recvWG.Add(1)
	go reader(pc.recv, false)
	if pc.errs != nil && pc.errs != pc.recv {
		recvWG.Add(1)
		go reader(pc.errs, true)
	}
	defer func() { close(stopRecv); recvWG.Wait() }()

	var (
		sent, recvd, dups, errs int
		rtts                    []float64
		sentAt                  = map[int]time.Time{}
		seen                    = map[int]bool{}
		start                   = time.Now()
		seq                     = 0
		lastSent                time.Time
	)
	msg := make([]byte, 8+o.size)
	for i := 8; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	tick := time.NewTimer(0)
	defer tick.Stop()
	var overall <-chan time.Time
	if o.deadline > 0 {
		overall = time.After(o.deadline)
	}
	var drain <-chan time.Time
	fromText := func(a netip.Addr) string {
		if o.name != "" && a == dst {
			return fmt.Sprintf("%s (%v)", o.name, a)
		}
		return a.String()
	}
	// A router's ICMP error reaches both sockets: the raw one (with the
	// router's address, shown) and the sending one (as an errno). The
	// errno alone is shown only when no ICMP message explains it within
	// a moment: then the stack itself found the host unreachable.
	var (
		localErr     *pingReply
		localTimer   <-chan time.Time
		icmpErrSeen  = map[int]bool{}
		localErrWait = 200 * time.Millisecond
	)
	var handle func(r pingReply)
	handle = func(r pingReply) {
		if r.err != "" && r.seq < 0 {
			r.seq = seq // a report of the stack: about the last request
			if r.qseqOK {
				r.seq = r.qseq
			}
			if pc.errs != pc.recv && !r.local {
				r.local = true
				localErr, localTimer = &r, time.After(localErrWait)
				return
			}
		}
		if r.err != "" {
			if !r.local {
				icmpErrSeen[r.seq] = true
				if localErr != nil && localErr.seq <= r.seq {
					localErr, localTimer = nil, nil // explained by this message
				}
			} else if icmpErrSeen[r.seq] {
				return
			}
			errs++
			if !o.quiet {
				from := r.from
				if !from.IsValid() {
					from = dst
				}
				fmt.Fprintf(w, "From %s icmp_seq=%d %s\n", fromText(from), r.seq, r.err)
			}
			return
		}
		t0, ok := sentAt[r.seq]
		if !ok {
			return
		}
		rtt := float64(r.at.Sub(t0).Microseconds()) / 1000
		dup := seen[r.seq]
		if dup {
			dups++
		} else {
			seen[r.seq] = true
			recvd++
			rtts = append(rtts, rtt)
		}
		if !o.quiet {
			line := fmt.Sprintf("%d bytes from %s: icmp_seq=%d", r.bytes, fromText(r.from), r.seq)
			if r.ttl > 0 {
				line += fmt.Sprintf(" ttl=%d", r.ttl)
			}
			line += " time=" + rttText(rtt) + " ms"
			if dup {
				line += " (DUP!)"
			}
			fmt.Fprintln(w, line)
		}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-overall:
			break loop
		case r := <-replies:
			handle(r)
			if o.count > 0 && recvd+errs >= o.count && sent >= o.count {
				break loop
			}
		case <-localTimer:
			if localErr != nil {
				handle(*localErr)
			}
			localErr, localTimer = nil, nil
			if o.count > 0 && recvd+errs >= o.count && sent >= o.count {
				break loop
			}
		case <-drain:
			break loop
		case <-tick.C:
			if o.count > 0 && sent >= o.count {
				continue
			}
			seq++
			wire.ICMPv4(msg).SetType(wire.ICMPEcho)
			wire.ICMPv4(msg).SetCode(0)
			wire.ICMPv4(msg).SetID(id)
			wire.ICMPv4(msg).SetSeq(uint16(seq))
			msg[2], msg[3] = 0, 0
			if v6 {
				// The ping socket fills the ICMPv6 checksum (it covers
				// the IPv6 pseudo-header).
				msg[0] = wire.ICMPv6EchoRequest
			} else {
				wire.ICMPv4(msg).FillChecksum()
			}
			lastSent = time.Now()
			sentAt[seq&0xffff] = lastSent
			sent++
			if _, err := s.SendTo(msg, 0, socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
				if errors.Is(err, syscall.ENETUNREACH) && recvd == 0 && errs == 0 {
					// iputils stops at once when there is no route.
					return fmt.Errorf("ping: connect: Network is unreachable")
				}
				errs++
				if !o.quiet {
					fmt.Fprintf(w, "From %s icmp_seq=%d %s\n", fromText(o.self), seq, errnoText(err))
				}
			}
			if o.count > 0 && sent >= o.count {
				drain = time.After(o.wait)
			} else {
				tick.Reset(o.interval)
			}
		}
	}
	elapsed := time.Since(start)
	if sent > 0 && !lastSent.IsZero() {
		elapsed = lastSent.Sub(start)
	}
	fmt.Fprintf(w, "\n--- %s ping statistics ---\n", shown)
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-recvd) / float64(sent)
	}
	extra := ""
	if dups > 0 {
		extra += fmt.Sprintf(", +%d duplicates", dups)
	}
	if errs > 0 {
		extra += fmt.Sprintf(", +%d errors", errs)
	}
	fmt.Fprintf(w, "%d packets transmitted, %d received%s, %g%% packet loss, time %dms\n",
		sent, recvd, extra, math.Round(loss*10000)/10000, elapsed.Milliseconds())
	if len(rtts) > 0 {
		min, max, sum, sum2 := rtts[0], rtts[0], 0.0, 0.0
		for _, r := range rtts {
			min, max = math.Min(min, r), math.Max(max, r)
			sum += r
			sum2 += r * r
		}
		avg := sum / float64(len(rtts))
		mdev := math.Sqrt(math.Max(sum2/float64(len(rtts))-avg*avg, 0))
		fmt.Fprintf(w, "rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", min, avg, max, mdev)
	}
	if recvd == 0 {
		return errNoReply
	}
	return nil
}

// rttText prints a round trip as iputils does: three significant
// figures' worth of decimals, none from 100 ms up.
func rttText(ms float64) string {
	switch {
	case ms >= 99.95:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 9.995:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 0.9995:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}

// errNoReply ends ping with status 1 and no further message: the
// statistics said it (as iputils does).
var errNoReply = &quietError{code: 1}

// quietError is an exit status without a message.
type quietError struct{ code int }

func (q *quietError) Error() string { return fmt.Sprintf("exit status %d", q.code) }

// parsePingReply picks our echo replies (and errors about our requests)
// out of what the socket delivers.
func parsePingReply(b []byte, raw bool, id uint16, dst netip.Addr) (pingReply, bool) {
	r := pingReply{ttl: 0}
	if raw {
		if len(b) < wire.IPv4MinHeaderLen {
			return r, false
		}
		h := wire.IPv4(b)
		hl := h.HeaderLen()
		if hl < wire.IPv4MinHeaderLen || hl > len(b) {
			return r, false
		}
		r.ttl = int(h.TTL())
		r.from = h.Src()
		b = b[hl:]
	}
	if len(b) < 8 {
		return r, false
	}
	m := wire.ICMPv4(b)
	switch m.Type() {
	case wire.ICMPEchoReply:
		if raw && m.ID() != id {
			return r, false
		}
		r.seq = int(m.Seq())
		r.bytes = len(b)
		return r, true
	case wire.ICMPDestUnreach, wire.ICMPTimeExceeded:
		// The quoted datagram must be one of our requests.
		q := b[8:]
		if len(q) < wire.IPv4MinHeaderLen+8 || !raw {
			return r, false
		}
		qh := wire.IPv4(q)
		qhl := qh.HeaderLen()
		if qhl < wire.IPv4MinHeaderLen || qhl+8 > len(q) || qh.Dst() != dst {
			return r, false
		}
		qm := wire.ICMPv4(q[qhl:])
		if qm.Type() != wire.ICMPEcho || qm.ID() != id {
			return r, false
		}
		r.seq = int(qm.Seq())
		r.err = icmpErrText(m.Type(), m.Code(), uint32(b[6])<<8|uint32(b[7]))
		return r, true
	}
	return r, false
}

// icmpErrText is iputils' wording of an ICMP error (mtu: a
// fragmentation needed's next-hop MTU).
func icmpErrText(typ, code uint8, mtu uint32) string {
	switch {
	case typ == wire.ICMPTimeExceeded && code == 1:
		return "Frag reassembly time exceeded"
	case typ == wire.ICMPTimeExceeded:
		return "Time to live exceeded"
	case typ == wire.ICMPDestUnreach && code == 4:
		return fmt.Sprintf("Frag needed and DF set (mtu = %d)", mtu)
	case typ == wire.ICMPDestUnreach && int(code) < len(unreachText):
		return unreachText[code]
	case typ == wire.ICMPDestUnreach:
		return fmt.Sprintf("Dest Unreachable, Bad Code: %d", code)
	}
	return fmt.Sprintf("Bad ICMP type: %d", typ)
}

// icmp6ErrText is iputils' wording of an ICMPv6 error.
func icmp6ErrText(typ, code uint8, info uint32) string {
	switch typ {
	case wire.ICMPv6DestUnreach:
		words := [...]string{"No route", "Administratively prohibited", "Beyond scope of source address",
			"Address unreachable", "Port unreachable", "Source address failed ingress/egress policy", "Reject route to destination"}
		if int(code) < len(words) {
			return "Destination unreachable: " + words[code]
		}
		return fmt.Sprintf("Destination unreachable: Unknown code %d", code)
	case wire.ICMPv6PacketTooBig:
		return fmt.Sprintf("Packet too big: mtu=%d", info)
	case wire.ICMPv6TimeExceeded:
		if code == 0 {
			return "Time exceeded: Hop limit"
		}
		return "Time exceeded: Defragmentation failure"
	case wire.ICMPv6ParamProblem:
		words := [...]string{"Wrong header field ", "Unknown header ", "Unknown option "}
		w := fmt.Sprintf("code %d ", code)
		if int(code) < len(words) {
			w = words[code]
		}
		return fmt.Sprintf("Parameter problem: %sat %d", w, info)
	}
	return fmt.Sprintf("Bad ICMP type: %d", typ)
}

// queuedErr is one entry of a socket's error queue (IP_RECVERR).
type queuedErr struct {
	from              netip.Addr // the ICMP error's source; invalid for a local error
	origin, typ, code uint8
	info              uint32
	errno             syscall.Errno
	payload           []byte // the request from its ICMP header on
}

// text words the error as iputils does: the ICMP message's type and
// code, or the errno of a local error.
func (q queuedErr) text(v6 bool) string {
	switch q.origin {
	case socket.SO_EE_ORIGIN_ICMP:
		return icmpErrText(q.typ, q.code, q.info)
	case socket.SO_EE_ORIGIN_ICMP6:
		return icmp6ErrText(q.typ, q.code, q.info)
	}
	return errnoText(q.errno)
}

// readErrQueue reads one error from s's error queue (recvmsg with
// MSG_ERRQUEUE), without waiting; false when there is none.
func readErrQueue(s sockapi.Sock, buf []byte) (queuedErr, bool) {
	var q queuedErr
	switch v := s.(type) {
	case sockapi.StackSock:
		n, _, _, ee, err := v.RecvErr(buf, 0)
		if err != nil {
			return q, false
		}
		q = queuedErr{origin: ee.Origin, typ: ee.Type, code: ee.Code, info: ee.Info, errno: ee.Errno, payload: buf[:n]}
		if ee.Offender != nil {
			q.from = ee.Offender.AddrPort.Addr()
		}
	case sockapi.HostSock:
		var oob [128]byte
		n, oobn, _, _, err := unix.Recvmsg(v.Fileno(), buf, oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return q, false
		}
		cms, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, cm := range cms {
			d := cm.Data
			if !(cm.Header.Level == unix.IPPROTO_IP && cm.Header.Type == unix.IP_RECVERR ||
				cm.Header.Level == unix.IPPROTO_IPV6 && cm.Header.Type == unix.IPV6_RECVERR) || len(d) < 32 {
				continue
			}
			q = queuedErr{errno: syscall.Errno(binary.NativeEndian.Uint32(d)), origin: d[4], typ: d[5], code: d[6],
				info: binary.NativeEndian.Uint32(d[8:]), payload: buf[:n]}
			switch binary.NativeEndian.Uint16(d[16:]) {
			case unix.AF_INET:
				q.from = netip.AddrFrom4([4]byte(d[20:24]))
			case unix.AF_INET6:
				if len(d) >= 16+24 {
					q.from = netip.AddrFrom16([16]byte(d[24:40]))
				}
			}
			return q, true
		}
		return q, false
	default:
		return q, false
	}
	if q.from.Is4In6() {
		q.from = q.from.Unmap()
	}
	return q, true
}

// --- echo ---

func echoCmd() *cobra.Command {
	var f hostFlags
	var udp bool
	var port int
	var bulk int64
	var timeout time.Duration
	var quiet bool
	c := &cobra.Command{
		Use:   "echo [--udp] [--port N] HOST [MESSAGE...]",
		Short: "Echo client (TCP or UDP): send the message (or each line of stdin) and print what comes back",
		Long: `Sends MESSAGE, or each line of standard input, to an echo server and prints
the reply. --bytes N instead streams N bytes of random data, checks the
echo is identical and reports the throughput.`,
		Example: "  sockstack echo server hello\n  sockstack echo --udp --bytes 1000000 10.0.0.2",
		Args:    usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if port < 1 || port > 65535 {
				return usageErr(cmd, "--port %d outside 1..65535", port)
			}
			if bulk < 0 {
				return usageErr(cmd, "--bytes %d: want a positive count", bulk)
			}
			e, dst, err := f.openTarget(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer e.Close()
			ap := netip.AddrPortFrom(dst, uint16(port))
			if bulk > 0 {
				return echoBulk(cmd.ErrOrStderr(), e.api, ap, udp, bulk, timeout, quiet)
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) > 1 {
				in = strings.NewReader(strings.Join(args[1:], " ") + "\n")
			}
			return echoLines(cmd.OutOrStdout(), e.api, ap, udp, in, timeout)
		},
	}
	f.register(c, clientTool)
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "--bytes: no progress bar")
	c.Flags().BoolVarP(&udp, "udp", "u", false, "UDP instead of TCP")
	c.Flags().IntVarP(&port, "port", "p", 7, "server port")
	c.Flags().Int64Var(&bulk, "bytes", 0, "stream this many bytes and verify the echo (TCP), or send datagrams of up to 1400 bytes (UDP)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "wait this long for each reply")
	return c
}

func dial(api sockapi.API, dst netip.AddrPort, udp bool, timeout time.Duration) (sockapi.Sock, error) {
	typ := socket.SOCK_STREAM
	if udp {
		typ = socket.SOCK_DGRAM
	}
	s, err := api.Socket(sockFamily(dst.Addr()), typ, 0)
	if err != nil {
		return nil, err
	}
	s.SetTimeout(timeout)
	if err := s.Connect(socket.InetAddr(dst)); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect %v: %w", dst, err)
	}
	return s, nil
}

// maxEchoLine is the longest input line echo sends (a UDP datagram must
// hold it).
const maxEchoLine = 65000

func echoLines(w io.Writer, api sockapi.API, dst netip.AddrPort, udp bool, in io.Reader, timeout time.Duration) error {
	s, err := dial(api, dst, udp, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), maxEchoLine)
	buf := make([]byte, 65536)
	for sc.Scan() {
		line := append(sc.Bytes(), '\n')
		if udp {
			line = line[:len(line)-1]
		}
		if err := s.SendAll(line, 0); err != nil {
			return err
		}
		got := 0
		var reply []byte
		for got < len(line) {
			n, err := s.Recv(buf, 0)
			if err != nil {
				return fmt.Errorf("no echo: %w", err)
			}
			if n == 0 && !udp {
				return errors.New("server closed the connection")
			}
			reply = append(reply, buf[:n]...)
			got += n
			if udp {
				break
			}
		}
		fmt.Fprintf(w, "%s\n", bytes.TrimRight(reply, "\n"))
	}
	if !udp {
		s.Shutdown(socket.SHUT_WR)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("echo: an input line is longer than %d bytes", maxEchoLine)
		}
		return fmt.Errorf("echo: reading input: %w", err)
	}
	return nil
}

// echoBulk streams n random bytes and checks the echo.
func echoBulk(w io.Writer, api sockapi.API, dst netip.AddrPort, udp bool, n int64, timeout time.Duration, quiet bool) (err error) {
	s, err := dial(api, dst, udp, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	pm := newMeter(w, "echo "+dst.String(), n, quiet)
	defer func() {
		if err != nil {
			pm.fail()
		}
	}()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if udp {
		buf := make([]byte, 2048)
		var sent int64
		for sent < n {
			k := int(min(1400, n-sent))
			off := int(sent % int64(len(data)-1400))
			if _, err := s.Send(data[off:off+k], 0); err != nil {
				return err
			}
			m, err := s.Recv(buf, 0)
			if err != nil {
				return fmt.Errorf("no echo after %d bytes: %w", sent, err)
			}
			if !bytes.Equal(buf[:m], data[off:off+k]) {
				return fmt.Errorf("echo differs after %d bytes", sent)
			}
			sent += int64(k)
			pm.set(sent, n)
		}
	} else {
		werr := make(chan error, 1)
		go func() {
			var sent int64
			for sent < n {
				k := min(int64(len(data)), n-sent)
				if err := s.SendAll(data[:k], 0); err != nil {
					werr <- err
					return
				}
				sent += k
			}
			werr <- s.Shutdown(socket.SHUT_WR)
		}()
		buf := make([]byte, 1<<16)
		var got int64
		for got < n {
			m, err := s.Recv(buf, 0)
			if err != nil {
				return fmt.Errorf("after %d bytes: %w", got, err)
			}
			if m == 0 {
				return fmt.Errorf("connection closed after %d of %d bytes", got, n)
			}
			for i := 0; i < m; {
				off := (got + int64(i)) % int64(len(data))
				k := min(m-i, len(data)-int(off))
				if !bytes.Equal(buf[i:i+k], data[off:int(off)+k]) {
					return fmt.Errorf("echo differs at byte %d", got+int64(i))
				}
				i += k
			}
			got += int64(m)
			pm.set(got, n)
		}
		if err := <-werr; err != nil {
			return err
		}
	}
	pm.done("echoed", n, " each way, identical")
	return nil
}

// openPing6 is ping -6's socket: an ICMPv6 ping socket, connected, that
// sends, receives the replies (with IPV6_RECVHOPLIMIT for ttl=) and
// hears the errors; without ping sockets (the kernel's
// net.ipv4.ping_group_range), a raw ICMPv6 socket (root).
func openPing6(api sockapi.API, dst netip.Addr) (*pingConn, error) {
	dg, err := api.Socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
	if err != nil {
		raw, rawErr := api.Socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
		if rawErr != nil {
			return nil, fmt.Errorf("ping: socket: %v (raw sockets need CAP_NET_RAW; ping sockets need net.ipv4.ping_group_range to include your group): %w", rawErr, err)
		}
		// Only echo replies (and errors) pass: ICMP6_FILTER would do it
		// too, the parse below checks the identifier anyway.
		raw.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
		return &pingConn{send: raw, recv: raw, raw: true}, nil
	}
	if err := dg.Connect(socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
		dg.Close()
		if errors.Is(err, syscall.ENETUNREACH) {
			return nil, errors.New("ping: connect: Network is unreachable")
		}
		return nil, fmt.Errorf("ping: connect: %w", err)
	}
	dg.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
	dg.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1) // as IP_RECVERR in openPing
	var id uint16
	if sa, err := dg.GetSockName(); err == nil {
		if fa, ok := sa.(*socket.SockaddrInet); ok {
			id = fa.AddrPort.Port()
		}
	}
	return &pingConn{send: dg, recv: dg, id: id}, nil
}

// recvHops is recvmsg with the IPV6_HOPLIMIT the datagram came with (0
// when the socket cannot say).
func recvHops(s sockapi.Sock, buf []byte) (int, socket.Sockaddr, int, error) {
	switch v := s.(type) {
	case sockapi.StackSock:
		n, _, from, info, err := v.RecvMsg6(buf, 0)
		return n, from, info.HopLimit, err
	case sockapi.HostSock:
		n, _, from, anc, err := v.RecvMsg6(buf, 0)
		return n, from, max(anc.HopLimit, 0), err
	}
	n, from, err := s.RecvFrom(buf, 0)
	return n, from, 0, err
}

// parsePing6Reply reads an echo reply, ICMPv6 header first: a ping
// socket delivers only its own; on a raw socket (every ICMPv6 message)
// the identifier must be ours.
func parsePing6Reply(b []byte, hops int, raw bool, id uint16) (pingReply, bool) {
	if len(b) < wire.ICMPv6HeaderLen || b[0] != wire.ICMPv6EchoReply {
		return pingReply{}, false
	}
	m := wire.ICMPv6(b)
	if raw && m.ID() != id {
		return pingReply{}, false
	}
	return pingReply{seq: int(m.Seq()), bytes: len(b), ttl: hops}, true
}
