package socket

import (
	"net/netip"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// SO_BINDTOIFINDEX is SO_BINDTODEVICE by interface index (Linux 5.0).
const SO_BINDTOIFINDEX = 62

// boundDev is the device a socket is bound to: its name and index
// ("" and 0: none).
type boundDev struct {
	Name  string
	Index int
}

// bindToIndex is SO_BINDTOIFINDEX: an interface index (0 unbinds), a
// negative one EINVAL. Linux's sock_bindtoindex does not look the index
// up: a TCP or datagram socket keeps an unknown one, and its connect or
// send fails as its route's lookup does (ENODEV; ENETUNREACH for an
// IPv6 datagram); other kinds here refuse it with ENODEV.
func (s *Socket) bindToIndex(v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	if i < 0 || i > 1<<31-1 {
		return syscall.EINVAL
	}
	var nic *stack.NIC
	if i != 0 {
		if nic = s.net.st.NICByID(i); nic == nil {
			switch e := s.ep.(type) {
			case *tcpEP:
				e.ep.SetBindToDevice(i)
			case *dgramEP:
				e.ep.SetBindToIfindex(i)
				s.mu.Lock()
				s.ext().device = ""
				s.mu.Unlock()
			default:
				return syscall.ENODEV
			}
			return nil
		}
	}
	s.setDevice(nic)
	return nil
}

// device is the socket's bound device. A TCP socket's is its endpoint's:
// an accepted one has its listener's, and a connect or bind to a
// link-local address with a scope id binds it (scopeDev).
func (s *Socket) device() boundDev {
	if t, ok := s.ep.(*tcpEP); ok {
		id := t.ep.BindToDevice()
		if id == 0 {
			return boundDev{}
		}
		if nic := s.net.st.NICByID(id); nic != nil {
			return boundDev{nic.Name(), id}
		}
		return boundDev{Index: id}
	}
	if d, ok := s.ep.(*dgramEP); ok {
		id := d.ep.BindIfindex()
		if id == 0 {
			return boundDev{}
		}
		if nic := s.net.st.NICByID(id); nic != nil {
			return boundDev{nic.Name(), id}
		}
		return boundDev{Index: id}
	}
	s.mu.Lock()
	name := s.rx().device
	s.mu.Unlock()
	if name == "" {
		return boundDev{}
	}
	d := boundDev{Name: name}
	if nic := s.net.st.NICByName(name); nic != nil {
		d.Index = nic.ID()
	}
	return d
}

// scopeDev applies Linux's link-local rules of tcp_v6_connect and
// inet6_bind to a TCP socket's address a: a scope id binds the socket to
// its interface (connect: EINVAL when it is bound to another one), and a
// link-local address without one needs a bound device (EINVAL). It
// reports whether the socket is bound to a device, for inet6Addr's
// needScope.
func (t *tcpEP) scopeDev(a Sockaddr, connect bool) (bound bool, err error) {
	dev := t.ep.BindToDevice()
	v, ok := a.(*SockaddrInet)
	if !t.v6 || !ok {
		return dev != 0, nil
	}
	ad := v.AddrPort.Addr()
	if !ad.Is6() || ad.Is4In6() || !ad.IsLinkLocalUnicast() || ad.Zone() == "" {
		return dev != 0, nil
	}
	nic := zoneNIC(t.net.st, ad)
	if nic == nil {
		return dev != 0, nil // inet6Addr says ENODEV
	}
	if connect && dev != 0 && dev != nic.ID() {
		return true, syscall.EINVAL
	}
	t.ep.SetBindToDevice(nic.ID())
	return true, nil
}

// zoneNIC is the interface an address's zone names (by name or index).
func zoneNIC(st *stack.Stack, a netip.Addr) *stack.NIC {
	z := a.Zone()
	if n := st.NICByName(z); n != nil {
		return n
	}
	if id, ok := zoneIndex(z); ok {
		return st.NICByID(id)
	}
	return nil
}
