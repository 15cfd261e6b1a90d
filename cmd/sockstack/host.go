package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// hostFlags choose where a client tool runs: the built-in virtual network
// (default), its own stack on a TAP device, or the host kernel.
type hostFlags struct {
	tap, netns, addr, gw string
	mtu                  int
	kernel               bool
	pcap                 string
	serveRoot            string // files the virtual server host serves (http, tftp)
}

func (f *hostFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.tap, "tap", "", "run the stack on this TAP device instead of the virtual network")
	fl.StringVar(&f.netns, "netns", "", "network namespace (under /run/netns) that holds the TAP")
	fl.StringVar(&f.addr, "addr", "", "the stack's address on the TAP, as CIDR (e.g. 10.77.0.2/24)")
	fl.StringVar(&f.gw, "gw", "", "default gateway on the TAP")
	fl.IntVar(&f.mtu, "mtu", 0, "set the TAP's MTU (0: keep the device's)")
	fl.BoolVar(&f.kernel, "kernel", false, "use the host kernel's sockets instead of sockstack")
	fl.StringVar(&f.pcap, "pcap", "", "write every frame of this host to a pcap file")
	fl.StringVar(&f.serveRoot, "root", "", "directory the http and tftp services serve (virtual network: a temporary one with sample files; up: the current directory)")
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

// open builds the environment. target is the address the tool will talk
// to (invalid when it has none, like mcast or sniff): on the virtual
// network a server host is created at that address.
// openTarget parses a command's HOST argument and opens the stack to
// reach it (the shared first step of the client tools).
func (f *hostFlags) openTarget(log io.Writer, arg string) (*env, netip.Addr, error) {
	dst, err := parseTarget(arg)
	if err != nil {
		return nil, dst, err
	}
	e, err := f.open(log, dst)
	return e, dst, err
}

func (f *hostFlags) open(log io.Writer, target netip.Addr) (*env, error) {
	switch {
	case f.kernel:
		if f.tap != "" {
			return nil, errors.New("--kernel and --tap exclude each other")
		}
		return &env{api: sockapi.Host(), where: "the host kernel"}, nil
	case f.tap != "":
		return f.openTAP(log)
	}
	return f.openVnet(log, target)
}

func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("bad address %q: want an IPv4 CIDR like 10.77.0.2/24", s)
	}
	return p, nil
}

// openTAP runs a stack on a TAP device; the caller owns it.
func (f *hostFlags) openTAP(log io.Writer) (*env, error) {
	if f.addr == "" {
		return nil, errors.New("--tap needs --addr CIDR (the stack's address)")
	}
	p, err := parseCIDR(f.addr)
	if err != nil {
		return nil, err
	}
	tap, err := link.OpenTAP(f.tap, link.TAPOptions{Netns: f.netns, MTU: f.mtu})
	if err != nil {
		return nil, err
	}
	e := &env{where: "TAP " + tap.Name()}
	var ep link.Endpoint = tap
	if f.pcap != "" {
		pw, closePcap, err := openPcap(f.pcap)
		if err != nil {
			tap.Close()
			return nil, err
		}
		ep = link.NewSniffer(ep, func(_ link.Direction, fr []byte) { pw.WriteFrame(time.Now(), fr) })
		e.onClose(closePcap)
	}
	st := stack.New(stack.Options{Name: "sockstack"})
	e.st, e.net = st, socket.New(st)
	e.api = sockapi.Stack(e.net)
	e.onClose(func() error { st.Close(); return nil })
	e.nic = st.AddNIC(tap.Name(), ep)
	if err := e.nic.AddAddress(p); err != nil {
		e.Close()
		return nil, err
	}
	if f.gw != "" {
		gw, err := netip.ParseAddr(f.gw)
		if err == nil {
			err = st.SetDefaultGateway(gw)
		}
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("--gw %s: %v", f.gw, err)
		}
	}
	e.where = fmt.Sprintf("TAP %s (%s, mtu %d)", tap.Name(), p, tap.MTU())
	return e, nil
}

func openPcap(path string) (*link.PcapWriter, func() error, error) {
	fh, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	pw, err := link.NewPcapWriter(fh, link.LinkTypeEthernet, link.PcapOptions{})
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	return pw, func() error { return errors.Join(pw.Flush(), fh.Close()) }, nil
}

// openVnet makes the built-in virtual network: this host and, at target,
// a server host running every service, so that a tool run alone has a
// peer. Nothing leaves the process.
func (f *hostFlags) openVnet(log io.Writer, target netip.Addr) (*env, error) {
	if !target.IsValid() {
		target = netip.MustParseAddr("10.0.0.2")
	}
	if !target.Is4() || target.IsMulticast() || target.IsUnspecified() {
		target = netip.MustParseAddr("10.0.0.2")
	}
	pfx, _ := target.Prefix(24)
	mine := pfx.Addr().Next()
	if mine == target {
		mine = mine.Next()
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
	st := stack.New(stack.Options{Name: "client"})
	e.st, e.net = st, socket.New(st)
	e.api = sockapi.Stack(e.net)
	e.onClose(func() error { st.Close(); return nil })
	e.nic = st.AddNIC("eth0", ep)
	e.nic.AddAddress(netip.PrefixFrom(mine, 24))

	srv := stack.New(stack.Options{Name: "server"})
	e.onClose(func() error { srv.Close(); return nil })
	srv.AddNIC("eth0", sw.Port(wire.MAC{0x02, 0, 0, 0, 0, 2})).AddAddress(netip.PrefixFrom(target, 24))
	root := f.serveRoot
	if root == "" {
		dir, err := os.MkdirTemp("", "sockstack-vnet-")
		if err != nil {
			e.Close()
			return nil, err
		}
		e.onClose(func() error { return os.RemoveAll(dir) })
		if err := fillDemoRoot(dir); err != nil {
			e.Close()
			return nil, err
		}
		root = dir
	}
	e.peer = socket.New(srv)
	svc, names, err := startServices(e.peer, "all", root)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.onClose(svc)
	e.where = fmt.Sprintf("the virtual network (this host %v)", mine)
	fmt.Fprintf(log, "sockstack: no --tap or --kernel: using the built-in virtual network: this host %v/24, a server host %v/24 running %s (files in %s)\n",
		mine, target, strings.Join(names, ", "), root)
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
