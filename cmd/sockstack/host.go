package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// toolKind says which of the host flags a command takes: a flag that
// cannot apply is not offered at all.
type toolKind int

const (
	clientTool toolKind = iota // ping, echo, tftp, http, chat, mcast: vnet, TAP or kernel
	sniffTool                  // sniff: vnet, TAP (with --serve) or the kernel's AF_PACKET
	upTool                     // up: a TAP only
)

// hostFlags choose where a tool runs: the built-in virtual network
// (default), its own stack on a TAP device, or the host kernel.
type hostFlags struct {
	kind                 toolKind
	tap, netns, addr, gw string
	mtu                  int
	kernel               bool
	pcap                 string
	serveRoot            string   // up: files the http and tftp services serve
	create               bool     // up: create the TAP when it does not exist
	vhosts               []string // virtual network: extra hosts, NAME=ADDR
	hostsFile            string   // virtual network: extra hosts, /etc/hosts form
	family               int      // 4 or 6: the HOST's address family (-4 / -6); 0 either
	only4, only6         bool
	slaac                bool          // TAP/VXLAN: IPv6 on, addresses and routes from router advertisements
	v6                   bool          // configure turned IPv6 on: services listen on :: too
	offload              bool          // TAP: virtio-net headers, super-segments and checksum offload with the kernel
	queues               int           // TAP: queues (IFF_MULTI_QUEUE), one reading goroutine each
	noIOURing            bool          // TAP: one read(2)/write(2) per frame instead of batches through io_uring
	busyPoll             time.Duration // TAP/TUN: stack.Options.BusyPoll (SO_BUSY_POLL's default)
	tun                  string        // --tun NAME: a layer 3 TUN device; check makes it tap with l3
	l3                   bool          // the device named by tap is a TUN (bare IP packets)
	vx                   vxlanFlags
	diverts              []string // up: --divert transparent-proxy rules (up.go)
	routes, rules        []string // --route, --rule: tables and policy rules (route_flags.go)
}

func (f *hostFlags) register(c *cobra.Command, kind toolKind) {
	f.kind = kind
	fl := c.Flags()
	fl.StringVar(&f.tap, "tap", "", "run the stack on this TAP device instead of the virtual network")
	fl.StringVar(&f.netns, "netns", "", "network namespace (under /run/netns) that holds the TAP")
	fl.StringVar(&f.addr, "addr", "", "the stack's addresses on the TAP, as CIDRs, comma-separated (e.g. 10.77.0.2/24,fd00:77::2/64)")
	fl.IntVar(&f.mtu, "mtu", 0, "set the TAP's MTU (0: keep the device's)")
	if kind != sniffTool {
		// sniff writes its capture with -w.
		fl.StringVar(&f.pcap, "pcap", "", "write every frame of this host to a pcap file")
		fl.StringVar(&f.gw, "gw", "", "default gateways on the TAP, comma-separated (an IPv4 and an IPv6 one, e.g. 10.77.0.1,fe80::1)")
		fl.StringArrayVar(&f.routes, "route", nil, "add a route, in ip route's words: PREFIX|default [via GW] [dev NAME] [table N|main|default] [metric N] [src ADDR] [mtu N] (repeatable)")
		fl.StringArrayVar(&f.rules, "rule", nil, "add a policy rule, in ip rule's words: [pref N] [not] [from P] [to P] [fwmark M[/MASK]] [iif D] [oif D] lookup T [suppress_prefixlength N] | blackhole | unreachable | prohibit; SO_MARK sets a socket's mark (repeatable)")
		fl.BoolVar(&f.slaac, "slaac", false, "turn IPv6 on and take addresses, default routers and the MTU from router advertisements (accept_ra)")
		fl.BoolVar(&f.offload, "offload", false, "TAP: exchange 64 KB super-segments with partial checksums with the kernel (IFF_VNET_HDR, TUNSETOFFLOAD)")
		fl.IntVar(&f.queues, "queues", 1, "TAP: queues of a multi-queue device (IFF_MULTI_QUEUE; an existing TAP must be made with multi_queue), flows spread over them and over cores")
		fl.BoolVar(&f.noIOURing, "no-io-uring", false, "TAP: write one frame per system call instead of batching writes through io_uring (used by default without --offload where the kernel allows it)")
		fl.DurationVar(&f.busyPoll, "busy-poll", 0, "TAP: a read that finds nothing reads the device itself, a blocking one for up to this without a frame before it sleeps, and poll and select as long (SO_BUSY_POLL for every socket, as net.core.busy_read and busy_poll; e.g. 50us; 0: off)")
		fl.StringVar(&f.tun, "tun", "", "run the stack on this layer 3 TUN device (bare IP packets, no ARP or neighbor discovery: as VPNs and tun2socks do); the TAP flags apply to it")
	}
	if kind == sniffTool {
		fl.BoolVar(&f.kernel, "kernel", false, "capture on an interface of the host kernel (--iface; AF_PACKET, needs CAP_NET_RAW)")
	}
	if kind == clientTool {
		fl.BoolVarP(&f.only4, "ipv4", "4", false, "use IPv4 only (a name's IPv4 address)")
		fl.BoolVarP(&f.only6, "ipv6", "6", false, "use IPv6 only (a name's IPv6 address)")
		fl.BoolVar(&f.kernel, "kernel", false, "use the host kernel's sockets instead of sockstack")
		fl.StringArrayVar(&f.vhosts, "vhost", nil, "virtual network: one more host NAME=ADDR (in 10.0.0.0/24) running the services (repeatable)")
		fl.StringVar(&f.hostsFile, "hosts", "", "virtual network: more hosts from a file in /etc/hosts form (ADDR NAME...)")
	}
	if kind != sniffTool {
		f.vx.register(c)
	}
	if kind == upTool {
		fl.StringVar(&f.serveRoot, "root", "", "directory the http and tftp services serve (default: the current directory)")
		fl.BoolVar(&f.create, "create", false, "create the TAP device when it does not exist")
		fl.StringArrayVar(&f.diverts, "divert", nil, "divert TCP/UDP to a prefix (usually not the host's) to the service on a local port, as a TPROXY rule: PROTO:PREFIX[:PORTS]:TOPORT, PROTO tcp, udp or tcp+udp, PORTS N or LO-HI (default all), e.g. tcp:10.0.0.0/8:1234, tcp:2001:db8::/32:80-443:1234 (repeatable)")
	}
}

// check refuses flags that would be ignored with the others given.
func (f *hostFlags) check(c *cobra.Command) error {
	set := func(name string) bool { fl := c.Flags().Lookup(name); return fl != nil && fl.Changed }
	if f.tun != "" {
		if f.tap != "" {
			return usageErr(c, "--tap and --tun exclude each other")
		}
		f.tap, f.l3 = f.tun, true
	}
	if f.kind != sniffTool && f.vx.set(c) {
		return f.vx.check(c, f)
	}
	if f.kernel && f.tap != "" {
		return usageErr(c, "--kernel and --%s exclude each other", f.devFlag())
	}
	switch {
	case f.only4 && f.only6:
		return usageErr(c, "-4 and -6 exclude each other")
	case f.only4:
		f.family = 4
	case f.only6:
		f.family = 6
	}
	tapOnly := []string{"addr", "gw", "route", "rule", "mtu", "create", "slaac", "offload", "queues", "no-io-uring", "busy-poll"}
	if f.kind != sniffTool {
		tapOnly = append(tapOnly, "netns")
	}
	if f.tap == "" {
		for _, n := range tapOnly {
			if set(n) {
				return usageErr(c, "--%s applies only with --tap or --tun", n)
			}
		}
	}
	if f.kind == sniffTool && set("netns") && f.tap == "" && !f.kernel {
		return usageErr(c, "--netns applies only with --tap or --kernel")
	}
	if f.kernel && set("pcap") {
		return usageErr(c, "--pcap does not apply with --kernel (capture with sniff --kernel or tcpdump)")
	}
	if (f.kernel || f.tap != "") && (len(f.vhosts) > 0 || f.hostsFile != "") {
		return usageErr(c, "--vhost and --hosts apply only to the virtual network")
	}
	return nil
}

// env is an opened place to run a tool.
type env struct {
	api   sockapi.API
	st    *stack.Stack // nil on the kernel
	net   *socket.Net  // nil on the kernel
	nic   *stack.NIC
	peer  *socket.Net // the virtual network's server host, nil elsewhere
	where string      // for messages

	closers []func() error
	once    sync.Once
}

func (e *env) onClose(f func() error) { e.closers = append(e.closers, f) }

// Close runs the closers in reverse order.
func (e *env) Close() error {
	var err error
	e.once.Do(func() {
		for i := len(e.closers) - 1; i >= 0; i-- {
			err = errors.Join(err, e.closers[i]())
		}
	})
	return err
}

// openTarget opens the place to run and resolves the command's HOST
// argument there: the stack's hosts table and resolver, or the system's
// resolver with --kernel.
func (f *hostFlags) openTarget(log io.Writer, arg string) (*env, netip.Addr, error) {
	e, err := f.open(log)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	dst, err := e.resolveIn(arg, f.family)
	if err != nil {
		e.Close()
		return nil, netip.Addr{}, err
	}
	e.ready6(dst) // util.go
	if e.st != nil && (f.tap != "" || f.vx.on) {
		// Runs before the stack is closed (closers run last first).
		n, st := e.net, e.st
		e.onClose(func() error { closeGracefully(n, st, toolCloseWait); return nil })
	}
	return e, dst, nil
}

// runTarget is how a client tool's RunE ends once its flags are
// checked: the place to run opened and host resolved in it (openTarget),
// run given a context that ends with the command (cmdContext), the place
// closed after.
func (f *hostFlags) runTarget(cmd *cobra.Command, host string, run func(ctx context.Context, e *env, dst netip.Addr) error) error {
	e, dst, err := f.openTarget(cmd.ErrOrStderr(), host)
	if err != nil {
		return err
	}
	defer e.Close()
	ctx, stop := cmdContext(cmd)
	defer stop()
	return run(ctx, e, dst)
}

// toolCloseWait bounds how long a client tool on a TAP or VXLAN waits for
// its connections to finish closing; well within exitGrace.
const toolCloseWait = exitGrace / 2

// closeGracefully closes n's sockets and waits, up to limit, until no TCP
// connection is still closing: a tool's stack ends with the process, and
// one that went away right after its FIN would leave the peer in LAST_ACK
// resending its FIN to nobody. It returns the connections still closing.
func closeGracefully(n *socket.Net, st *stack.Stack, limit time.Duration) int {
	for _, s := range n.Sockets() {
		s.Close()
	}
	return drainTCP(st, limit) // up.go
}

// resolve turns a host name or an IPv4 / IPv6 literal into an
// address (util.go).
func (e *env) resolve(name string) (netip.Addr, error) { return e.resolveIn(name, 0) }

func (f *hostFlags) open(log io.Writer) (*env, error) {
	switch {
	case f.kernel:
		return &env{api: sockapi.Host(), where: "the host kernel"}, nil
	case f.tap != "":
		return f.openTAP(log)
	case f.vx.on:
		return f.openVXLAN(log)
	}
	return f.openVnet(log)
}

func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("bad address %q: want an IPv4 CIDR like 10.77.0.2/24", s)
	}
	return p, nil
}

// parseAddrs reads --addr: IPv4 and IPv6 CIDRs, comma-separated.
func parseAddrs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
			return nil, fmt.Errorf("bad address %q: want CIDRs like 10.77.0.2/24 or fd00:77::2/64, comma-separated", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// stackOptions are the options of a stack on a TAP or VXLAN link.
func (f *hostFlags) stackOptions() stack.Options {
	return stack.Options{Name: "sockstack", IPv6SLAAC: f.slaac, IPv6LinkLocal: f.slaac, BusyPoll: f.busyPoll, BusyPollSelect: f.busyPoll}
}

// configure gives the NIC the addresses of --addr and the gateways of
// --gw. An IPv6 address turns IPv6 on for the NIC (its link-local
// address and duplicate address detection) as on Linux.
func (f *hostFlags) configure(st *stack.Stack, nic *stack.NIC, addrs []netip.Prefix) error {
	f.v6 = f.slaac
	for _, p := range addrs {
		if p.Addr().Is6() {
			if err := nic.EnableIPv6(); err != nil {
				return fmt.Errorf("IPv6 on %s: %v", nic.Name(), err)
			}
			f.v6 = true
			break
		}
	}
	for _, p := range addrs {
		if err := nic.AddAddress(p); err != nil {
			return fmt.Errorf("--addr %s: %v", p, err)
		}
	}
	if err := applyRouting(st, nic, f.routes, f.rules); err != nil { // route_flags.go
		return err
	}
	if f.gw == "" {
		return nil
	}
	for _, g := range strings.Split(f.gw, ",") {
		g = strings.TrimSpace(g)
		gw, err := netip.ParseAddr(g)
		if err == nil && gw.Is6() && gw.IsLinkLocalUnicast() {
			// fe80::1 is on-link on this NIC whatever its zone says.
			gw = gw.WithZone("")
			if e := nic.EnableIPv6(); e != nil {
				err = e
			}
			f.v6 = true
		}
		if err == nil && gw.Is6() && onLink6(gw, addrs) {
			// An on-link IPv6 router gets its route directly: right
			// after start our addresses are still under duplicate
			// address detection, and SetDefaultGateway's route lookup,
			// which wants a usable source, would refuse it.
			st.AddRoute(stack.Route{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Gateway: gw, NIC: nic})
			continue
		}
		if err == nil {
			err = st.SetDefaultGateway(gw)
		}
		if err != nil {
			return fmt.Errorf("--gw %q: want the IPv4 or IPv6 address of a router on %s's networks (%v)", g, nic.Name(), err)
		}
	}
	return nil
}

// onLink6 reports whether the IPv6 address gw is on the NIC's link:
// link-local, or inside one of the --addr prefixes.
func onLink6(gw netip.Addr, addrs []netip.Prefix) bool {
	if gw.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range addrs {
		if p.Addr().Is6() && p.Masked().Contains(gw) {
			return true
		}
	}
	return false
}

// devFlag names the flag that chose the device: tap or tun.
func (f *hostFlags) devFlag() string {
	if f.l3 {
		return "tun"
	}
	return "tap"
}

// openTAP runs a stack on a TAP device, or a TUN with --tun; the caller
// owns it.
func (f *hostFlags) openTAP(log io.Writer) (*env, error) {
	what, mode := "TAP", "tap"
	if f.l3 {
		what, mode = "TUN", "tun"
	}
	if f.addr == "" && !f.slaac {
		return nil, fmt.Errorf("--%s needs --addr CIDR (the stack's address), e.g. --%s %s0 --addr 10.77.0.2/24, or --slaac", mode, mode, mode)
	}
	var addrs []netip.Prefix
	if f.addr != "" {
		var err error
		if addrs, err = parseAddrs(f.addr); err != nil {
			return nil, err
		}
	}
	if f.netns != "" {
		if _, err := os.Stat("/run/netns/" + f.netns); err != nil {
			return nil, fmt.Errorf("--netns %s: no such network namespace (ip netns add %s)", f.netns, f.netns)
		}
	}
	if !f.create && !interfaceExists(f.tap, f.netns) {
		where := ""
		if f.netns != "" {
			where = " in namespace " + f.netns
		}
		return nil, fmt.Errorf("%s %s does not exist%s (create it with ip tuntap add dev %s mode %s, or pass --create)", what, f.tap, where, f.tap, mode)
	}
	if f.queues < 1 || f.queues > 64 {
		return nil, fmt.Errorf("--queues %d: want 1 to 64", f.queues)
	}
	open := link.OpenTAP
	if f.l3 {
		open = link.OpenTUN
	}
	tap, err := open(f.tap, link.TAPOptions{Netns: f.netns, MTU: f.mtu, Offload: f.offload, Queues: f.queues, NoIOURing: f.noIOURing})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", what, f.tap, err)
	}
	e := &env{where: what + " " + tap.Name()}
	if err := f.attach(e, tap, tap.Name(), addrs); err != nil {
		if e.st == nil {
			tap.Close() // the stack did not take it
		}
		e.Close()
		return nil, err
	}
	e.where = fmt.Sprintf("%s %s (%s, mtu %d%s)", what, tap.Name(), describeAddrs(addrs, f.slaac), tap.MTU(), tapExtras(tap, f.queues))
	return e, nil
}

// attach runs a stack for e on ep (through a capture with --pcap) with
// the addresses and gateways of the flags; e.st stays nil when it fails
// before the stack exists.
func (f *hostFlags) attach(e *env, ep link.Endpoint, name string, addrs []netip.Prefix) error {
	if f.pcap != "" {
		pw, closePcap, err := openPcapKind(f.pcap, ep.Kind())
		if err != nil {
			return err
		}
		ep = link.NewSniffer(ep, func(_ link.Direction, fr []byte) { pw.WriteFrame(time.Now(), fr) })
		e.onClose(closePcap)
	}
	st := stack.New(f.stackOptions())
	e.st, e.net = st, socket.New(st)
	e.api = sockapi.Stack(e.net)
	e.onClose(func() error { st.Close(); return nil })
	e.nic = st.AddNIC(name, ep)
	return f.configure(st, e.nic, addrs)
}

// tapExtras names a TAP's offloads and queues for the banner.
func tapExtras(t *link.TAP, queues int) string {
	var x string
	if fl := t.OffloadFlags(); fl != 0 {
		x += fmt.Sprintf(", offloads 0x%x", fl)
	}
	if queues > 1 {
		x += fmt.Sprintf(", %d queues", queues)
	}
	if on, _ := t.IOURing(); on {
		x += ", io_uring"
	}
	return x
}

// describeAddrs names a link's configured addresses for the banner.
func describeAddrs(addrs []netip.Prefix, slaac bool) string {
	var parts []string
	for _, p := range addrs {
		parts = append(parts, p.String())
	}
	if slaac {
		parts = append(parts, "IPv6 by SLAAC")
	}
	return strings.Join(parts, ", ")
}

func openPcap(path string) (*link.PcapWriter, func() error, error) {
	return openPcapKind(path, link.KindEthernet)
}

// openPcapKind is openPcap for a link of kind k: a TUN's packets are
// captured as raw IP (LINKTYPE_RAW).
func openPcapKind(path string, k link.Kind) (*link.PcapWriter, func() error, error) {
	fh, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	lt := link.LinkTypeEthernet
	if k == link.KindIP {
		lt = link.LinkTypeRaw
	}
	pw, err := link.NewPcapWriter(fh, lt, link.PcapOptions{})
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	return pw, func() error { return errors.Join(pw.Flush(), fh.Close()) }, nil
}

// The virtual network: this host and a server host, and any host a flag
// or file names; no other address answers.
var (
	vnetPrefix = netip.MustParsePrefix("10.0.0.0/24")
	vnetSelf   = netip.MustParseAddr("10.0.0.1")
	vnetServer = netip.MustParseAddr("10.0.0.2")
	// IPv6 beside it: host 10.0.0.N is also fd00::N (and has a
	// link-local address); DAD is off, so the addresses work at once.
	vnetPrefix6 = netip.MustParsePrefix("fd00::/64")
	vnetSelf6   = vnet6(vnetSelf)
)

// vnet6 is the IPv6 address of the virtual host at a: fd00::N for 10.0.0.N.
func vnet6(a netip.Addr) netip.Addr {
	b := vnetPrefix6.Addr().As16()
	b[15] = a.As4()[3]
	return netip.AddrFrom16(b)
}

// addVnet6 gives a virtual host its IPv6 addresses.
func addVnet6(n *stack.NIC, a netip.Addr) {
	n.AddAddress(netip.PrefixFrom(vnet6(a), 64))
	n.EnableIPv6()
}

type vnetHost struct {
	names []string
	addr  netip.Addr
}

// vnetHosts lists the virtual network's server hosts: "server" and the
// ones of --vhost and --hosts.
func (f *hostFlags) vnetHosts() ([]vnetHost, error) {
	hosts := []vnetHost{{[]string{"server"}, vnetServer}}
	seen := map[netip.Addr]int{vnetServer: 0}
	add := func(names []string, s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil || !vnetPrefix.Contains(a) || a == vnetSelf || a == vnetPrefix.Addr() || a == netip.MustParseAddr("10.0.0.255") {
			return fmt.Errorf("%q: want a host address in %v other than %v (this host)", s, vnetPrefix, vnetSelf)
		}
		if i, ok := seen[a]; ok {
			hosts[i].names = append(hosts[i].names, names...)
			return nil
		}
		seen[a] = len(hosts)
		hosts = append(hosts, vnetHost{names, a})
		return nil
	}
	for _, v := range f.vhosts {
		name, addr, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--vhost %q: want NAME=ADDR, e.g. --vhost web=10.0.0.3", v)
		}
		if err := add([]string{name}, addr); err != nil {
			return nil, fmt.Errorf("--vhost %s", err)
		}
	}
	if f.hostsFile != "" {
		fh, err := os.Open(f.hostsFile)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 512), 4096)
		line := 0
		for sc.Scan() {
			line++
			text, _, _ := strings.Cut(sc.Text(), "#")
			fs := strings.Fields(text)
			if len(fs) == 0 {
				continue
			}
			if len(fs) < 2 {
				return nil, fmt.Errorf("%s line %d: want ADDR NAME...", f.hostsFile, line)
			}
			if err := add(fs[1:], fs[0]); err != nil {
				return nil, fmt.Errorf("%s line %d: %v", f.hostsFile, line, err)
			}
		}
		if sc.Err() != nil {
			return nil, fmt.Errorf("%s line %d: longer than 4096 bytes", f.hostsFile, line+1)
		}
	}
	return hosts, nil
}

// openVnet makes the built-in virtual network. Nothing leaves the
// process. The server host answers DNS for every host's name; this host
// knows "server" and "client" from its hosts table and the rest through
// its resolver.
func (f *hostFlags) openVnet(log io.Writer) (*env, error) {
	hosts, err := f.vnetHosts()
	if err != nil {
		return nil, err
	}
	sw := link.NewSwitch(1500)
	e := &env{}
	var pw *link.PcapWriter
	if f.pcap != "" {
		w, closePcap, err := openPcap(f.pcap)
		if err != nil {
			return nil, err
		}
		pw = w
		e.onClose(closePcap)
	}
	var ep link.Endpoint = sw.Port(wire.MAC{0x02, 0, 0, 0, 0, 1})
	if pw != nil {
		ep = link.NewSniffer(ep, func(_ link.Direction, fr []byte) { pw.WriteFrame(time.Now(), fr) })
	}
	st := stack.New(stack.Options{Name: "client", DADTransmits: -1})
	e.st, e.net = st, socket.New(st)
	e.api = sockapi.Stack(e.net)
	e.onClose(func() error { st.Close(); return nil })
	e.nic = st.AddNIC("eth0", ep)
	e.nic.AddAddress(netip.PrefixFrom(vnetSelf, 24))
	addVnet6(e.nic, vnetSelf)
	e.net.Hosts().Add("client", vnetSelf, vnetSelf6)
	e.net.Hosts().Add("server", vnetServer, vnet6(vnetServer))
	e.net.SetNameservers([]netip.AddrPort{netip.AddrPortFrom(vnetServer, 53)})

	dir, err := os.MkdirTemp("", "sockstack-vnet-")
	if err != nil {
		e.Close()
		return nil, err
	}
	unregister := atExit(func() { os.RemoveAll(dir) })
	e.onClose(func() error { unregister(); return os.RemoveAll(dir) })
	if err := fillDemoRoot(dir); err != nil {
		e.Close()
		return nil, err
	}
	root := dir
	if f.serveRoot != "" {
		root = f.serveRoot
	}
	var names []string
	var desc []string
	for i, h := range hosts {
		srv := stack.New(stack.Options{Name: h.names[0], DADTransmits: -1})
		e.onClose(func() error { srv.Close(); return nil })
		snic := srv.AddNIC("eth0", sw.Port(wire.MAC{0x02, 0, 0, 0, 1, byte(i + 2)}))
		snic.AddAddress(netip.PrefixFrom(h.addr, 24))
		addVnet6(snic, h.addr)
		sn := socket.New(srv)
		if i == 0 {
			e.peer = sn
			for _, o := range hosts {
				sn.Hosts().Add(o.names[0], o.addr, vnet6(o.addr))
				for _, alias := range o.names[1:] {
					sn.Hosts().Add(alias, o.addr, vnet6(o.addr))
				}
			}
			sn.Hosts().Add("client", vnetSelf, vnetSelf6)
		}
		svc, started, err := startServices(sn, "all", apps.Options{Root: root, TFTPWrite: true})
		if err != nil {
			e.Close()
			return nil, err
		}
		e.onClose(svc)
		// The same services on :: (IPV6_V6ONLY beside the IPv4 ones).
		svc6, _, err := startServices(sn, "all", apps.Options{Addr: netip.IPv6Unspecified(), Root: root, TFTPWrite: true})
		if err != nil {
			e.Close()
			return nil, err
		}
		e.onClose(svc6)
		names = started
		desc = append(desc, fmt.Sprintf("%s %v %v", strings.Join(h.names, "/"), h.addr, vnet6(h.addr)))
	}
	e.where = fmt.Sprintf("the virtual network (this host %v)", vnetSelf)
	fmt.Fprintf(log, "sockstack: no --tap or --kernel: the built-in virtual network %v and %v: this host client %v %v; %s running %s (files in %s)\n",
		vnetPrefix, vnetPrefix6, vnetSelf, vnetSelf6, strings.Join(desc, ", "), strings.Join(names, ", "), root)
	return e, nil
}

// fillDemoRoot gives the virtual server host something to serve.
func fillDemoRoot(dir string) error {
	files := map[string][]byte{
		"index.html": []byte("<html><body><h1>sockstack</h1><p>Served by a user-space TCP/IP stack.</p></body></html>\n"),
		"hello.txt":  []byte("Hello, world\n"),
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	files["1MiB.bin"] = big
	for name, data := range files {
		if err := os.WriteFile(dir+"/"+name, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
