// Package vnet is the little network every example runs on: hosts
// 10.0.0.1, 10.0.0.2, ... on one in-memory Ethernet switch, inside the
// example's own process. With -kernel the same example code runs on the
// host kernel's sockets instead, every "host" being 127.0.0.1.
package vnet

import (
	"flag"
	"fmt"
	"net/netip"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Host is one end of an example.
type Host struct {
	Name  string
	Addr  string // its IPv4 address, for Bind and Connect
	Addr6 string // its IPv6 address (fd00::N); empty with -kernel
	// API creates sockets: sockstack's on the virtual network, the
	// kernel's with -kernel. Both return the same Sock interface.
	API sockapi.API
	// Net is sockstack's socket layer of the host (poller, getaddrinfo,
	// hosts table); nil with -kernel.
	Net   *socket.Net
	Stack *stack.Stack // nil with -kernel
}

// Socket is API.Socket, so examples read like the C and Python ones.
func (h Host) Socket(family, typ, proto int) (sockapi.Sock, error) {
	return h.API.Socket(family, typ, proto)
}

var kernel *bool

// KernelFlag registers -kernel. Only examples whose code works on the
// kernel without privileges call it; the others run on the virtual
// network only.
func KernelFlag() {
	kernel = flag.Bool("kernel", false, "run on the host kernel's sockets over 127.0.0.1 instead of the virtual network")
}

// Kernel reports whether -kernel was given.
func Kernel() bool { return kernel != nil && *kernel }

// Network is the hosts of one example.
type Network struct {
	Hosts  []Host
	stacks []*stack.Stack
}

// New parses the flags and makes n hosts named by names (10.0.0.1 is the
// first). Close it when done.
func New(names ...string) *Network {
	if !flag.Parsed() {
		flag.Parse()
	}
	nw := &Network{}
	if Kernel() {
		for _, name := range names {
			nw.Hosts = append(nw.Hosts, Host{Name: name, Addr: "127.0.0.1", API: sockapi.Host()})
		}
		return nw
	}
	sw := link.NewSwitch(1500)
	for i, name := range names {
		// No duplicate address detection: the addresses below are fixed
		// and unique, and usable at once.
		st := stack.New(stack.Options{Name: name, DADTransmits: -1})
		mac := wire.MAC{0x02, 0, 0, 0, 0, byte(i + 1)}
		nic := st.AddNIC("eth0", sw.Port(mac))
		addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		if err := nic.AddAddress(netip.PrefixFrom(addr, 24)); err != nil {
			panic(fmt.Sprintf("vnet: %v", err)) // cannot happen with these fixed addresses
		}
		// An IPv6 address beside the IPv4 one (fd00::1 is the first host),
		// so the examples are dual-stack like a real LAN.
		addr6 := netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i + 1)})
		if err := nic.AddAddress(netip.PrefixFrom(addr6, 64)); err != nil {
			panic(fmt.Sprintf("vnet: %v", err))
		}
		n := socket.New(st)
		nw.stacks = append(nw.stacks, st)
		nw.Hosts = append(nw.Hosts, Host{Name: name, Addr: addr.String(), Addr6: addr6.String(), API: sockapi.Stack(n), Net: n, Stack: st})
	}
	// Every host knows the others by name, as /etc/hosts would say.
	for _, h := range nw.Hosts {
		for _, o := range nw.Hosts {
			h.Net.Hosts().Add(o.Name, netip.MustParseAddr(o.Addr), netip.MustParseAddr(o.Addr6))
		}
	}
	return nw
}

// Close stops the hosts' stacks.
func (nw *Network) Close() {
	for _, st := range nw.stacks {
		st.Close()
	}
}
