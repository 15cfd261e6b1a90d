package hostsock

import (
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// AF_INET6 on the kernel, beyond what hostsock.go and sockopt.go do
// (scope ids as zones, IPV6_JOIN_GROUP, ICMP6_FILTER): the flow
// information field of sockaddr_in6 and the IPv6 ancillary data.

// Options of package socket's set plus the ancillary ones only the kernel
// side reports (Linux's values).
const (
	IPV6_FLOWINFO_SEND = 33 // not in x/sys/unix; <linux/in6.h>
	IPV6_RECVPKTINFO   = unix.IPV6_RECVPKTINFO
	IPV6_PKTINFO       = unix.IPV6_PKTINFO
	IPV6_RECVHOPLIMIT  = unix.IPV6_RECVHOPLIMIT
	IPV6_HOPLIMIT      = unix.IPV6_HOPLIMIT
	IPV6_RECVTCLASS    = unix.IPV6_RECVTCLASS
)

// SockaddrInet6 is a sockaddr_in6 with its flow information (host byte
// order: traffic class and flow label as in the IPv6 header's first
// word, less the version). The kernel reports a non-zero flowinfo only
// to sockets with IPV6_FLOWINFO_SEND or IPV6_FLOWINFO; every other AF_INET6
// address comes back as *socket.SockaddrInet, the type package socket uses.
type SockaddrInet6 struct {
	AddrPort netip.AddrPort
	FlowInfo uint32
}

func (a *SockaddrInet6) Family() int { return unix.AF_INET6 }
func (a *SockaddrInet6) String() string {
	return a.AddrPort.String() + " flowinfo 0x" + strconv.FormatUint(uint64(a.FlowInfo), 16)
}

func htonl(v uint32) uint32 { return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24 }

// putInet6 writes a sockaddr_in6 with flow information. An IPv4 address
// is written v4-mapped: an AF_INET6 socket reaches IPv4 peers that way.
func (r *rawAddr) putInet6(ap netip.AddrPort, flow uint32) error {
	ad := ap.Addr()
	if !ad.IsValid() {
		return syscall.EINVAL
	}
	var id uint32
	if z := ad.Zone(); z != "" {
		var err error
		if id, err = scopeID(z); err != nil { // hostsock.go
			return err
		}
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf[0]))
	sa.Family = unix.AF_INET6
	sa.Port = htons(ap.Port())
	sa.Flowinfo = htonl(flow)
	sa.Addr = ad.As16()
	sa.Scope_id = id
	r.len = unix.SizeofSockaddrInet6
	return nil
}

// Ancillary6 is what IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT and
// IPV6_RECVTCLASS report with a datagram; fields not asked for are
// zero (Dst), or -1 (HopLimit, TClass).
type Ancillary6 struct {
	Dst      netip.Addr // the datagram's destination (ipi6_addr)
	Ifindex  int        // the interface it came in on (ipi6_ifindex)
	HopLimit int
	TClass   int
}

// RecvMsg6 is RecvMsg that also returns the IPv6 ancillary data the
// socket asked for with the IPV6_RECV* options.
func (s *Socket) RecvMsg6(b []byte, flags int) (n, rflags int, from socket.Sockaddr, anc Ancillary6, err error) {
	anc = Ancillary6{HopLimit: -1, TClass: -1}
	if err := s.enter(); err != nil {
		return 0, 0, nil, anc, err
	}
	defer s.leave()
	kflags := (flags &^ (socket.MSG_DONTWAIT | socket.MSG_WAITALL)) | unix.MSG_DONTWAIT
	var oob [256]byte
	var oobn int
	err = s.blocking(flags, false, unix.POLLIN, func() (e error) {
		n, oobn, rflags, from, e = s.recvmsg(b, oob[:], kflags)
		return e
	})
	if err != nil {
		return 0, 0, nil, anc, err
	}
	cms, perr := unix.ParseSocketControlMessage(oob[:oobn])
	if perr != nil {
		return n, rflags & unix.MSG_TRUNC, from, anc, nil
	}
	for _, cm := range cms {
		if cm.Header.Level != unix.IPPROTO_IPV6 {
			continue
		}
		switch cm.Header.Type {
		case unix.IPV6_PKTINFO:
			if len(cm.Data) >= unix.SizeofInet6Pktinfo {
				pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&cm.Data[0]))
				anc.Dst = netip.AddrFrom16(pi.Addr)
				anc.Ifindex = int(pi.Ifindex)
			}
		case unix.IPV6_HOPLIMIT:
			if len(cm.Data) >= 4 {
				anc.HopLimit = int(*(*int32)(unsafe.Pointer(&cm.Data[0])))
			}
		case unix.IPV6_TCLASS:
			if len(cm.Data) >= 4 {
				anc.TClass = int(*(*int32)(unsafe.Pointer(&cm.Data[0])))
			}
		}
	}
	return n, rflags & unix.MSG_TRUNC, from, anc, nil
}
