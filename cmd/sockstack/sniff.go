package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/trace"
	"github.com/sockstack/sockstack/wire"
)

func init() {
	extraCommands = append(extraCommands, sniffCmd)
}

// sniffer prints and records the frames that pass a filter.
type sniffer struct {
	mu     sync.Mutex
	w      io.Writer
	filter trace.Filter
	pcap   *link.PcapWriter
	start  time.Time
	count  int
	limit  int
	full   chan struct{}
}

func (s *sniffer) frame(dir link.Direction, f []byte, ethernet bool) {
	if !s.filter.Match(f, ethernet) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 && s.count >= s.limit {
		return
	}
	s.count++
	now := time.Now()
	if s.pcap != nil {
		s.pcap.WriteFrame(now, f)
	}
	fmt.Fprintf(s.w, "%9.6f %-3s %s\n", now.Sub(s.start).Seconds(), dir, trace.Line(f, ethernet))
	if s.limit > 0 && s.count == s.limit {
		close(s.full)
	}
}

func sniffCmd() *cobra.Command {
	var f hostFlags
	var iface, write, serve string
	var count int
	var duration time.Duration
	c := &cobra.Command{
		Use:   "sniff [flags] [FILTER...]",
		Short: "One line per packet, filtered with tcpdump's expressions; -w writes a pcap",
		Long: `Prints one line per frame, like tcpdump. FILTER is a tcpdump expression:
"host", "net", "port" with "src"/"dst", the protocols ip, arp, tcp, udp and
icmp, and and/or/not with parentheses, e.g. 'tcp and (port 7 or port 80)'.

  --tap NAME --addr CIDR   a sockstack host on the TAP (it answers ARP and ping;
                           --serve LIST starts services); its frames are shown
  --kernel --iface IF      frames the kernel's interface IF sends and receives
                           (AF_PACKET, needs CAP_NET_RAW; --netns NS for an
                           interface in a namespace)
  (neither)                the built-in virtual network: two hosts exchange a
                           short scripted workload (ping, UDP echo, TCP echo)`,
		Example: "  sockstack sniff 'tcp and port 7'\n  sockstack sniff --kernel --iface eth0 -c 10 icmp or arp",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if f.kernel != (iface != "") {
				if f.kernel {
					return usageErr(cmd, "--kernel needs --iface NAME")
				}
				return usageErr(cmd, "--iface applies only with --kernel")
			}
			if serve != "" && f.tap == "" {
				return usageErr(cmd, "--serve applies only with --tap")
			}
			if count < 0 {
				return usageErr(cmd, "--count %d: want 0 or more", count)
			}
			flt, err := trace.ParseFilter(strings.Join(args, " "))
			if err != nil {
				return usageErr(cmd, "%v", err)
			}
			w := cmd.OutOrStdout()
			sn := &sniffer{w: w, filter: flt, start: time.Now(), limit: count, full: make(chan struct{})}
			if write != "" {
				pw, closePcap, err := openPcap(write)
				if err != nil {
					return err
				}
				defer closePcap()
				sn.pcap = pw
			}
			ctx, stop := cmdContext(cmd)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			var werr error
			switch {
			case f.kernel:
				werr = sniffKernel(ctx, cmd.ErrOrStderr(), sn, iface, f.netns)
			case f.tap != "":
				werr = sniffTAP(ctx, cmd.ErrOrStderr(), sn, &f, serve)
			default:
				werr = sniffVnet(ctx, cmd.ErrOrStderr(), sn)
			}
			sn.mu.Lock()
			n := sn.count
			sn.mu.Unlock()
			fmt.Fprintf(cmd.ErrOrStderr(), "%d packets captured", n)
			if write != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), " (written to %s)", write)
			}
			fmt.Fprintln(cmd.ErrOrStderr())
			return werr
		},
	}
	f.register(c, sniffTool)
	c.Flags().StringVar(&iface, "iface", "", "with --kernel: the interface to sniff")
	c.Flags().StringVarP(&write, "write", "w", "", "also write the frames to this pcap file")
	c.Flags().StringVar(&serve, "serve", "", "with --tap: services to run on the host")
	c.Flags().IntVarP(&count, "count", "c", 0, "stop after this many packets")
	c.Flags().DurationVar(&duration, "duration", 0, "stop after this long")
	return c
}

func (sn *sniffer) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-sn.full:
	}
}

// sniffKernel shows the frames an interface of the kernel sends and
// receives.
func sniffKernel(ctx context.Context, log io.Writer, sn *sniffer, iface, netns string) error {
	c, err := openCapture(iface, netns)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(log, "sniffing %s, both directions\n", iface)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { sn.wait(ctx); cancel() }()
	return c.run(ctx, func(dir link.Direction, f []byte) { sn.frame(dir, f, true) })
}

type receiverFunc func(frames [][]byte)

func (r receiverFunc) DeliverFrames(frames [][]byte) { r(frames) }

// sniffTAP runs a host on a TAP and shows its frames.
func sniffTAP(ctx context.Context, log io.Writer, sn *sniffer, f *hostFlags, serve string) error {
	if f.addr == "" {
		return errors.New("--tap needs --addr CIDR (the stack's address)")
	}
	p, err := parseCIDR(f.addr)
	if err != nil {
		return err
	}
	if !interfaceExists(f.tap, f.netns) {
		return fmt.Errorf("TAP %s does not exist (ip tuntap add dev %s mode tap)", f.tap, f.tap)
	}
	tap, err := link.OpenTAP(f.tap, link.TAPOptions{Netns: f.netns, MTU: f.mtu})
	if err != nil {
		return fmt.Errorf("TAP %s: %v", f.tap, err)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	defer st.Close()
	nic := st.AddNIC(tap.Name(), link.NewSniffer(tap, func(d link.Direction, fr []byte) { sn.frame(d, fr, true) }))
	if err := nic.AddAddress(p); err != nil {
		return err
	}
	n := socket.New(st)
	if serve != "" {
		stop, names, err := startServices(n, serve, apps.Options{Root: "."})
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(log, "services: %s\n", strings.Join(names, ", "))
	}
	fmt.Fprintf(log, "sniffing sockstack host %v on TAP %s\n", p, tap.Name())
	sn.wait(ctx)
	return nil
}

// sniffVnet shows a scripted exchange on the virtual network.
func sniffVnet(ctx context.Context, log io.Writer, sn *sniffer) error {
	sw := link.NewSwitch(1500)
	a := stack.New(stack.Options{Name: "client", DADTransmits: -1})
	defer a.Close()
	b := stack.New(stack.Options{Name: "server", DADTransmits: -1})
	defer b.Close()
	na := a.AddNIC("eth0", link.NewSniffer(sw.Port(wire.MAC{2, 0, 0, 0, 0, 1}), func(d link.Direction, fr []byte) { sn.frame(d, fr, true) }))
	na.AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	nb := b.AddNIC("eth0", sw.Port(wire.MAC{2, 0, 0, 0, 0, 2}))
	nb.AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	// IPv6 too (no DAD: the exchange is scripted), for NDP and ICMPv6.
	na.AddAddress(netip.MustParsePrefix("fd00::1/64"))
	nb.AddAddress(netip.MustParsePrefix("fd00::2/64"))
	na.EnableIPv6()
	nb.EnableIPv6()
	stop, names, err := startServices(socket.New(b), "echo", apps.Options{})
	if err != nil {
		return err
	}
	defer stop()
	stop6, _, err := startServices(socket.New(b), "echo", apps.Options{Addr: netip.IPv6Unspecified()})
	if err != nil {
		return err
	}
	defer stop6()
	fmt.Fprintf(log, "sockstack: no --tap or --kernel: sniffing the built-in virtual network (client 10.0.0.1 fd00::1, server 10.0.0.2 fd00::2 running %s) during a scripted ping, UDP echo and TCP echo over IPv4, then ping6 and UDP echo over IPv6\n",
		strings.Join(names, ", "))
	api := sockapi.Stack(socket.New(a))
	srv := netip.MustParseAddr("10.0.0.2")
	var discard strings.Builder
	if err := runPing(ctx, &discard, api, srv, pingOpts{count: 2, size: 56, interval: 100 * time.Millisecond, wait: time.Second}); err != nil {
		return err
	}
	if err := echoLines(&discard, api, netip.AddrPortFrom(srv, 7), true, strings.NewReader("hello over udp\n"), 2*time.Second); err != nil {
		return err
	}
	if err := echoLines(&discard, api, netip.AddrPortFrom(srv, 7), false, strings.NewReader("hello over tcp\n"), 2*time.Second); err != nil {
		return err
	}
	srv6 := netip.MustParseAddr("fd00::2")
	if err := runPing(ctx, &discard, api, srv6, pingOpts{count: 2, size: 56, interval: 100 * time.Millisecond, wait: time.Second, ttl: -1}); err != nil {
		return err
	}
	if err := echoLines(&discard, api, netip.AddrPortFrom(srv6, 7), true, strings.NewReader("hello over udp6\n"), 2*time.Second); err != nil {
		return err
	}
	// Let the TCP close handshake finish on the wire.
	select {
	case <-ctx.Done():
	case <-sn.full:
	case <-time.After(200 * time.Millisecond):
	}
	return nil
}
