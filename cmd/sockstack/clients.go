package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps/chat"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

func init() {
	extraCommands = append(extraCommands, chatCmd, httpCmd, mcastCmd)
}

// --- chat ---

func chatCmd() *cobra.Command {
	var f hostFlags
	var port int
	var name string
	var tcpMode bool
	var bots int
	c := &cobra.Command{
		Use:     "chat [--name NAME] [--tcp] [--bots N] HOST",
		Short:   "Chat client: each line of stdin goes to the room, every message from it is printed",
		Example: "  sockstack chat --name alice --bots 2 server",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if port < 1 || port > 65535 {
				return usageErr(cmd, "--port %d outside 1..65535", port)
			}
			if bots < 0 || bots > maxBots {
				return usageErr(cmd, "--bots %d outside 0..%d", bots, maxBots)
			}
			return f.runTarget(cmd, args[0], func(ctx context.Context, e *env, dst netip.Addr) error {
				ctx, stop := context.WithCancel(ctx)
				srv := netip.AddrPortFrom(dst, uint16(port))
				botsDone := make(chan struct{})
				go func() {
					defer close(botsDone)
					runBots(ctx, e.api, srv, bots, !tcpMode)
				}()
				defer func() { stop(); <-botsDone }()
				return runChat(ctx, cmd.OutOrStdout(), e.api, srv, name, !tcpMode, cmd.InOrStdin())
			})
		},
	}
	f.register(c, clientTool)
	c.Flags().IntVar(&bots, "bots", 0, "bring this many bot participants into the room (they greet and answer)")
	c.Flags().IntVarP(&port, "port", "p", chat.Port, "server port")
	c.Flags().StringVarP(&name, "name", "n", "", "your name in the room (/join NAME)")
	c.Flags().BoolVar(&tcpMode, "tcp", false, "TCP (one line per message) instead of UDP")
	return c
}

func runChat(ctx context.Context, w io.Writer, api sockapi.API, srv netip.AddrPort, name string, udp bool, in io.Reader) error {
	s, err := dial(api, srv, udp, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer s.Close()
	send := func(line string) error {
		if !udp {
			line += "\n"
		}
		return s.SendAll([]byte(line), 0)
	}
	if name != "" {
		if err := send("/join " + name); err != nil {
			return err
		}
	}
	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	// Nothing is printed after runChat returns: the receiver ends when
	// the socket closes.
	defer func() { s.Close(); <-recvDone }()
	go func() {
		defer close(recvDone)
		buf := make([]byte, 65536)
		var pending []byte
		for {
			n, err := s.Recv(buf, 0)
			if errors.Is(err, syscall.EAGAIN) {
				if ctx.Err() != nil {
					recvErr <- nil
					return
				}
				continue
			}
			if err != nil {
				recvErr <- err
				return
			}
			if n == 0 && !udp {
				recvErr <- errors.New("chat: the server closed the connection")
				return
			}
			if udp {
				fmt.Fprintln(w, strings.TrimRight(string(buf[:n]), "\n"))
				continue
			}
			pending = append(pending, buf[:n]...)
			for {
				i := strings.IndexByte(string(pending), '\n')
				if i < 0 {
					break
				}
				fmt.Fprintln(w, string(pending[:i]))
				pending = pending[i+1:]
			}
		}
	}()
	lines := make(chan string)
	inErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4096), maxChatLine)
		for sc.Scan() {
			lines <- sc.Text()
		}
		if errors.Is(sc.Err(), bufio.ErrTooLong) {
			inErr <- fmt.Errorf("chat: an input line is longer than %d bytes", maxChatLine)
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			send("/quit")
			return nil
		case err := <-recvErr:
			return err
		case line, ok := <-lines:
			if !ok {
				select {
				case err := <-inErr:
					send("/quit")
					return err
				default:
				}
				// End of input: leave the room, after a moment for replies.
				time.Sleep(300 * time.Millisecond)
				send("/quit")
				return nil
			}
			if err := send(line); err != nil {
				return err
			}
		}
	}
}

// maxChatLine bounds an input line of chat (the server cuts messages
// far shorter anyway).
const maxChatLine = 65000

// --- http get ---

func httpCmd() *cobra.Command {
	var f hostFlags
	var output string
	var include, quiet bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:     "http get URL",
		Short:   "HTTP/1.1 GET: print the body (or save it with -o) and a summary",
		Example: "  sockstack http get http://server/hello.txt\n  sockstack http get -o big.bin http://10.0.0.2/1MiB.bin\n  sockstack http get http://[fd00::2]/hello.txt\n  sockstack http get --tap tap0 --addr 10.77.0.2/24 http://[fe80::1%tap0]/",
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if args[0] != "get" {
				return usageErr(cmd, "only get is supported, not %q", args[0])
			}
			u, err := url.Parse(zoneEscaped(args[1]))
			if err != nil || u.Scheme != "http" || u.Hostname() == "" {
				return usageErr(cmd, "want an http:// URL, got %q", args[1])
			}
			port := 80
			if p := u.Port(); p != "" {
				port, err = strconv.Atoi(p)
				if err != nil || port < 1 || port > 65535 {
					return usageErr(cmd, "bad port %q in the URL", p)
				}
			}
			e, dst, err := f.openTarget(cmd.ErrOrStderr(), u.Hostname())
			if err != nil {
				return err
			}
			defer e.Close()
			var out io.Writer = cmd.OutOrStdout()
			if output != "" {
				fh, err := os.Create(output)
				if err != nil {
					return err
				}
				defer fh.Close()
				out = fh
			}
			return httpGet(cmd.ErrOrStderr(), out, e.api, netip.AddrPortFrom(dst, uint16(port)), u, include, timeout, quiet || output == "")
		},
	}
	f.register(c, clientTool)
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	c.Flags().StringVarP(&output, "output", "o", "", "write the body to this file")
	c.Flags().BoolVarP(&include, "include", "i", false, "print the status line and headers too")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up when nothing arrives for this long")
	return c
}

func httpGet(log, out io.Writer, api sockapi.API, srv netip.AddrPort, u *url.URL, include bool, timeout time.Duration, quiet bool) error {
	s, err := dial(api, srv, false, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	path := u.RequestURI()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sockstack\r\nAccept: */*\r\nConnection: close\r\n\r\n", path, hostHeader(u))
	if err := s.SendAll([]byte(req), 0); err != nil {
		return err
	}
	br := bufio.NewReaderSize(sockIO{s}, 64<<10)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("http: no response: %w", err)
	}
	status = strings.TrimRight(status, "\r\n")
	f := strings.SplitN(status, " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return fmt.Errorf("http: bad status line %q", status)
	}
	code, _ := strconv.Atoi(f[1])
	if include {
		fmt.Fprintf(out, "%s\r\n", status)
	}
	length := int64(-1)
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("http: headers: %w", err)
		}
		if include {
			fmt.Fprint(out, line)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "content-length":
			length, _ = strconv.ParseInt(v, 10, 64)
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	pm := newMeter(log, "http get "+u.Path, length, quiet)
	out = &meterWriter{w: out, m: pm, total: length}
	var n int64
	switch {
	case chunked:
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("http: chunk: %w", err)
			}
			sz, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
			if err != nil || sz < 0 {
				return fmt.Errorf("http: bad chunk size %q", line)
			}
			if sz == 0 {
				break
			}
			k, err := io.CopyN(out, br, sz)
			n += k
			if err != nil {
				return fmt.Errorf("http: chunk body: %w", err)
			}
			br.ReadString('\n')
		}
	case length >= 0:
		n, err = io.CopyN(out, br, length)
		if err != nil {
			return fmt.Errorf("http: body ended after %d of %d bytes: %w", n, length, err)
		}
	default:
		n, err = io.Copy(out, br)
		if err != nil {
			return fmt.Errorf("http: body: %w", err)
		}
	}
	pm.done("received", n, ", "+status)
	if code >= 400 {
		return fmt.Errorf("http: %s", status)
	}
	return nil
}

// zoneEscaped lets a URL name an IPv6 zone as people type it,
// "http://[fe80::1%tap0]/": RFC 6874 wants the % written %25, which is
// how url.Parse takes it.
func zoneEscaped(raw string) string {
	i := strings.Index(raw, "://[")
	if i < 0 {
		return raw
	}
	j := strings.Index(raw[i:], "]")
	if j < 0 {
		return raw
	}
	host := raw[i+4 : i+j]
	if k := strings.IndexByte(host, '%'); k >= 0 && !strings.HasPrefix(host[k:], "%25") {
		host = host[:k] + "%25" + host[k+1:]
	}
	return raw[:i+4] + host + raw[i+j:]
}

// hostHeader is the Host header for u: an IPv6 literal in brackets
// without its zone (RFC 6874 section 4: the zone means nothing to the
// server).
func hostHeader(u *url.URL) string {
	h := u.Hostname()
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		h = "[" + a.WithZone("").String() + "]"
	}
	if p := u.Port(); p != "" {
		return h + ":" + p
	}
	return h
}

// --- multicast ---

func mcastCmd() *cobra.Command {
	var f hostFlags
	var count, ttl int
	var interval, timeout time.Duration
	var loop bool
	c := &cobra.Command{
		Use:   "mcast send|listen [flags] GROUP:PORT [MESSAGE]",
		Short: "Send datagrams to a multicast group, or join one and print what arrives",
		Long: `mcast send GROUP:PORT [MESSAGE] sends MESSAGE (default: a numbered greeting)
--count times. mcast listen GROUP:PORT joins the group (IGMP) and prints each
datagram until --count arrived or --timeout passed without any.
On the virtual network the second host plays the other part: it listens
when you send, and sends when you listen.`,
		Example: "  sockstack mcast send 239.1.2.3:5000 hello\n  sockstack mcast listen 239.1.2.3:5000\n  sockstack mcast send [ff02::4242%eth0]:5000 hello",
		Args:    usageArgs(cobra.RangeArgs(2, 3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			op := args[0]
			if op != "send" && op != "listen" {
				return usageErr(cmd, "want send or listen, not %q", op)
			}
			if op == "listen" && len(args) == 3 {
				return usageErr(cmd, "listen takes no MESSAGE")
			}
			if op == "listen" && cmd.Flags().Changed("loop") {
				return usageErr(cmd, "--loop applies to send")
			}
			gp, err := netip.ParseAddrPort(args[1])
			if err != nil || !gp.Addr().IsMulticast() || gp.Port() == 0 {
				return usageErr(cmd, "want GROUP:PORT with a multicast group (224.0.0.0/4, or ff00::/8 as [ff02::1:2%%eth0]:PORT) and a port, got %q", args[1])
			}
			if ttl < 0 || ttl > 255 {
				return usageErr(cmd, "--ttl %d outside 0..255", ttl)
			}
			if count < 0 {
				return usageErr(cmd, "--count %d: want 0 or more", count)
			}
			e, err := f.open(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, stop := cmdContext(cmd)
			defer stop()
			w := cmd.OutOrStdout()
			if op == "send" {
				msg := ""
				if len(args) == 3 {
					msg = args[2]
				}
				if e.peer != nil {
					go mcastListen(ctx, prefixWriter{w, "  [server host] "}, sockapi.Stack(e.peer), gp, e.peer.Stack().NICs()[1].ID(), count, 2*time.Second)
					time.Sleep(50 * time.Millisecond) // let it join before the first datagram
				}
				return mcastSend(ctx, w, e.api, gp, msg, count, ttl, interval, loop)
			}
			if e.peer != nil {
				go mcastSend(ctx, prefixWriter{w, "  [server host] "}, sockapi.Stack(e.peer), gp, "", max(count, 1)+1, ttl, interval, false)
			}
			ifindex := zoneIndex(e.st, gp.Addr().Zone())
			if gp.Addr().Zone() != "" && ifindex == 0 {
				return fmt.Errorf("mcast: no interface %q", gp.Addr().Zone())
			}
			if ifindex == 0 && e.nic != nil && gp.Addr().Is6() {
				ifindex = e.nic.ID() // sockstack's one NIC (the kernel picks by route)
			}
			return mcastListen(ctx, w, e.api, gp, ifindex, count, timeout)
		},
	}
	f.register(c, clientTool)
	c.Flags().IntVarP(&count, "count", "c", 3, "datagrams to send / to wait for (0: no limit)")
	c.Flags().IntVarP(&ttl, "ttl", "t", 1, "multicast TTL")
	c.Flags().DurationVarP(&interval, "interval", "i", time.Second, "time between datagrams")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "listen: give up after this long without a datagram")
	c.Flags().BoolVar(&loop, "loop", true, "send: also deliver to listeners on this host (IP_MULTICAST_LOOP; on by default, as in Linux)")
	return c
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b)
	return len(b), err
}

func mcastSend(ctx context.Context, w io.Writer, api sockapi.API, gp netip.AddrPort, msg string, count, ttl int, interval time.Duration, loop bool) error {
	v6 := sockFamily(gp.Addr()) == socket.AF_INET6
	s, err := api.Socket(sockFamily(gp.Addr()), socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	level, ttlOpt, loopOpt, names := socket.SOL_IP, socket.IP_MULTICAST_TTL, socket.IP_MULTICAST_LOOP, [2]string{"IP_MULTICAST_TTL", "IP_MULTICAST_LOOP"}
	if v6 {
		level, ttlOpt, loopOpt, names = socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, socket.IPV6_MULTICAST_LOOP, [2]string{"IPV6_MULTICAST_HOPS", "IPV6_MULTICAST_LOOP"}
	}
	if err := s.SetSockOptInt(level, ttlOpt, ttl); err != nil {
		return fmt.Errorf("%s: %w", names[0], err)
	}
	if err := s.SetSockOptInt(level, loopOpt, b2i(loop)); err != nil {
		return fmt.Errorf("%s: %w", names[1], err)
	}
	for i := 1; count == 0 || i <= count; i++ {
		m := msg
		if m == "" {
			m = fmt.Sprintf("hello group %v, message %d", gp.Addr(), i)
		}
		if _, err := s.SendTo([]byte(m), 0, socket.InetAddr(gp)); err != nil {
			return err
		}
		fmt.Fprintf(w, "sent %d bytes to %v: %q\n", len(m), gp, m)
		if count != 0 && i == count {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mcastListen joins gp (on interface ifindex for an IPv6 group, 0: the
// route's) and prints what arrives.
func mcastListen(ctx context.Context, w io.Writer, api sockapi.API, gp netip.AddrPort, ifindex, count int, timeout time.Duration) error {
	fam := sockFamily(gp.Addr())
	s, err := api.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if fam == socket.AF_INET6 {
		if err := s.Bind(socket.Inet6("::", int(gp.Port()))); err != nil {
			return err
		}
		if err := s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.IPv6Mreq{Multiaddr: gp.Addr().WithZone(""), Interface: ifindex}); err != nil {
			return fmt.Errorf("IPV6_JOIN_GROUP %v: %w", gp.Addr(), err)
		}
	} else {
		if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), gp.Port()))); err != nil {
			return err
		}
		if err := s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: gp.Addr(), Interface: netip.IPv4Unspecified()}); err != nil {
			return fmt.Errorf("IP_ADD_MEMBERSHIP %v: %w", gp.Addr(), err)
		}
	}
	fmt.Fprintf(w, "joined %v, listening on port %d\n", gp.Addr(), gp.Port())
	s.SetTimeout(100 * time.Millisecond)
	buf := make([]byte, 65536)
	got := 0
	last := time.Now()
	for count == 0 || got < count {
		if ctx.Err() != nil {
			return nil
		}
		n, from, err := s.RecvFrom(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			if time.Since(last) > timeout {
				return fmt.Errorf("mcast: nothing for %v (%d received)", timeout, got)
			}
			continue
		}
		if err != nil {
			return err
		}
		got++
		last = time.Now()
		fmt.Fprintf(w, "%d bytes from %v: %q\n", n, from, buf[:n])
	}
	return nil
}

// meterWriter feeds a meter as a body is written.
type meterWriter struct {
	w     io.Writer
	m     *meter
	n     int64
	total int64
}

func (mw *meterWriter) Write(b []byte) (int, error) {
	k, err := mw.w.Write(b)
	mw.n += int64(k)
	mw.m.set(mw.n, mw.total)
	return k, err
}

// maxBots bounds --bots (each is a member of the room with a socket).
const maxBots = 16

// runBots brings n bot participants into the chat room at srv: each joins
// as bot1, bot2, ..., greets, and answers a message from a person (not
// from another bot) once. They leave when ctx ends.
func runBots(ctx context.Context, api sockapi.API, srv netip.AddrPort, n int, udp bool) {
	done := make(chan struct{}, n)
	for i := 1; i <= n; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			runBot(ctx, api, srv, fmt.Sprintf("bot%d", i), udp)
		}()
	}
	for range n {
		<-done
	}
}

func runBot(ctx context.Context, api sockapi.API, srv netip.AddrPort, name string, udp bool) {
	s, err := dial(api, srv, udp, 200*time.Millisecond)
	if err != nil {
		return
	}
	defer s.Close()
	send := func(line string) {
		if !udp {
			line += "\n"
		}
		s.SendAll([]byte(line), 0)
	}
	send("/join " + name)
	send("hello, I am " + name + " (a bot)")
	buf := make([]byte, 4096)
	var pending string
	for ctx.Err() == nil {
		k, err := s.Recv(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil || (k == 0 && !udp) {
			return
		}
		pending += string(buf[:k])
		if udp {
			pending += "\n"
		}
		for {
			line, rest, ok := strings.Cut(pending, "\n")
			if !ok {
				break
			}
			pending = rest
			who, text, ok := strings.Cut(line, ": ")
			if !ok || strings.HasPrefix(who, "bot") || strings.HasPrefix(who, "*") {
				continue
			}
			send(fmt.Sprintf("%s: you said %q", who, text))
		}
	}
	send("/quit")
}
