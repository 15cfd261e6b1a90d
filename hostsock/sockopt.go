package hostsock

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// SetSockOpt sets an option with the value types of package socket: int
// (booleans 0/1) for most, socket.Linger for SO_LINGER, time.Duration
// (or int microseconds) for SO_RCVTIMEO/SO_SNDTIMEO, socket.IPMreq for
// IP_ADD/DROP_MEMBERSHIP, netip.Addr for IP_MULTICAST_IF, string for
// TCP_CONGESTION and SO_BINDTODEVICE. The kernel judges the value; a
// value of the wrong Go type fails with EINVAL.
func (s *Socket) SetSockOpt(level, name int, v any) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	fd := s.fd
	switch {
	case level == socket.SOL_SOCKET && (name == socket.SO_RCVTIMEO || name == socket.SO_SNDTIMEO):
		d, ok := v.(time.Duration)
		if !ok {
			i, ok2 := v.(int)
			if !ok2 {
				return syscall.EINVAL
			}
			d = time.Duration(i) * time.Microsecond
		}
		tv := unix.NsecToTimeval(d.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, level, name, &tv); err != nil {
			return err
		}
		// The descriptor is non-blocking underneath, so our waits apply
		// the timeout; read back what the kernel kept.
		got, err := unix.GetsockoptTimeval(fd, level, name)
		if err != nil {
			return err
		}
		kd := time.Duration(unix.TimevalToNsec(*got))
		s.mu.Lock()
		if name == socket.SO_RCVTIMEO {
			s.rcvTimeo = kd
		} else {
			s.sndTimeo = kd
		}
		s.mu.Unlock()
		return nil
	case level == socket.SOL_SOCKET && name == socket.SO_LINGER:
		l, ok := v.(socket.Linger)
		if !ok {
			return syscall.EINVAL
		}
		kl := unix.Linger{Linger: int32(l.Linger)}
		if l.OnOff {
			kl.Onoff = 1
		}
		return unix.SetsockoptLinger(fd, level, name, &kl)
	case level == socket.SOL_IP && (name == socket.IP_ADD_MEMBERSHIP || name == socket.IP_DROP_MEMBERSHIP):
		m, ok := v.(socket.IPMreq)
		if !ok {
			return syscall.EINVAL
		}
		var mr unix.IPMreq
		if m.Multiaddr.IsValid() {
			mr.Multiaddr = m.Multiaddr.Unmap().As4()
		}
		if m.Interface.IsValid() {
			mr.Interface = m.Interface.Unmap().As4()
		}
		return unix.SetsockoptIPMreq(fd, level, name, &mr)
	case level == socket.IPPROTO_IPV6 && (name == socket.IPV6_JOIN_GROUP || name == socket.IPV6_LEAVE_GROUP):
		m, ok := v.(socket.IPv6Mreq)
		if !ok {
			return syscall.EINVAL
		}
		mr := unix.IPv6Mreq{Interface: uint32(m.Interface)}
		if m.Multiaddr.IsValid() {
			mr.Multiaddr = m.Multiaddr.As16()
		}
		return unix.SetsockoptIPv6Mreq(fd, level, name, &mr)
	case level == socket.IPPROTO_ICMPV6 && name == socket.ICMP6_FILTER:
		f, ok := v.(socket.ICMP6Filter)
		if !ok {
			return syscall.EINVAL
		}
		kf := unix.ICMPv6Filter{Data: f}
		return unix.SetsockoptICMPv6Filter(fd, level, name, &kf)
	case level == socket.SOL_IP && name == socket.IP_MULTICAST_IF:
		a, ok := v.(netip.Addr)
		if !ok {
			return syscall.EINVAL
		}
		var b [4]byte
		if a.IsValid() {
			b = a.Unmap().As4()
		}
		return unix.SetsockoptInet4Addr(fd, level, name, b)
	}
	if b, ok := socket.MarshalSSM(v); ok {
		// The source-specific structs (and raw bytes) as the kernel
		// lays them out.
		return unix.SetsockoptString(fd, level, name, string(b))
	}
	if str, ok := v.(string); ok {
		return unix.SetsockoptString(fd, level, name, str)
	}
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, level, name, i)
}

// SetSockOptInt is SetSockOpt with an int value.
func (s *Socket) SetSockOptInt(level, name, v int) error { return s.SetSockOpt(level, name, v) }

// GetSockOpt reads an option, with the value types of SetSockOpt
// (TCP_INFO gives a *unix.TCPInfo).
func (s *Socket) GetSockOpt(level, name int) (any, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	fd := s.fd
	switch level {
	case socket.SOL_SOCKET:
		switch name {
		case socket.SO_RCVTIMEO, socket.SO_SNDTIMEO:
			tv, err := unix.GetsockoptTimeval(fd, level, name)
			if err != nil {
				return nil, err
			}
			return time.Duration(unix.TimevalToNsec(*tv)), nil
		case socket.SO_LINGER:
			l, err := unix.GetsockoptLinger(fd, level, name)
			if err != nil {
				return nil, err
			}
			return socket.Linger{OnOff: l.Onoff != 0, Linger: int(l.Linger)}, nil
		case socket.SO_BINDTODEVICE:
			return unix.GetsockoptString(fd, level, name)
		}
	case socket.IPPROTO_ICMPV6:
		if name == socket.ICMP6_FILTER {
			f, err := unix.GetsockoptICMPv6Filter(fd, level, name)
			if err != nil {
				return nil, err
			}
			return socket.ICMP6Filter(f.Data), nil
		}
	case socket.SOL_IP:
		if name == socket.IP_MULTICAST_IF {
			b, err := unix.GetsockoptInet4Addr(fd, level, name)
			if err != nil {
				return nil, err
			}
			return netip.AddrFrom4(b), nil
		}
	case socket.SOL_TCP:
		switch name {
		case socket.TCP_INFO:
			return unix.GetsockoptTCPInfo(fd, level, name)
		case socket.TCP_CONGESTION:
			return unix.GetsockoptString(fd, level, name)
		}
	}
	return unix.GetsockoptInt(fd, level, name)
}

// GetSockOptInt reads an int option.
func (s *Socket) GetSockOptInt(level, name int) (int, error) {
	v, err := s.GetSockOpt(level, name)
	if err != nil {
		return 0, err
	}
	return socket.OptionInt(v)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func intOpt(v any) (int, error) { return socket.OptionInt(v) }
