package socket

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
)

// Interface ioctl requests (linux/sockios.h), answered by IoctlIfreq.
const (
	SIOCGIFNAME    = 0x8910
	SIOCGIFCONF    = 0x8912
	SIOCGIFFLAGS   = 0x8913
	SIOCGIFADDR    = 0x8915
	SIOCGIFDSTADDR = 0x8917
	SIOCGIFBRDADDR = 0x8919
	SIOCGIFNETMASK = 0x891b
	SIOCGIFMETRIC  = 0x891d
	SIOCGIFMTU     = 0x8921
	SIOCGIFHWADDR  = 0x8927
	SIOCGIFINDEX   = 0x8933
	SIOCGIFTXQLEN  = 0x8942
)

// Interface flags (linux/if.h) as SIOCGIFFLAGS reports them.
const (
	IFF_UP          = 0x1
	IFF_BROADCAST   = 0x2
	IFF_LOOPBACK    = 0x8
	IFF_POINTOPOINT = 0x10
	IFF_RUNNING     = 0x40
	IFF_NOARP       = 0x80
	IFF_MULTICAST   = 0x1000
)

// Hardware types (linux/if_arp.h): SIOCGIFHWADDR's family.
const (
	ARPHRD_ETHER    = 1
	ARPHRD_CAN      = 280
	ARPHRD_LOOPBACK = 772
	ARPHRD_NONE     = 0xFFFE
)

// IFNAMSIZ bounds an interface name with its NUL, as struct ifreq does.
const IFNAMSIZ = 16

// Ifreq is struct ifreq: the interface name and the one field a
// request reads or fills.
type Ifreq struct {
	Name     string
	Index    int        // SIOCGIFINDEX fills it; SIOCGIFNAME reads it
	Flags    int        // SIOCGIFFLAGS
	MTU      int        // SIOCGIFMTU
	Metric   int        // SIOCGIFMETRIC
	TxQLen   int        // SIOCGIFTXQLEN
	Addr     netip.Addr // SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFBRDADDR, SIOCGIFDSTADDR
	HWFamily int        // SIOCGIFHWADDR: ARPHRD_*
	HWAddr   []byte     // SIOCGIFHWADDR
}

// ifc is one interface as the ioctls and if_nameindex see it: a stack
// NIC or a CAN interface.
type ifc struct {
	index int
	name  string
	nic   *stack.NIC
}

// ifaces lists the interfaces by index: the stack's NICs, then CAN.
func (n *Net) ifaces() []ifc {
	var out []ifc
	for _, nic := range n.st.NICs() {
		out = append(out, ifc{nic.ID(), nic.Name(), nic})
	}
	for _, c := range n.CANInterfaces() {
		out = append(out, ifc{c.Index, c.Name, nil})
	}
	return out
}

func (n *Net) ifByName(name string) (ifc, bool) {
	if len(name) >= IFNAMSIZ {
		name = name[:IFNAMSIZ-1] // the kernel ends ifr_name at IFNAMSIZ-1
	}
	for _, i := range n.ifaces() {
		if i.name == name {
			return i, true
		}
	}
	return ifc{}, false
}

// IfNameIndexEntry is one entry of if_nameindex(3).
type IfNameIndexEntry struct {
	Index int
	Name  string
}

// IfNameIndex is if_nameindex(3): every interface, by index.
func (n *Net) IfNameIndex() []IfNameIndexEntry {
	var out []IfNameIndexEntry
	for _, i := range n.ifaces() {
		out = append(out, IfNameIndexEntry{i.index, i.name})
	}
	return out
}

// IfNameToIndex is if_nametoindex(3); ENODEV names no interface.
func (n *Net) IfNameToIndex(name string) (int, error) {
	if i, ok := n.ifByName(name); ok {
		return i.index, nil
	}
	return 0, syscall.ENODEV
}

// IfIndexToName is if_indextoname(3); ENXIO when no interface has it.
func (n *Net) IfIndexToName(index int) (string, error) {
	for _, i := range n.ifaces() {
		if i.index == index {
			return i.name, nil
		}
	}
	return "", syscall.ENXIO
}

// flags is what SIOCGIFFLAGS reports: sockstack's interfaces are always
// up; the rest follows the link's kind, as Linux's drivers set it.
func (i ifc) flags() int {
	switch {
	case i.nic == nil:
		return IFF_UP | IFF_RUNNING | IFF_NOARP // CAN
	case i.nic.Endpoint().Kind() == link.KindIP && i.name != "lo":
		return IFF_UP | IFF_POINTOPOINT | IFF_RUNNING | IFF_NOARP | IFF_MULTICAST // TUN
	case i.name == "lo" && i.index == 1:
		return IFF_UP | IFF_LOOPBACK | IFF_RUNNING
	}
	return IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST
}

func (i ifc) loopback() bool { return i.nic != nil && i.index == 1 }

// addr4 is the interface's first IPv4 address, as devinet_ioctl takes
// the first whose label is the name.
func (i ifc) addr4() (netip.Prefix, bool) {
	if i.nic == nil {
		return netip.Prefix{}, false
	}
	for _, p := range i.nic.Addrs() {
		if p.Addr().Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// IoctlIfreq is ioctl(2) with a struct ifreq: SIOCGIFINDEX and
// SIOCGIFNAME map names and indexes, SIOCGIFFLAGS, SIOCGIFMTU,
// SIOCGIFMETRIC, SIOCGIFTXQLEN and SIOCGIFHWADDR describe the interface
// r.Name names, and on AF_INET sockets SIOCGIFADDR, SIOCGIFNETMASK,
// SIOCGIFBRDADDR and SIOCGIFDSTADDR give its first IPv4 address
// (EADDRNOTAVAIL when it has none). An unknown name is ENODEV, a request
// the socket's family does not answer ENOTTY, as in Linux.
func (s *Socket) IoctlIfreq(req uint, r *Ifreq) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	n := s.net
	if req == SIOCGIFNAME {
		name, err := n.IfIndexToName(r.Index)
		if err != nil {
			return syscall.ENODEV
		}
		r.Name = name
		return nil
	}
	switch req {
	case SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFBRDADDR, SIOCGIFDSTADDR:
		if s.family != AF_INET {
			return syscall.ENOTTY // devinet_ioctl is AF_INET's
		}
	case SIOCGIFFLAGS, SIOCGIFMTU, SIOCGIFMETRIC, SIOCGIFTXQLEN, SIOCGIFHWADDR, SIOCGIFINDEX:
	default:
		return syscall.ENOTTY
	}
	i, ok := n.ifByName(r.Name)
	if !ok {
		return syscall.ENODEV
	}
	switch req {
	case SIOCGIFINDEX:
		r.Index = i.index
	case SIOCGIFFLAGS:
		r.Flags = i.flags()
	case SIOCGIFMTU:
		r.MTU = 72 // CAN FD
		if i.nic != nil {
			r.MTU = i.nic.MTU()
		}
	case SIOCGIFMETRIC:
		r.Metric = 0
	case SIOCGIFTXQLEN:
		r.TxQLen = 1000
		if i.nic == nil {
			r.TxQLen = 10 // CAN
		}
	case SIOCGIFHWADDR:
		switch {
		case i.nic == nil:
			r.HWFamily, r.HWAddr = ARPHRD_CAN, nil
		case i.loopback():
			r.HWFamily, r.HWAddr = ARPHRD_LOOPBACK, make([]byte, 6)
		case i.nic.Endpoint().Kind() == link.KindIP:
			r.HWFamily, r.HWAddr = ARPHRD_NONE, nil
		default:
			mac := i.nic.HardwareAddr()
			r.HWFamily, r.HWAddr = ARPHRD_ETHER, mac[:]
		}
	default: // the IPv4 address requests
		p, ok := i.addr4()
		if !ok {
			return syscall.EADDRNOTAVAIL
		}
		switch req {
		case SIOCGIFADDR, SIOCGIFDSTADDR:
			r.Addr = p.Addr()
		case SIOCGIFNETMASK:
			r.Addr = prefixMask4(p.Bits())
		case SIOCGIFBRDADDR:
			r.Addr = netip.IPv4Unspecified()
			if !i.loopback() && p.Bits() <= 30 {
				r.Addr = stack.DirectedBroadcast(p)
			}
		}
	}
	return nil
}

// IfConf is ioctl(SIOCGIFCONF): one entry (name and address) per IPv4
// address of every interface, in interface order, on any socket.
func (s *Socket) IfConf() ([]Ifreq, error) {
	if s.closed.Load() {
		return nil, syscall.EBADF
	}
	var out []Ifreq
	for _, i := range s.net.ifaces() {
		if i.nic == nil {
			continue
		}
		for _, p := range i.nic.Addrs() {
			if p.Addr().Is4() {
				out = append(out, Ifreq{Name: i.name, Addr: p.Addr()})
			}
		}
	}
	return out, nil
}

// prefixMask4 is the IPv4 netmask of a prefix length (0-32).
func prefixMask4(bits int) netip.Addr {
	m := net.CIDRMask(bits, 32)
	if m == nil {
		return netip.IPv4Unspecified() // not an IPv4 prefix length
	}
	return netip.AddrFrom4([4]byte(m))
}
