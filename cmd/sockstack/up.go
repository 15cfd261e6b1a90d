package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps"
	"github.com/sockstack/sockstack/control"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

func init() {
	extraCommands = append(extraCommands, upCmd, netstatCmd, statsCmd)
}

func upCmd() *cobra.Command {
	var f hostFlags
	var cf canFlags
	var serve, ctlPath, zone string
	c := &cobra.Command{
		Use:     "up (--tap NAME | --tun NAME | --vxlan-local HOST:PORT [--vxlan-remote HOST:PORT]... --vni N) [--netns NS] --addr CIDR[,CIDR...] [--slaac] [--gw IP[,IP]] [--mtu N] [--serve LIST] [--root DIR] [--zone FILE] [--pcap FILE] [--control PATH] [--bridge-listen HOST:PORT] [--bridge-peer HOST:PORT]",
		Example: "  sockstack up --netns lab --tap tap0 --addr 10.77.0.2/24 --serve all --root /srv\n  sockstack up --vxlan-local 127.0.0.1:4789 --vxlan-remote 127.0.0.1:4790 --vni 42 --addr 192.168.90.1/24 --serve all",
		Short:   "Run one host on a TAP device or a VXLAN segment until SIGINT/SIGTERM",
		Long: `Runs a sockstack host on a real link (a TAP device, the Linux kernel on its
other side) until SIGINT or SIGTERM, then closes its connections with FIN,
waits briefly for them to finish, and flushes the capture.

--serve starts services on the host: a comma-separated list of ` + strings.Join(serviceOrder, ", ") + ` (NAME or NAME:PORT), or "all"; http and tftp serve --root; dns answers from
the host's table and --zone (a file in /etc/hosts form).
The TAP must exist (ip tuntap add dev NAME mode tap) unless --create is given.
--tun NAME runs the host on a layer 3 TUN device instead (ip tuntap add dev
NAME mode tun): bare IPv4 and IPv6 packets, no ARP or neighbor discovery, as
VPNs and tun2socks run a stack; --pcap then writes raw IP (LINKTYPE_RAW).
--vxlan-local/--vxlan-remote/--vni put the host on a VXLAN segment (RFC 7348)
instead: its NIC is a port of a learning switch whose other port encapsulates
frames in UDP, flooding broadcast and unknown destinations to every remote
and learning which remote holds a MAC, as Linux's vxlan device does (inner
MTU 1450 unless --mtu; --netns opens the UDP socket in that namespace).
--control opens a Unix socket of the host OS for 'sockstack netstat' and 'sockstack stats'.
--bridge-listen/--bridge-peer attach a CAN bus (interface vcan0) carried over
UDP, as the CAN tools (cansend, candump, canup) take.
--divert PROTO:PREFIX[:PORTS]:TOPORT adds a transparent-proxy rule (Linux's
TPROXY): TCP or UDP arriving for PREFIX (usually addresses the host does not
have), on PORTS (N or LO-HI; all when left out), goes to local port TOPORT,
keeping its original destination; a --serve service on TOPORT listens with
IP_TRANSPARENT and takes it. Repeatable; PROTO is tcp, udp or tcp+udp, e.g.
--divert tcp:10.0.0.0/8:1234 --divert tcp+udp:2001:db8::/32:80-443:7.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.tap == "" && f.tun == "" && !f.vx.set(cmd) {
				return usageErr(cmd, "up needs --tap NAME or --tun NAME, or --vxlan-local HOST:PORT --vni N to join a VXLAN segment")
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
			if _, err := parseDiverts(f.diverts); err != nil {
				return usageErr(cmd, "%v", err)
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
	open := f.openTAP
	if f.vx.on {
		open = f.openVXLAN
	}
	rules, err := parseDiverts(f.diverts)
	if err != nil {
		return err
	}
	e, err := open(w)
	if err != nil {
		return err
	}
	defer e.Close()
	for i, r := range rules {
		if err := e.st.AddTransparentRule(r); err != nil {
			switch {
			case errors.Is(err, syscall.EEXIST):
				return fmt.Errorf("--divert %q: given twice", f.diverts[i])
			case errors.Is(err, syscall.ENOSPC):
				return fmt.Errorf("--divert %q: at most %d rules", f.diverts[i], stack.MaxTransparentRules)
			}
			return fmt.Errorf("--divert %q: %w", f.diverts[i], err)
		}
	}
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
		if f.v6 {
			// The same services on :: (IPV6_V6ONLY beside the IPv4 ones,
			// so those keep seeing plain IPv4 peers).
			stop4 := stopServices
			stop6, _, err := startServices(e.net, serve, apps.Options{Addr: netip.IPv6Unspecified(), Root: root, Zone: zone, TFTPWrite: true})
			if err != nil {
				stop4()
				return err
			}
			stopServices = func() error { return errors.Join(stop6(), stop4()) }
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
	fmt.Fprintf(w, "sockstack up: %s", e.where)
	if e.nic.IsEthernet() { // a TUN has no MAC address to show
		fmt.Fprintf(w, ", mac %v", e.nic.HardwareAddr())
	}
	if f.gw != "" {
		fmt.Fprintf(w, ", gateway %s", f.gw)
	}
	fmt.Fprintln(w)
	if len(names) > 0 {
		fmt.Fprintf(w, "  services: %s\n", strings.Join(names, ", "))
	}
	transparentServices(w, e.net, rules)
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
	// Within the process's exit grace, so the summary is printed and the
	// stack closed (a peer that vanished leaves a connection in LAST_ACK).
	limit := exitGrace * 3 / 4
	left := drainTCP(e.st, limit)
	if left > 0 {
		fmt.Fprintf(w, "  %d connection(s) still closing after %v; resetting them\n", left, limit)
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
	if v6 := &s.IP6; v6.InReceives.Load()+v6.OutRequests.Load() > 0 {
		// Where IPv6 packets went: the drops are what a user asks about.
		fmt.Fprintf(w, "  IPv6 in %d out %d delivered %d (addr errors %d, discards %d, hdr errors %d, tentative %d); ICMPv6 in %d out %d errors %d\n",
			v6.InReceives.Load(), v6.OutRequests.Load(), v6.InDelivers.Load(), v6.InAddrErrors.Load(), v6.InDiscards.Load(),
			v6.InHdrErrors.Load(), v6.InTentative.Load(), s.ICMP6.InMsgs.Load(), s.ICMP6.OutMsgs.Load(), s.ICMP6.InErrors.Load())
	}
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

// vxlanFlags put the host on a VXLAN segment (RFC 7348) instead of a TAP:
// the host's NIC is a port of a sockstack learning switch whose other
// port is the VXLAN endpoint, as a Linux bridge with a vxlan device.
type vxlanFlags struct {
	local   string
	remotes []string
	vni     uint32
	on      bool // a VXLAN flag was given (set by hostFlags.check)
}

func (v *vxlanFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&v.local, "vxlan-local", "", "join a VXLAN segment: the local UDP HOST:PORT of the tunnel endpoint (port 0: any free port; 4789 is IANA's)")
	fl.StringArrayVar(&v.remotes, "vxlan-remote", nil, "VXLAN: a remote tunnel endpoint HOST:PORT to flood to (repeatable)")
	fl.Uint32Var(&v.vni, "vni", 0, "VXLAN: the segment's network identifier (0..16777215)")
}

// set reports whether any VXLAN flag was given.
func (v *vxlanFlags) set(c *cobra.Command) bool {
	for _, n := range []string{"vxlan-local", "vxlan-remote", "vni"} {
		if fl := c.Flags().Lookup(n); fl != nil && fl.Changed {
			return true
		}
	}
	return false
}

// check validates the VXLAN flags and refuses the ones that do not apply.
func (v *vxlanFlags) check(c *cobra.Command, f *hostFlags) error {
	v.on = true
	if f.tap != "" || f.kernel {
		return usageErr(c, "--vxlan-local and --tap or --kernel exclude each other")
	}
	if fl := c.Flags().Lookup("create"); fl != nil && fl.Changed {
		return usageErr(c, "--create applies only with --tap")
	}
	if v.local == "" {
		return usageErr(c, "VXLAN needs --vxlan-local HOST:PORT (the local tunnel endpoint)")
	}
	if !c.Flags().Changed("vni") {
		return usageErr(c, "VXLAN needs --vni N (the segment's identifier)")
	}
	if v.vni >= 1<<24 {
		return usageErr(c, "--vni %d does not fit 24 bits (0..16777215)", v.vni)
	}
	if f.addr == "" && !f.slaac {
		return usageErr(c, "VXLAN needs --addr CIDR (the host's address on the segment) or --slaac")
	}
	if _, err := netip.ParseAddrPort(v.local); err != nil {
		return usageErr(c, "--vxlan-local %q: want an IPv4 HOST:PORT like 127.0.0.1:4789", v.local)
	}
	for _, r := range v.remotes {
		if a, err := netip.ParseAddrPort(r); err != nil || a.Port() == 0 {
			return usageErr(c, "--vxlan-remote %q: want an IPv4 HOST:PORT like 127.0.0.1:4789", r)
		}
	}
	if len(f.vhosts) > 0 || f.hostsFile != "" {
		return usageErr(c, "--vhost and --hosts apply only to the virtual network")
	}
	return nil
}

// openVXLAN runs a stack behind a switch on a VXLAN segment.
func (f *hostFlags) openVXLAN(log io.Writer) (*env, error) {
	addrs, err := parseAddrs(f.addr)
	if err != nil {
		return nil, err
	}
	cfg := link.VXLANConfig{Local: netip.MustParseAddrPort(f.vx.local), VNI: f.vx.vni, Netns: f.netns}
	for _, r := range f.vx.remotes {
		cfg.Remotes = append(cfg.Remotes, netip.MustParseAddrPort(r))
	}
	if f.mtu > 0 {
		cfg.MTU = f.mtu
	}
	vx, err := link.NewVXLAN(cfg)
	if err != nil {
		return nil, err
	}
	sw := link.NewSwitch(vx.MTU())
	uplink := vx.JoinSwitch(sw)
	mac := wire.MAC{0x02, 0x5e, 0x10}
	if _, err := rand.Read(mac[3:]); err != nil {
		vx.Close()
		return nil, err
	}
	port := sw.Port(mac)
	e := &env{}
	// Closed in reverse: the stack, then the tunnel, then the switch.
	e.onClose(func() error { return errors.Join(vx.Close(), uplink.Close(), port.Close()) })
	if err := f.attach(e, port, "vx0", addrs); err != nil {
		e.Close()
		return nil, err
	}
	remotes := "no remotes (answers only what it learns)"
	if len(cfg.Remotes) > 0 {
		remotes = "remotes " + strings.Join(f.vx.remotes, ",")
	}
	e.where = fmt.Sprintf("VXLAN vni %d on udp %v, %s (%s, mtu %d)", f.vx.vni, vx.LocalAddr(), remotes, describeAddrs(addrs, f.slaac), vx.MTU())
	return e, nil
}

// parseDiverts parses every --divert value.
func parseDiverts(vs []string) ([]stack.TransparentRule, error) {
	var rs []stack.TransparentRule
	for _, v := range vs {
		r, err := parseDivert(v)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// parseDivert parses PROTO:PREFIX[:PORTS]:TOPORT. An IPv6 prefix has
// colons of its own: the prefix ends at the first colon after its "/",
// and may also be written in brackets.
func parseDivert(v string) (stack.TransparentRule, error) {
	var r stack.TransparentRule
	bad := func(format string, a ...any) (stack.TransparentRule, error) {
		return r, fmt.Errorf("--divert %q: %s", v, fmt.Sprintf(format, a...))
	}
	const form = "want PROTO:PREFIX[:PORTS]:TOPORT, like tcp:10.0.0.0/8:1234"
	proto, rest, ok := strings.Cut(v, ":")
	if !ok {
		return bad(form)
	}
	switch strings.ToLower(proto) {
	case "tcp":
		r.Proto = stack.TransparentTCP
	case "udp":
		r.Proto = stack.TransparentUDP
	case "tcp+udp", "udp+tcp":
		r.Proto = stack.TransparentTCP | stack.TransparentUDP
	default:
		return bad("protocol %q: want tcp, udp or tcp+udp", proto)
	}
	var pfx, tail string
	if strings.HasPrefix(rest, "[") {
		in, after, ok := strings.Cut(rest[1:], "]")
		if !ok || !strings.HasPrefix(after, ":") {
			return bad(form)
		}
		pfx, tail = in, after[1:]
	} else {
		slash := strings.LastIndexByte(rest, '/')
		if slash < 0 {
			return bad("%q: want a prefix with its length, like 10.0.0.0/8 or 2001:db8::/32", strings.Split(rest, ":")[0])
		}
		i := strings.IndexByte(rest[slash:], ':')
		if i < 0 {
			return bad("no port to divert to: %s", form)
		}
		pfx, tail = rest[:slash+i], rest[slash+i+1:]
	}
	p, err := netip.ParsePrefix(pfx)
	if err != nil {
		return bad("%q is not a prefix like 10.0.0.0/8 or 2001:db8::/32", pfx)
	}
	r.Dst = p.Masked()
	ports, to, hasPorts := strings.Cut(tail, ":")
	if !hasPorts {
		ports, to = "", tail
	}
	port := func(s string) (uint16, bool) {
		n, err := strconv.ParseUint(s, 10, 16)
		return uint16(n), err == nil && n > 0
	}
	if r.ToPort, ok = port(to); !ok {
		return bad("port %q: want 1..65535", to)
	}
	if ports != "" {
		lo, hi, isRange := strings.Cut(ports, "-")
		if !isRange {
			hi = lo
		}
		l, okl := port(lo)
		h, okh := port(hi)
		if !okl || !okh || l > h {
			return bad("ports %q: want N or LO-HI within 1..65535", ports)
		}
		r.Ports = [2]uint16{l, h}
	}
	return r, nil
}

// transparentServices sets IP_TRANSPARENT on the services listening on
// a divert rule's port (Linux's TPROXY hands diverted traffic only to
// such sockets; the option is read when a diverted packet arrives, so
// setting it after listen is enough) and says what each rule reaches.
func transparentServices(w io.Writer, n *socket.Net, rules []stack.TransparentRule) {
	taken := map[uint16]int{}
	for _, so := range n.Sockets() {
		sa, err := so.GetSockName()
		in, ok := sa.(*socket.SockaddrInet)
		if err != nil || !ok {
			continue
		}
		port := in.AddrPort.Port()
		if !slices.ContainsFunc(rules, func(r stack.TransparentRule) bool { return r.ToPort == port }) {
			continue
		}
		level, name := socket.SOL_IP, socket.IP_TRANSPARENT
		if so.Family() == socket.AF_INET6 {
			level, name = socket.IPPROTO_IPV6, socket.IPV6_TRANSPARENT
		}
		if so.SetSockOptInt(level, name, 1) == nil {
			taken[port]++
		}
	}
	for _, r := range rules {
		var protos []string
		if r.Proto&stack.TransparentTCP != 0 {
			protos = append(protos, "tcp")
		}
		if r.Proto&stack.TransparentUDP != 0 {
			protos = append(protos, "udp")
		}
		ports := "all ports"
		if r.Ports != [2]uint16{} {
			ports = fmt.Sprintf("ports %d-%d", r.Ports[0], r.Ports[1])
		}
		note := "no service listens there: TCP is reset, UDP dropped"
		if taken[r.ToPort] > 0 {
			note = "to the service there"
		}
		fmt.Fprintf(w, "  divert %s %v %s -> port %d (%s)\n", strings.Join(protos, "+"), r.Dst, ports, r.ToPort, note)
	}
}
