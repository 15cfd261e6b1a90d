package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/trace"
	"github.com/sockstack/sockstack/wire"
)

// vnet is the built-in virtual network: hosts on one in-memory switch,
// with an optional trace and pcap of every frame of the first host's port
// (with two hosts that is every frame).
type vnet struct {
	sw     *link.Switch
	hosts  []*vhost
	start  time.Time
	out    io.Writer
	trace  bool
	pcapF  *os.File
	pcap   *link.PcapWriter
	mu     sync.Mutex
	frames int
}

type vhost struct {
	name string
	st   *stack.Stack
	net  *socket.Net
	nic  *stack.NIC
	addr netip.Addr
}

func newVnet(out io.Writer, traceOn bool, pcapPath string) (*vnet, error) {
	v := &vnet{sw: link.NewSwitch(1500), start: time.Now(), out: out, trace: traceOn}
	if pcapPath != "" {
		f, err := os.Create(pcapPath)
		if err != nil {
			return nil, err
		}
		w, err := link.NewPcapWriter(f, link.LinkTypeEthernet, link.PcapOptions{})
		if err != nil {
			f.Close()
			return nil, err
		}
		v.pcapF, v.pcap = f, w
	}
	return v, nil
}

// addHost attaches a host; the first one's port is sniffed.
func (v *vnet) addHost(name, cidr string, mac wire.MAC, opts stack.Options) *vhost {
	opts.Name = name
	st := stack.New(opts)
	var ep link.Endpoint = v.sw.Port(mac)
	if len(v.hosts) == 0 {
		ep = link.NewSniffer(ep, func(dir link.Direction, f []byte) { v.record(f) })
	}
	nic := st.AddNIC("eth0", ep)
	p := netip.MustParsePrefix(cidr)
	h := &vhost{name: name, st: st, net: socket.New(st), nic: nic, addr: p.Addr()}
	v.hosts = append(v.hosts, h)
	nic.AddAddress(p)
	return h
}

func (v *vnet) record(f []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.frames++
	if v.pcap != nil {
		v.pcap.WriteFrame(time.Now(), f)
	}
	if v.trace {
		fmt.Fprintf(v.out, "  %9.6f  %s\n", time.Since(v.start).Seconds(), trace.Line(f, true))
	}
}

func (v *vnet) close() error {
	for _, h := range v.hosts {
		h.st.Close()
	}
	if v.pcap != nil {
		v.pcap.Flush()
		return v.pcapF.Close()
	}
	return nil
}

func (v *vnet) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.frames
}
