package hostsock

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// ifreqRaw is struct ifreq on Linux: the name, then a 24-byte union.
type ifreqRaw struct {
	name [socket.IFNAMSIZ]byte
	u    [24]byte
}

func (s *Socket) ioctlPtr(req uint, p unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), uintptr(req), uintptr(p))
	if errno != 0 {
		return errno
	}
	return nil
}

// IoctlIfreq is socket.Socket.IoctlIfreq on the kernel's socket.
func (s *Socket) IoctlIfreq(req uint, r *socket.Ifreq) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	var raw ifreqRaw
	copy(raw.name[:socket.IFNAMSIZ-1], r.Name)
	if req == socket.SIOCGIFNAME {
		binary.NativeEndian.PutUint32(raw.u[:], uint32(int32(r.Index)))
	}
	if err := s.ioctlPtr(req, unsafe.Pointer(&raw)); err != nil {
		return err
	}
	i32 := int(int32(binary.NativeEndian.Uint32(raw.u[:])))
	switch req {
	case socket.SIOCGIFNAME:
		r.Name = cString(raw.name[:])
	case socket.SIOCGIFINDEX:
		r.Index = i32
	case socket.SIOCGIFFLAGS:
		r.Flags = int(binary.NativeEndian.Uint16(raw.u[:])) // a short
	case socket.SIOCGIFMTU:
		r.MTU = i32
	case socket.SIOCGIFMETRIC:
		r.Metric = i32
	case socket.SIOCGIFTXQLEN:
		r.TxQLen = i32
	case socket.SIOCGIFHWADDR:
		r.HWFamily = int(binary.NativeEndian.Uint16(raw.u[:]))
		switch r.HWFamily {
		case socket.ARPHRD_ETHER, socket.ARPHRD_LOOPBACK:
			r.HWAddr = append([]byte(nil), raw.u[2:8]...)
		default:
			r.HWAddr = nil
		}
	case socket.SIOCGIFADDR, socket.SIOCGIFNETMASK, socket.SIOCGIFBRDADDR, socket.SIOCGIFDSTADDR:
		r.Addr = netip.AddrFrom4([4]byte(raw.u[4:8])) // sockaddr_in's address
	}
	return nil
}

// IfConf is ioctl(SIOCGIFCONF) on the kernel's socket.
func (s *Socket) IfConf() ([]socket.Ifreq, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	buf := make([]ifreqRaw, 64)
	var conf struct {
		n   int32
		_   int32
		buf unsafe.Pointer // a pointer the collector sees, not a uintptr
	}
	conf.n = int32(len(buf) * int(unsafe.Sizeof(buf[0])))
	conf.buf = unsafe.Pointer(&buf[0])
	err := s.ioctlPtr(socket.SIOCGIFCONF, unsafe.Pointer(&conf))
	if err != nil {
		return nil, err
	}
	var out []socket.Ifreq
	for _, r := range buf[:int(conf.n)/int(unsafe.Sizeof(buf[0]))] {
		out = append(out, socket.Ifreq{Name: cString(r.name[:]), Addr: netip.AddrFrom4([4]byte(r.u[4:8]))})
	}
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
