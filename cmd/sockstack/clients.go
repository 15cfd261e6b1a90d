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
	c := &cobra.Command{
		Use:   "chat [--name NAME] [--tcp] HOST",
		Short: "Chat client: each line of stdin goes to the room, every message from it is printed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, dst, err := f.openTarget(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, stop := sigContext()
			defer stop()
			return runChat(ctx, cmd.OutOrStdout(), e.api, netip.AddrPortFrom(dst, uint16(port)), name, !tcpMode, cmd.InOrStdin())
		},
	}
	f.register(c)
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
	go func() {
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
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
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

// --- http get ---

func httpCmd() *cobra.Command {
	var f hostFlags
	var output string
	var include bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "http get URL",
		Short: "HTTP/1.1 GET: print the body (or save it with -o) and a summary",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "get" {
				return fmt.Errorf("http: only get is supported, not %q", args[0])
			}
			u, err := url.Parse(args[1])
			if err != nil || u.Scheme != "http" {
				return fmt.Errorf("http: want an http:// URL, got %q", args[1])
			}
			dst, err := parseTarget(u.Hostname())
			if err != nil {
				return err
			}
			port := 80
			if p := u.Port(); p != "" {
				port, err = strconv.Atoi(p)
				if err != nil {
					return fmt.Errorf("http: bad port %q", p)
				}
			}
			e, err := f.open(cmd.ErrOrStderr(), dst)
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
			return httpGet(cmd.ErrOrStderr(), out, e.api, netip.AddrPortFrom(dst, uint16(port)), u, include, timeout)
		},
	}
	f.register(c)
	c.Flags().StringVarP(&output, "output", "o", "", "write the body to this file")
	c.Flags().BoolVarP(&include, "include", "i", false, "print the status line and headers too")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up when nothing arrives for this long")
	return c
}

func httpGet(log, out io.Writer, api sockapi.API, srv netip.AddrPort, u *url.URL, include bool, timeout time.Duration) error {
	start := time.Now()
	s, err := dial(api, srv, false, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	path := u.RequestURI()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sockstack\r\nAccept: */*\r\nConnection: close\r\n\r\n", path, u.Host)
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
	d := time.Since(start)
	fmt.Fprintf(log, "http: %s: %d bytes in %v (%.1f Mbit/s)\n", status, n, d.Round(time.Millisecond), float64(n)*8/max(d.Seconds(), 1e-9)/1e6)
	if code >= 400 {
		return fmt.Errorf("http: %s", status)
	}
	return nil
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
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			op := args[0]
			if op != "send" && op != "listen" {
				return fmt.Errorf("mcast: want send or listen, not %q", op)
			}
			gp, err := netip.ParseAddrPort(args[1])
			if err != nil || !gp.Addr().Is4() || !gp.Addr().IsMulticast() {
				return fmt.Errorf("mcast: want GROUP:PORT with an IPv4 multicast group (224.0.0.0/4), got %q", args[1])
			}
			e, err := f.open(cmd.ErrOrStderr(), netip.Addr{})
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, stop := sigContext()
			defer stop()
			w := cmd.OutOrStdout()
			if op == "send" {
				msg := ""
				if len(args) == 3 {
					msg = args[2]
				}
				if e.peer != nil {
					go mcastListen(ctx, prefixWriter{w, "  [server host] "}, sockapi.Stack(e.peer), gp, count, 2*time.Second)
					time.Sleep(50 * time.Millisecond) // let it join before the first datagram
				}
				return mcastSend(ctx, w, e.api, gp, msg, count, ttl, interval, loop)
			}
			if e.peer != nil {
				go mcastSend(ctx, prefixWriter{w, "  [server host] "}, sockapi.Stack(e.peer), gp, "", max(count, 1)+1, ttl, interval, false)
			}
			return mcastListen(ctx, w, e.api, gp, count, timeout)
		},
	}
	f.register(c)
	c.Flags().IntVarP(&count, "count", "c", 3, "datagrams to send / to wait for (0: no limit)")
	c.Flags().IntVarP(&ttl, "ttl", "t", 1, "multicast TTL")
	c.Flags().DurationVarP(&interval, "interval", "i", time.Second, "time between datagrams")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "listen: give up after this long without a datagram")
	c.Flags().BoolVar(&loop, "loop", false, "send: also deliver to listeners on this host (IP_MULTICAST_LOOP)")
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
	s, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_MULTICAST_TTL, ttl); err != nil {
		return fmt.Errorf("IP_MULTICAST_TTL: %w", err)
	}
	if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_MULTICAST_LOOP, b2i(loop)); err != nil {
		return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
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

func mcastListen(ctx context.Context, w io.Writer, api sockapi.API, gp netip.AddrPort, count int, timeout time.Duration) error {
	s, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), gp.Port()))); err != nil {
		return err
	}
	if err := s.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: gp.Addr(), Interface: netip.IPv4Unspecified()}); err != nil {
		return fmt.Errorf("IP_ADD_MEMBERSHIP %v: %w", gp.Addr(), err)
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
