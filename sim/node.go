package sim

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Host is a sockstack stack in the simulation; a router is a host that
// forwards.
type Host struct {
	Name   string
	Router bool
	s      *Sim
	Stack  *stack.Stack
	gen    uint64
	alive  bool
	ifaces []*Iface
	routes []RouteConfig
	tcpCfg tcp.Config
	// onRestart re-creates the host's workloads after a crash.
	onRestart []func()
}

// Iface is a host's interface: its address, its port, and the NIC the
// current incarnation of the stack uses.
type Iface struct {
	Name string
	Addr netip.Prefix   // the first address (invalid: none)
	More []netip.Prefix // further addresses (dual stack: the other family)
	MAC  wire.MAC
	Port *Port
	nic  *simNIC
	h    *Host
}

// RouteConfig is a static route.
type RouteConfig struct {
	To  netip.Prefix
	Via netip.Addr
	Dev string // interface name, found from Via when empty
}

// NewHost adds a host (router: forwarding on).
func (s *Sim) NewHost(name string, router bool, tc tcp.Config) *Host {
	h := &Host{Name: name, Router: router, s: s, alive: true, tcpCfg: tc}
	h.boot()
	return h
}

func (h *Host) boot() {
	tc := h.tcpCfg
	tc.Seed = h.s.SeedBytes(fmt.Sprintf("%s/tcp/%d", h.Name, h.gen))
	h.Stack = stack.New(stack.Options{
		Name:       h.Name,
		Clock:      &hostClock{s: h.s, gen: &h.gen},
		Forwarding: h.Router,
		TCP:        tc,
		Seed:       h.s.SeedBytes(fmt.Sprintf("%s/ip/%d", h.Name, h.gen)),
		// Duplicate address detection holds a new IPv6 address back for
		// a second of virtual time; off unless the scenario asks (dad).
		DADTransmits:   dadTransmits(h.s.DAD),
		ARPRetries:     h.s.NeighSolicits,
		NDMcastSolicit: h.s.NeighSolicits,
		NDUcastSolicit: h.s.NeighSolicits,
	})
}

func dadTransmits(on bool) int {
	if on {
		return 1
	}
	return -1
}

// AddIface attaches the host to a link end with an address (and, for
// dual stack, more addresses).
func (h *Host) AddIface(name string, pt *Port, addr netip.Prefix, mac wire.MAC, more ...netip.Prefix) (*Iface, error) {
	ifc := &Iface{Name: name, Addr: addr, MAC: mac, Port: pt, h: h, More: more}
	pt.sink = ifc
	h.ifaces = append(h.ifaces, ifc)
	return ifc, ifc.attach()
}

func (ifc *Iface) attach() error {
	n := &simNIC{ifc: ifc, mtu: ifc.Port.link.Cfg.MTU}
	ifc.nic = n
	nic := ifc.h.Stack.AddNIC(ifc.Name, n)
	for _, a := range ifc.Addrs() {
		if err := nic.AddAddress(a); err != nil {
			return fmt.Errorf("%v: %v", a, err)
		}
	}
	return nil
}

// Addrs lists the interface's addresses.
func (ifc *Iface) Addrs() []netip.Prefix {
	if !ifc.Addr.IsValid() {
		return nil
	}
	return append([]netip.Prefix{ifc.Addr}, ifc.More...)
}

// AddRoute installs a static route (kept across restarts).
func (h *Host) AddRoute(r RouteConfig) error {
	h.routes = append(h.routes, r)
	return h.installRoute(r)
}

func (h *Host) installRoute(r RouteConfig) error {
	var nic *stack.NIC
	if r.Dev != "" {
		nic = h.Stack.NICByName(r.Dev)
		if nic == nil {
			return fmt.Errorf("host %s: no interface %q", h.Name, r.Dev)
		}
	} else {
		rr, err := h.Stack.FindRoute(r.Via)
		if err != nil || rr.Gateway.IsValid() || rr.Local {
			return fmt.Errorf("host %s: gateway %v is not on a connected network", h.Name, r.Via)
		}
		nic = rr.NIC
	}
	h.Stack.AddRoute(stack.Route{Prefix: r.To.Masked(), Gateway: r.Via, NIC: nic})
	return nil
}

// Crash stops the host at once: no more frames in or out, its timers
// are silenced, and its state is gone.
func (h *Host) Crash() {
	if !h.alive {
		return
	}
	h.alive = false
	h.gen++
	for _, ifc := range h.ifaces {
		ifc.nic.dead = true
	}
	// Nothing it sends now reaches a wire; Close releases its loopback.
	h.Stack.Close()
}

// Restart boots a fresh stack with the same interfaces and routes and
// starts its workloads again.
func (h *Host) Restart() error {
	if h.alive {
		return nil
	}
	h.alive = true
	h.boot()
	for _, ifc := range h.ifaces {
		if err := ifc.attach(); err != nil {
			return err
		}
	}
	for _, r := range h.routes {
		if err := h.installRoute(r); err != nil {
			return err
		}
	}
	for _, f := range h.onRestart {
		f()
	}
	return nil
}

// Alive reports whether the host runs.
func (h *Host) Alive() bool { return h.alive }

// Ifaces lists the host's interfaces.
func (h *Host) Ifaces() []*Iface { return h.ifaces }

// Addr is the host's first address.
func (h *Host) Addr() netip.Addr {
	for _, i := range h.ifaces {
		if i.Addr.IsValid() {
			return i.Addr.Addr()
		}
	}
	return netip.Addr{}
}

// AddrOf is the host's first address of a family (6: IPv6, else IPv4).
func (h *Host) AddrOf(family int) netip.Addr {
	for _, i := range h.ifaces {
		for _, a := range i.Addrs() {
			if a.Addr().Is6() == (family == 6) {
				return a.Addr()
			}
		}
	}
	return netip.Addr{}
}

// HasAddr reports whether one of the host's interfaces has a.
func (h *Host) HasAddr(a netip.Addr) bool {
	for _, i := range h.ifaces {
		for _, p := range i.Addrs() {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

func (ifc *Iface) recvFrame(_ *Port, p *packet) {
	n := ifc.nic
	if n == nil || n.dead || n.recv == nil {
		p.free()
		return
	}
	n.stats.RxFrames.Add(1)
	n.stats.RxBytes.Add(uint64(len(p.buf)))
	n.vec[0] = p.buf
	n.recv.DeliverFrames(n.vec[:])
	n.vec[0] = nil
	p.free()
}

// simNIC is the link.Endpoint a host's stack sees: writes go into the
// port's queue, deliveries come from the event loop.
type simNIC struct {
	ifc   *Iface
	mtu   int
	recv  link.Receiver
	stats link.Stats
	dead  bool
	vec   [1][]byte
}

func (n *simNIC) MTU() int               { return n.mtu }
func (n *simNIC) Kind() link.Kind        { return link.KindEthernet }
func (n *simNIC) HardwareAddr() wire.MAC { return n.ifc.MAC }
func (n *simNIC) Attach(r link.Receiver) { n.recv = r }
func (n *simNIC) Stats() *link.Stats     { return &n.stats }
func (n *simNIC) Close() error           { n.dead = true; return nil }

func (n *simNIC) WriteFrames(frames [][]byte) (int, error) {
	if n.dead {
		n.stats.TxDropped.Add(uint64(len(frames)))
		return 0, link.ErrClosed
	}
	s := n.ifc.h.s
	for _, f := range frames {
		n.stats.TxFrames.Add(1)
		n.stats.TxBytes.Add(uint64(len(f)))
		if s.bubble {
			// A goroutine of the bubble is sending: hand the frame to the
			// loop, which owns the links.
			s.schedule(0, n.ifc.Port, 0, newPacket(f))
			continue
		}
		n.ifc.Port.send(newPacket(f))
	}
	return len(frames), nil
}

// Switch is a learning Ethernet switch: it learns source MACs per port
// and forwards to the learnt port, flooding unknown and group addresses.
type Switch struct {
	Name  string
	ports []*Port
	table map[wire.MAC]*Port
	// Counters.
	Forwarded, Flooded, Learned, TableFull, Filtered uint64
}

// MaxSwitchTable bounds a switch's MAC table (TableFull counts misses).
const MaxSwitchTable = 8192

// NewSwitch adds a switch.
func (s *Sim) NewSwitch(name string) *Switch {
	return &Switch{Name: name, table: map[wire.MAC]*Port{}}
}

// AddPort connects the switch to a link end.
func (sw *Switch) AddPort(pt *Port) {
	pt.sink = sw
	sw.ports = append(sw.ports, pt)
}

func (sw *Switch) recvFrame(in *Port, p *packet) {
	if len(p.buf) < wire.EthernetHeaderLen {
		p.free()
		return
	}
	e := wire.Ethernet(p.buf)
	src, dst := e.Src(), e.Dst()
	if !src.IsMulticast() {
		if cur, ok := sw.table[src]; !ok || cur != in {
			if ok || len(sw.table) < MaxSwitchTable {
				sw.table[src] = in
				sw.Learned++
			} else {
				sw.TableFull++
			}
		}
	}
	if out, ok := sw.table[dst]; ok && !dst.IsMulticast() {
		if out == in {
			sw.Filtered++
			p.free()
			return
		}
		sw.Forwarded++
		out.send(p)
		return
	}
	sw.Flooded++
	// Flood in port order, so the copies are scheduled deterministically.
	var last *Port
	for _, pt := range sw.ports {
		if pt == in {
			continue
		}
		if last != nil {
			last.send(p.clone())
		}
		last = pt
	}
	if last != nil {
		last.send(p)
	} else {
		p.free()
	}
}

// TableSize is the number of learnt MACs.
func (sw *Switch) TableSize() int { return len(sw.table) }

// MACs lists the table sorted, for reports.
func (sw *Switch) MACs() []string {
	var out []string
	for m, p := range sw.table {
		out = append(out, fmt.Sprintf("%v %s", m, p.Name))
	}
	sort.Strings(out)
	return out
}
