package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps"
	"github.com/sockstack/sockstack/control"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

func init() {
	extraCommands = append(extraCommands, upCmd, netstatCmd, statsCmd)
}

func upCmd() *cobra.Command {
	var f hostFlags
	var cf canFlags
	var serve, ctlPath, zone string
	c := &cobra.Command{
		Use:     "up --tap NAME [--netns NS] --addr CIDR [--gw IP] [--mtu N] [--serve LIST] [--root DIR] [--zone FILE] [--pcap FILE] [--control PATH] [--bridge-listen HOST:PORT] [--bridge-peer HOST:PORT]",
		Example: "  sockstack up --netns lab --tap tap0 --addr 10.77.0.2/24 --serve all --root /srv",
		Short:   "Run one host on a TAP device until SIGINT/SIGTERM",
		Long: `Runs a sockstack host on a real link (a TAP device, the Linux kernel on its
other side) until SIGINT or SIGTERM, then closes its connections with FIN,
waits briefly for them to finish, and flushes the capture.

--serve starts services on the host: a comma-separated list of ` + strings.Join(serviceOrder, ", ") + ` (NAME or NAME:PORT), or "all"; http and tftp serve --root; dns answers from
the host's table and --zone (a file in /etc/hosts form).
The TAP must exist (ip tuntap add dev NAME mode tap) unless --create is given.
--control opens a Unix socket of the host OS for 'sockstack netstat' and 'sockstack stats'.
--bridge-listen/--bridge-peer attach a CAN bus (interface vcan0) carried over
UDP, as the CAN tools (cansend, candump, canup) take.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.tap == "" {
				return usageErr(cmd, "up needs --tap NAME")
			}
			if err := f.check(cmd); err != nil {
				return err
			}
			if serve == "" {
				for _, n := range []string{"root", "zone"} {
					if cmd.Flags().Changed(n) {
						return usageErr(cmd, "--%s applies only with --serve", n)
					}
				}
			}
			if f.serveRoot != "" {
				if fi, err := os.Stat(f.serveRoot); err != nil || !fi.IsDir() {
					return usageErr(cmd, "--root %s: no such directory", f.serveRoot)
				}
			}
			if zone != "" {
				if _, err := os.Stat(zone); err != nil {
					return usageErr(cmd, "--zone %s: no such file", zone)
				}
			}
			ctx, stop := cmdContext(cmd)
			defer stop()
			return runUp(ctx, cmd.OutOrStdout(), &f, &cf, serve, ctlPath, zone)
		},
	}
	f.register(c, upTool)
	c.Flags().StringVar(&zone, "zone", "", "names the dns service answers besides the host's table (a file in /etc/hosts form)")
	c.Flags().StringVar(&serve, "serve", "", "services to run (comma-separated, or all)")
	c.Flags().StringVar(&ctlPath, "control", "", "Unix socket path for netstat/stats")
	cf.registerBridge(c)
	return c
}

// upCAN attaches the CAN bus the bridge flags ask for to n (nil: none).
func upCAN(w io.Writer, n *socket.Net, cf *canFlags) (*canBus, error) {
	if !cf.bridged() {
		return nil, nil
	}
	b, err := cf.attach(n, "vcan0")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  CAN bus on vcan0, bridge on udp %s\n", b.bridge.LocalAddr())
	return b, nil
}

// runUp is the body of `sockstack up`; it returns when ctx ends.
func runUp(ctx context.Context, w io.Writer, f *hostFlags, cf *canFlags, serve, ctlPath, zone string) error {
	e, err := f.openTAP(w)
	if err != nil {
		return err
	}
	defer e.Close()
	cb, err := upCAN(w, e.net, cf)
	if err != nil {
		return err
	}
	if cb != nil {
		defer cb.close()
	}
	started := time.Now()
	var names []string
	stopServices := func() error { return nil }
	if serve != "" {
		root := f.serveRoot
		if root == "" {
			root = "."
		}
		stopServices, names, err = startServices(e.net, serve, apps.Options{Root: root, Zone: zone, TFTPWrite: true})
		if err != nil {
			return err
		}
	}
	var ctl *control.Server
	if ctlPath != "" {
		ctl, err = control.Listen(ctlPath, control.Source{Net: e.net, Started: started})
		if err != nil {
			stopServices()
			return err
		}
	}
	fmt.Fprintf(w, "sockstack up: %s, mac %v", e.where, e.nic.HardwareAddr())
	if f.gw != "" {
		fmt.Fprintf(w, ", gateway %s", f.gw)
	}
	fmt.Fprintln(w)
	if len(names) > 0 {
		fmt.Fprintf(w, "  services: %s\n", strings.Join(names, ", "))
	}
	if ctl != nil {
		fmt.Fprintf(w, "  control socket: %s (sockstack netstat --control %s)\n", ctlPath, ctlPath)
	}
	if f.pcap != "" {
		fmt.Fprintf(w, "  capturing to %s\n", f.pcap)
	}
	fmt.Fprintln(w, "  running; SIGINT or SIGTERM stops it")

	<-ctx.Done()
	fmt.Fprintln(w, "sockstack up: shutting down")
	if ctl != nil {
		ctl.Close()
	}
	err = stopServices()
	// Sockets the services did not own (there are none today, but a
	// closed socket is harmless) get a FIN too.
	for _, s := range e.net.Sockets() {
		s.Close()
	}
	left := drainTCP(e.st, 3*time.Second)
	if left > 0 {
		fmt.Fprintf(w, "  %d connection(s) still closing after 3s; resetting them\n", left)
	}
	printSummary(w, e.st)
	return errors.Join(err, e.Close())
}

// drainTCP waits until no connection is between ESTABLISHED and the end of
// its close handshake (TIME_WAIT counts as done: our FIN was acknowledged),
// or until limit. It returns how many were left.
func drainTCP(st *stack.Stack, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		busy := 0
		for _, c := range st.TCP.Table() {
			switch c.State {
			case tcp.StateClosed, tcp.StateListen, tcp.StateTimeWait:
			default:
				busy++
			}
		}
		if busy == 0 || time.Now().After(deadline) {
			return busy
		}
		// The TCP table has no change notification; poll it briefly.
		time.Sleep(20 * time.Millisecond)
	}
}

func printSummary(w io.Writer, st *stack.Stack) {
	s := st.Stats()
	t := st.TCP.Stats()
	fmt.Fprintf(w, "  IP in %d out %d; ICMP in %d out %d; UDP in %d out %d; TCP segs in %d out %d retrans %d, opens active %d passive %d\n",
		s.IP.InReceives.Load(), s.IP.OutRequests.Load(), s.ICMP.InMsgs.Load(), s.ICMP.OutMsgs.Load(),
		s.UDP.InDatagrams.Load(), s.UDP.OutDatagrams.Load(), t.InSegs, t.OutSegs, t.RetransSegs, t.ActiveOpens, t.PassiveOpens)
}

func netstatCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:     "netstat --control PATH",
		Example: "  sockstack netstat --control /tmp/sockstack.ctl",
		Short:   "Print the socket table of a running 'sockstack up' (like netstat -an)",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usageErr(cmd, "needs --control PATH (the socket of a running 'sockstack up')")
			}
			var rows []control.SocketInfo
			if err := control.Query(path, "netstat", &rows); err != nil {
				return err
			}
			control.FormatNetstat(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	c.Flags().StringVar(&path, "control", "", "control socket of a running 'sockstack up'")
	return c
}

func statsCmd() *cobra.Command {
	var path string
	var all bool
	c := &cobra.Command{
		Use:     "stats --control PATH",
		Example: "  sockstack stats --control /tmp/sockstack.ctl",
		Short:   "Print the counters of a running 'sockstack up' (like netstat -s)",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usageErr(cmd, "needs --control PATH (the socket of a running 'sockstack up')")
			}
			var st []stack.Stat
			if err := control.Query(path, "stats", &st); err != nil {
				return err
			}
			control.FormatStats(cmd.OutOrStdout(), st, all)
			return nil
		},
	}
	c.Flags().StringVar(&path, "control", "", "control socket of a running 'sockstack up'")
	c.Flags().BoolVarP(&all, "all", "a", false, "also print counters that are zero")
	return c
}
