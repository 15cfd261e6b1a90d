package main

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// routeSource asks the kernel's routing (RTM_GETROUTE, what `ip route
// get` asks) for the source address a socket of the relay would send
// from to dst: with the loop guard's mark (RTA_MARK) and device
// (RTA_OIF), as an upstream socket's connect looks its route up. One
// netlink socket serves every lookup, a request and its answer at a
// time; before, each TCP connect opened, connected and closed a UDP
// socket to learn the same address.
type routeSource struct {
	mark   uint32
	device string

	mu  sync.Mutex
	fd  int // -1: not open (opened at the first lookup)
	oif int // device's index, 0 when none
	seq uint32
	buf []byte
	req []byte
}

func newRouteSource(o relayOpts) *routeSource {
	return &routeSource{mark: o.mark, device: o.bindDevice, fd: -1}
}

// source is the address the kernel picks for dst (ok false: no route,
// or the lookup failed).
func (rs *routeSource) source(dst netip.Addr) (netip.Addr, bool) {
	dst = dst.Unmap()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.fd < 0 {
		if err := rs.open(); err != nil {
			return netip.Addr{}, false
		}
	}
	src, err := rs.lookup(dst)
	return src, err == nil
}

func (rs *routeSource) open() error {
	if rs.device != "" {
		ifi, err := net.InterfaceByName(rs.device)
		if err != nil {
			return err
		}
		rs.oif = ifi.Index
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return err
	}
	rs.fd = fd
	rs.buf = make([]byte, 4096)
	rs.req = make([]byte, 0, 128)
	return nil
}

// close releases the netlink socket.
func (rs *routeSource) close() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.fd >= 0 {
		unix.Close(rs.fd)
		rs.fd = -1
	}
}

// lookup sends one RTM_GETROUTE for dst and reads its answer (rs.mu held).
func (rs *routeSource) lookup(dst netip.Addr) (netip.Addr, error) {
	rs.seq++
	fam, bits := unix.AF_INET, 32
	if dst.Is6() {
		fam, bits = unix.AF_INET6, 128
	}
	b := rs.req[:unix.NLMSG_HDRLEN+unix.SizeofRtMsg]
	clear(b)
	ne := binary.NativeEndian
	ne.PutUint16(b[4:6], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:8], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:12], rs.seq)
	b[unix.NLMSG_HDRLEN] = byte(fam)    // rtm_family
	b[unix.NLMSG_HDRLEN+1] = byte(bits) // rtm_dst_len
	a16, a4 := dst.As16(), [4]byte{}
	if dst.Is4() {
		a4 = dst.As4()
		b = appendAttr(b, unix.RTA_DST, a4[:])
	} else {
		b = appendAttr(b, unix.RTA_DST, a16[:])
	}
	var v [4]byte
	if rs.mark != 0 {
		ne.PutUint32(v[:], rs.mark)
		b = appendAttr(b, unix.RTA_MARK, v[:])
	}
	if rs.oif != 0 {
		ne.PutUint32(v[:], uint32(rs.oif))
		b = appendAttr(b, unix.RTA_OIF, v[:])
	}
	ne.PutUint32(b[0:4], uint32(len(b)))
	rs.req = b[:0]
	if err := unix.Sendto(rs.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return netip.Addr{}, err
	}
	for {
		n, _, err := unix.Recvfrom(rs.fd, rs.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return netip.Addr{}, err
		}
		// The answer's messages, walked in place (no allocation).
		for m := rs.buf[:n]; len(m) >= unix.NLMSG_HDRLEN; {
			l := int(ne.Uint32(m[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(m) {
				break
			}
			typ, seq, data := ne.Uint16(m[4:6]), ne.Uint32(m[8:12]), m[unix.NLMSG_HDRLEN:l]
			m = m[min(nlmAlign(l), len(m)):]
			if seq != rs.seq {
				continue // an earlier request's late answer
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if len(data) >= 4 {
					if e := int32(ne.Uint32(data[:4])); e != 0 {
						return netip.Addr{}, syscall.Errno(-e)
					}
				}
				return netip.Addr{}, syscall.EINVAL
			case unix.RTM_NEWROUTE:
				if len(data) < unix.SizeofRtMsg {
					return netip.Addr{}, syscall.EINVAL
				}
				for a := data[unix.SizeofRtMsg:]; len(a) >= unix.SizeofRtAttr; {
					al := int(ne.Uint16(a[0:2]))
					if al < unix.SizeofRtAttr || al > len(a) {
						break
					}
					if ne.Uint16(a[2:4]) == unix.RTA_PREFSRC {
						if src, ok := netip.AddrFromSlice(a[unix.SizeofRtAttr:al]); ok {
							return src.Unmap(), nil
						}
					}
					a = a[min(nlmAlign(al), len(a)):]
				}
				return netip.Addr{}, syscall.EADDRNOTAVAIL
			}
		}
	}
}

// nlmAlign rounds a netlink length up to its 4-byte alignment.
func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// appendAttr appends a route attribute (struct rtattr, 4-byte aligned).
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	l := unix.SizeofRtAttr + len(v)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}
