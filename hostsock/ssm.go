package hostsock

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// GetSockOptBuf is getsockopt(2) with a value-result buffer (IP_MSFILTER,
// MCAST_MSFILTER take their request in it); it returns the optlen the
// kernel wrote back. The mirror of socket.Socket.GetSockOptBuf.
func (s *Socket) GetSockOptBuf(level, name int, buf []byte) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	l := uint32(len(buf))
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), uintptr(level), uintptr(name), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

// GetMsfilter reads the socket's source filter for group through
// IP_MSFILTER (IPv4 without an index) or MCAST_MSFILTER, like
// socket.Socket.GetMsfilter.
func (s *Socket) GetMsfilter(group netip.Addr, ifindex int, ifAddr netip.Addr) (int, []netip.Addr, error) {
	ne := binary.NativeEndian
	if group.Is4() && ifindex == 0 {
		buf := socket.IPMsfilter{Multiaddr: group, Interface: ifAddr, Slist: make([]netip.Addr, 64)}.Marshal()
		if _, err := s.GetSockOptBuf(unix.SOL_IP, socket.IP_MSFILTER, buf); err != nil {
			return 0, nil, err
		}
		n := min(int(ne.Uint32(buf[12:])), 64)
		var out []netip.Addr
		for i := 0; i < n; i++ {
			out = append(out, netip.AddrFrom4([4]byte(buf[16+4*i:20+4*i])))
		}
		return int(ne.Uint32(buf[8:])), out, nil
	}
	level := unix.SOL_IP
	if group.Is6() {
		level = unix.SOL_IPV6
	}
	buf := socket.GroupFilter{Interface: uint32(ifindex), Group: group, Slist: make([]netip.Addr, 64)}.Marshal()
	if _, err := s.GetSockOptBuf(level, socket.MCAST_MSFILTER, buf); err != nil {
		return 0, nil, err
	}
	n := min(int(ne.Uint32(buf[140:])), 64)
	var out []netip.Addr
	for i := 0; i < n; i++ {
		b := buf[144+128*i:]
		switch ne.Uint16(b) {
		case unix.AF_INET:
			out = append(out, netip.AddrFrom4([4]byte(b[4:8])))
		case unix.AF_INET6:
			out = append(out, netip.AddrFrom16([16]byte(b[8:24])))
		}
	}
	return int(ne.Uint32(buf[136:])), out, nil
}
