package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

func init() {
	extraCommands = append(extraCommands, pingCmd, echoCmd)
}

// parseTarget reads an IPv4 address (names are not resolved: the tools
// talk to addresses inside test networks).
func parseTarget(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// sigContext ends on SIGINT/SIGTERM.
func sigContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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

// seconds is a flag value in seconds as ping takes them ("0.2"), or a Go
// duration ("200ms").
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }
func (s *seconds) Type() string   { return "seconds" }
func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want seconds (0.2) or a duration (200ms)")
	}
	*s = seconds(d)
	return nil
}

// --- ping ---

type pingOpts struct {
	count    int
	size     int
	interval time.Duration
	ttl      int
	wait     time.Duration
	deadline time.Duration
	quiet    bool
}

func pingCmd() *cobra.Command {
	var f hostFlags
	var o pingOpts
	c := &cobra.Command{
		Use:   "ping [flags] HOST",
		Short: "Send ICMP echo requests and print replies and statistics, like iputils ping",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, dst, err := f.openTarget(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, stop := sigContext()
			defer stop()
			return runPing(ctx, cmd.OutOrStdout(), e.api, dst, o)
		},
	}
	f.register(c)
	fl := c.Flags()
	fl.IntVarP(&o.count, "count", "c", 0, "stop after this many replies' worth of requests (0: until interrupted)")
	fl.IntVarP(&o.size, "size", "s", 56, "data bytes per request")
	o.interval, o.wait = time.Second, 2*time.Second
	fl.VarP((*seconds)(&o.interval), "interval", "i", "time between requests (seconds, like 0.2, or a duration)")
	fl.IntVarP(&o.ttl, "ttl", "t", 0, "IP time to live (0: the default)")
	fl.VarP((*seconds)(&o.wait), "timeout", "W", "wait this long for the last replies (seconds)")
	fl.VarP((*seconds)(&o.deadline), "deadline", "w", "stop after this long in all (seconds)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "only the summary")
	return c
}

// pingSocket opens a raw ICMP socket (replies carry the IP header, so the
// TTL can be shown) or, where that is refused, a ping (datagram) socket.
func pingSocket(api sockapi.API) (sockapi.Sock, bool, error) {
	s, err := api.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
	if err == nil {
		return s, true, nil
	}
	s, err2 := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	if err2 != nil {
		return nil, false, fmt.Errorf("ping: raw socket: %v; ping socket: %w", err, err2)
	}
	return s, false, nil
}

type pingReply struct {
	seq   int
	bytes int
	ttl   int
	from  netip.Addr
	at    time.Time
	err   string // an ICMP error instead of a reply
}

func runPing(ctx context.Context, w io.Writer, api sockapi.API, dst netip.Addr, o pingOpts) error {
	if o.size < 0 || o.size > 65507 {
		return fmt.Errorf("ping: size %d out of range 0..65507", o.size)
	}
	if o.interval <= 0 {
		o.interval = time.Second
	}
	s, raw, err := pingSocket(api)
	if err != nil {
		return err
	}
	defer s.Close()
	if o.ttl > 0 {
		if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_TTL, o.ttl); err != nil {
			return fmt.Errorf("ping: ttl %d: %w", o.ttl, err)
		}
	}
	var idb [2]byte
	rand.Read(idb[:])
	id := uint16(idb[0])<<8 | uint16(idb[1])
	fmt.Fprintf(w, "PING %v (%v) %d(%d) bytes of data.\n", dst, dst, o.size, o.size+28)

	replies := make(chan pingReply, 64)
	recvDone := make(chan struct{})
	stopRecv := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 65536+60)
		s.SetTimeout(100 * time.Millisecond)
		for {
			select {
			case <-stopRecv:
				return
			default:
			}
			n, from, err := s.RecvFrom(buf, 0)
			if err != nil {
				if errors.Is(err, syscall.EAGAIN) {
					continue
				}
				if errors.Is(err, syscall.EBADF) {
					return
				}
				// A ping socket reports ICMP errors this way.
				replies <- pingReply{seq: -1, err: err.Error(), at: time.Now()}
				continue
			}
			r, ok := parsePingReply(buf[:n], raw, id, dst)
			if !ok {
				continue
			}
			if fa, ok := from.(*socket.SockaddrInet); ok && !r.from.IsValid() {
				r.from = fa.AddrPort.Addr()
			}
			r.at = time.Now()
			replies <- r
		}
	}()
	defer func() { close(stopRecv); <-recvDone }()

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
	handle := func(r pingReply) {
		if r.err != "" {
			errs++
			if !o.quiet {
				fmt.Fprintf(w, "From %v: %s\n", dst, r.err)
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
			line := fmt.Sprintf("%d bytes from %v: icmp_seq=%d", r.bytes, r.from, r.seq)
			if r.ttl > 0 {
				line += fmt.Sprintf(" ttl=%d", r.ttl)
			}
			line += fmt.Sprintf(" time=%.3f ms", rtt)
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
			if o.count > 0 && recvd >= o.count {
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
			wire.ICMPv4(msg).FillChecksum()
			lastSent = time.Now()
			sentAt[seq&0xffff] = lastSent
			if _, err := s.SendTo(msg, 0, socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
				errs++
				fmt.Fprintf(w, "ping: sendmsg: %v\n", err)
			}
			sent++
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
	fmt.Fprintf(w, "\n--- %v ping statistics ---\n", dst)
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
		sent, recvd, extra, math.Round(loss*100)/100, elapsed.Milliseconds())
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
		return fmt.Errorf("ping: no reply from %v", dst)
	}
	return nil
}

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
		if qhl+8 > len(q) || qh.Dst() != dst {
			return r, false
		}
		qm := wire.ICMPv4(q[qhl:])
		if qm.Type() != wire.ICMPEcho || qm.ID() != id {
			return r, false
		}
		r.seq = -1
		if m.Type() == wire.ICMPTimeExceeded {
			r.err = fmt.Sprintf("icmp_seq=%d Time to live exceeded (from %v)", qm.Seq(), r.from)
		} else {
			r.err = fmt.Sprintf("icmp_seq=%d Destination Unreachable code %d (from %v)", qm.Seq(), m.Code(), r.from)
		}
		return r, true
	}
	return r, false
}

// --- echo ---

func echoCmd() *cobra.Command {
	var f hostFlags
	var udp bool
	var port int
	var bulk int64
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "echo [--udp] [--port N] HOST [MESSAGE...]",
		Short: "Echo client (TCP or UDP): send the message (or each line of stdin) and print what comes back",
		Long: `Sends MESSAGE, or each line of standard input, to an echo server and prints
the reply. --bytes N instead streams N bytes of random data, checks the
echo is identical and reports the throughput.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, dst, err := f.openTarget(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer e.Close()
			ap := netip.AddrPortFrom(dst, uint16(port))
			if bulk > 0 {
				return echoBulk(cmd.OutOrStdout(), e.api, ap, udp, bulk, timeout)
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) > 1 {
				in = strings.NewReader(strings.Join(args[1:], " ") + "\n")
			}
			return echoLines(cmd.OutOrStdout(), e.api, ap, udp, in, timeout)
		},
	}
	f.register(c)
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
	s, err := api.Socket(socket.AF_INET, typ, 0)
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

func echoLines(w io.Writer, api sockapi.API, dst netip.AddrPort, udp bool, in io.Reader, timeout time.Duration) error {
	s, err := dial(api, dst, udp, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 65000)
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
	return sc.Err()
}

// echoBulk streams n random bytes and checks the echo.
func echoBulk(w io.Writer, api sockapi.API, dst netip.AddrPort, udp bool, n int64, timeout time.Duration) error {
	s, err := dial(api, dst, udp, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, 1<<20)
	rand.Read(data)
	start := time.Now()
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
		}
		if err := <-werr; err != nil {
			return err
		}
	}
	d := time.Since(start)
	fmt.Fprintf(w, "echoed %d bytes identical in %v (%.1f Mbit/s each way)\n", n, d.Round(time.Millisecond), float64(n)*8/d.Seconds()/1e6)
	return nil
}
