package socket

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// sendmsg(2) with a raw control buffer, read as Linux reads one
// (__sock_cmsg_send, ip_cmsg_send, ip6_datagram_send_ctl, udp_cmsg_send):
// 64-bit struct cmsghdr (8-byte cmsg_len, then level and type), each
// header at an 8-byte aligned offset. A buffer shorter than a header
// holds no message; a cmsg_len shorter than the header or running past
// the buffer is EINVAL; what is left after the last header that fits is
// ignored. Each protocol reads only its own levels and skips the others:
//
//   - UDP reads SOL_UDP first (UDP_SEGMENT; any other type EINVAL), over
//     the whole buffer, then the IP level.
//   - The IPv4 path (AF_INET, and AF_INET6 sending to a v4-mapped
//     address) reads SOL_SOCKET and SOL_IP (unknown type: EINVAL), and
//     from SOL_IPV6 only a v4-mapped IPV6_PKTINFO on an AF_INET6 socket.
//   - The IPv6 path reads SOL_SOCKET and SOL_IPV6 (unknown type: EINVAL)
//     and skips SOL_IP.
//   - TCP reads only SOL_SOCKET, and any error there is EINVAL.

// Typed control messages for SendMsg, each the value of the message of
// the same name (raw messages decode to these, one code path).
type (
	// IPTTL is IP_TTL: this datagram's TTL, 1..255, unicast or multicast.
	IPTTL int
	// IPTOS is IP_TOS: this datagram's TOS byte, 0..255.
	IPTOS int
	// IPRetOpts is IP_RETOPTS: this datagram's IPv4 options, replacing
	// IP_OPTIONS (empty: none); checked as IP_OPTIONS is.
	IPRetOpts []byte
	// IPv6HopLimit is IPV6_HOPLIMIT: -1 (the socket's) or 0..255.
	IPv6HopLimit int
	// IPv6TClass is IPV6_TCLASS: 0..255, or -1, which Linux sends as
	// 255 (not the socket's class).
	IPv6TClass int
	// IPv6DontFrag is IPV6_DONTFRAG: 0 or 1 for this datagram.
	IPv6DontFrag int
)

// ipv6FlowInfo is an IPV6_FLOWINFO message's flow label (raw only).
type ipv6FlowInfo uint32

// Control message names not defined elsewhere (linux/socket.h,
// asm-generic/socket.h, linux/in.h, linux/in6.h).
const (
	SCM_RIGHTS          = 1
	SCM_CREDENTIALS     = 2
	SO_MARK             = 36
	SO_TIMESTAMPING_OLD = 37
	SCM_TXTIME          = 61
	SO_TIMESTAMPING_NEW = 65
	SCM_TS_OPT_ID       = 81
	IP_PROTOCOL         = 52
	IPV6_2292PKTINFO    = 2
	IPV6_2292HOPOPTS    = 3
	IPV6_2292DSTOPTS    = 4
	IPV6_2292RTHDR      = 5
	IPV6_2292HOPLIMIT   = 8
	IPV6_NEXTHOP        = 9
	IPV6_HOPOPTS        = 54
	IPV6_RTHDRDSTOPTS   = 55
	IPV6_RTHDR          = 57
	IPV6_DSTOPTS        = 59
)

// cmsgHdrLen is sizeof(struct cmsghdr) on 64-bit Linux.
const cmsgHdrLen = 16

// maxControl is Linux's default net.core.optmem_max: a control buffer
// that long or longer is ENOBUFS (sock_kmalloc in ____sys_sendmsg wants
// the socket's option memory to stay below it).
const maxControl = 131072

// sofTxRecordMask is SOF_TIMESTAMPING_TX_RECORD_MASK: the flags an
// SO_TIMESTAMPING control message may carry (TX_HARDWARE, TX_SOFTWARE,
// TX_SCHED, TX_ACK, TX_COMPLETION).
const sofTxRecordMask = 1 | 2 | 1<<8 | 1<<9 | 1<<18

// ctlPath is which reader a control buffer meets.
type ctlPath int

const (
	path4   ctlPath = iota // ip_cmsg_send
	path6                  // ip6_datagram_send_ctl
	pathTCP                // sock_cmsg_send
)

// SendMsgControl is sendmsg(2) with the control buffer oob (see above).
// AF_UNIX sockets take SCM_RIGHTS and SCM_CREDENTIALS (unix_rights.go).
// Other sockets than these, inet datagram and TCP sockets take no
// control messages here: EOPNOTSUPP when oob holds one.
func (s *Socket) SendMsgControl(b, oob []byte, flags int, to Sockaddr) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	if len(oob) >= maxControl {
		ctlTooLong.Add(1)
		return 0, syscall.ENOBUFS
	}
	switch ep := s.ep.(type) {
	case *dgramEP:
		c, err := ep.ts.ctlReq(oob) // txstamp.go
		if err != nil {
			return 0, err
		}
		n, err := s.sendMsgDgram(ep, b, flags, to, oob, nil)
		if err == nil && c.rec != 0 {
			ep.txStamped(ep.ts.txReq(c.rec, c.key, c.hasKey), b, sendDst(ep, to))
		}
		return n, err
	case *tcpEP:
		if err := walkCmsgs(oob, func(level, typ int, data []byte) error {
			if level != SOL_SOCKET {
				return nil
			}
			if typ == SCM_TS_OPT_ID {
				return syscall.EINVAL // not on TCP (__sock_cmsg_send)
			}
			return sockCmsg(typ, data)
		}); err != nil {
			return 0, syscall.EINVAL // tcp_sendmsg_locked makes every error EINVAL
		}
		if rec, ok := tcpCtlStamp(oob); ok {
			return s.sendStamped(ep, rec, b, flags, to) // tcptxstamp.go
		}
		return s.SendTo(b, flags, to)
	case *unixEP:
		return s.sendUnixControl(ep, b, oob, flags, to)
	case *packetEP:
		return ep.sendControl(b, oob, to) // packet_txstamp.go
	}
	if len(oob) >= cmsgHdrLen {
		return 0, syscall.EOPNOTSUPP
	}
	return s.SendTo(b, flags, to)
}

// walkCmsgs calls fn for each message of oob in order, with the bytes
// cmsg_len covers after the header; EINVAL for a malformed header.
func walkCmsgs(oob []byte, fn func(level, typ int, data []byte) error) error {
	for off := 0; off+cmsgHdrLen <= len(oob); {
		l := binary.NativeEndian.Uint64(oob[off:])
		if l < cmsgHdrLen || l > uint64(len(oob)-off) {
			return syscall.EINVAL
		}
		level := int(int32(binary.NativeEndian.Uint32(oob[off+8:])))
		typ := int(int32(binary.NativeEndian.Uint32(oob[off+12:])))
		if err := fn(level, typ, oob[off+cmsgHdrLen:off+int(l)]); err != nil {
			return err
		}
		off += (int(l) + 7) &^ 7
	}
	return nil
}

// ctlTooLong counts control buffers refused for their length.
var ctlTooLong counter

// CtlTooLong is the number of sendmsg control buffers longer than the
// limit (ENOBUFS), process-wide.
func CtlTooLong() uint64 { return ctlTooLong.Load() }

// sockCmsg checks one SOL_SOCKET message as __sock_cmsg_send does.
// SO_MARK routes a datagram (mark.go), SO_TIMESTAMPING and SCM_TS_OPT_ID
// ask a datagram's transmit timestamps (txstamp.go); the others change
// nothing: no priorities reach a queue; see docs/DECISIONS.md.
func sockCmsg(typ int, data []byte) error {
	switch typ {
	case SO_MARK, SO_PRIORITY:
		// Linux: EPERM without CAP_NET_ADMIN / CAP_NET_RAW (or for a
		// priority above 6); sockstack runs inside its user's process,
		// which owns the stack, so the user holds that right.
		if len(data) != 4 {
			return syscall.EINVAL
		}
	case SO_TIMESTAMPING_OLD, SO_TIMESTAMPING_NEW:
		if len(data) != 4 {
			return syscall.EINVAL
		}
		// This send's record flags (txstamp.go and tcptxstamp.go read
		// them).
		if binary.NativeEndian.Uint32(data)&^sofTxRecordMask != 0 {
			return syscall.EINVAL
		}
	case SCM_TS_OPT_ID:
		// This send's OPT_ID key; txstamp.go refuses it on a socket
		// without OPT_ID, TCP always.
		if len(data) != 4 {
			return syscall.EINVAL
		}
	case SCM_TXTIME:
		// Needs SO_TXTIME, which sockstack does not have: EINVAL, as
		// Linux without it.
		return syscall.EINVAL
	case SCM_RIGHTS, SCM_CREDENTIALS:
		// AF_UNIX's; an inet socket passes over them.
	default:
		return syscall.EINVAL
	}
	return nil
}

// ctlState is one sendmsg's control messages read so far.
type ctlState struct {
	o     stack.SendOpts
	path  ctlPath
	oif   int  // the interface before the messages (flowi6_oif)
	seen6 bool // an IPV6_PKTINFO was read on the IPv6 path
}

// decodeCmsg reads one raw message for st's path, checking its length
// as Linux does, and applies it (applyCmsg); a level the path does not
// read is passed over unread. Values go to applyCmsg directly, not
// returned as interfaces, so that nothing is allocated per message.
func (d *dgramEP) decodeCmsg(st *ctlState, level, typ int, data []byte) error {
	intVal := func() (int, error) {
		if len(data) != 4 {
			return 0, syscall.EINVAL
		}
		return int(int32(binary.NativeEndian.Uint32(data))), nil
	}
	switch level {
	case SOL_UDP:
		return nil // read before (udpCtl)
	case IPPROTO_IPV6:
		if st.path == path4 {
			if !d.v6 || typ != IPV6_PKTINFO {
				return nil
			}
			if len(data) < 20 {
				return syscall.EINVAL
			}
			return d.applyCmsg(st, decodeIn6Pktinfo(data))
		}
		switch typ {
		case IPV6_PKTINFO, IPV6_2292PKTINFO:
			if len(data) < 20 {
				return syscall.EINVAL
			}
			return d.applyCmsg(st, decodeIn6Pktinfo(data))
		case IPV6_HOPLIMIT, IPV6_2292HOPLIMIT:
			v, err := intVal()
			if err != nil {
				return err
			}
			return d.applyCmsg(st, IPv6HopLimit(v))
		case IPV6_TCLASS:
			v, err := intVal()
			if err != nil {
				return err
			}
			return d.applyCmsg(st, IPv6TClass(v))
		case IPV6_DONTFRAG:
			v, err := intVal()
			if err != nil {
				return err
			}
			return d.applyCmsg(st, IPv6DontFrag(v))
		case IPV6_FLOWINFO:
			// Linux takes the label (no lease needed without
			// IPV6_FLOWINFO_SEND) and drops the class bits.
			if len(data) < 4 {
				return syscall.EINVAL
			}
			return d.applyCmsg(st, ipv6FlowInfo(binary.BigEndian.Uint32(data)&0xfffff))
		case IPV6_HOPOPTS, IPV6_2292HOPOPTS, IPV6_DSTOPTS, IPV6_2292DSTOPTS, IPV6_RTHDRDSTOPTS:
			// A whole header, (hdrlen+1)*8 bytes of the message's data
			// (more is ignored), as Linux's ip6_datagram_send_ctl. Any
			// of them makes this datagram's headers replace all of the
			// socket's (stack.SendOpts.Ext6).
			if len(data) < 2 || len(data) < (int(data[1])+1)*8 {
				return syscall.EINVAL
			}
			hdr := data[:(int(data[1])+1)*8]
			x := st.o.Ext6
			if x == nil {
				x = new(stack.SendExt6) // only sends with these messages
				st.o.Ext6 = x
			}
			switch typ {
			case IPV6_HOPOPTS, IPV6_2292HOPOPTS:
				if x.Hop != nil {
					return syscall.EINVAL // one Hop-by-Hop header only
				}
				x.Hop = hdr
			case IPV6_2292DSTOPTS:
				if x.Dst != nil {
					return syscall.EINVAL
				}
				x.Dst = hdr
			case IPV6_DSTOPTS:
				x.Dst = hdr
			default:
				x.RthdrDst = hdr
			}
			return nil
		}
		// IPV6_NEXTHOP is not a sendmsg message on Linux, and a routing
		// header (IPV6_RTHDR, IPV6_2292RTHDR) of any type is refused as
		// by a kernel without Mobile IPv6: EINVAL, as for unknown types.
		// A Segment Routing Header too: Linux's ip6_datagram_send_ctl
		// takes only type 2 (setsockopt takes type 4: inet6_ext.go).
		return syscall.EINVAL
	case SOL_IP:
		if st.path != path4 {
			return nil
		}
		switch typ {
		case IP_PKTINFO:
			if len(data) != 12 {
				return syscall.EINVAL
			}
			return d.applyCmsg(st, InPktinfo{
				Ifindex: int(int32(binary.NativeEndian.Uint32(data))),
				SpecDst: addr4(data[4:8]),
				Addr:    addr4(data[8:12]),
			})
		case IP_TTL:
			v, err := intVal()
			if err != nil {
				return err
			}
			return d.applyCmsg(st, IPTTL(v))
		case IP_TOS:
			// An int, or one byte (ip_cmsg_send takes both).
			if len(data) == 1 {
				return d.applyCmsg(st, IPTOS(data[0]))
			}
			v, err := intVal()
			if err != nil {
				return err
			}
			return d.applyCmsg(st, IPTOS(v))
		case IP_RETOPTS:
			if len(data) > 40 {
				data = data[:40] // ip_cmsg_send reads at most 40 bytes
			}
			return d.applyCmsg(st, IPRetOpts(data))
		case IP_PROTOCOL:
			v, err := intVal()
			if err == nil && (v < 1 || v > 255) {
				err = syscall.EINVAL
			}
			// Only the flow (routing) sees it on Linux: nothing here.
			return err
		}
		return syscall.EINVAL
	}
	return nil
}

func decodeIn6Pktinfo(data []byte) In6Pktinfo {
	return In6Pktinfo{Addr: addrFrom16(data[:16]), Ifindex: int(int32(binary.NativeEndian.Uint32(data[16:])))}
}

// udpCtl is udp_cmsg_send: the SOL_UDP messages of the whole buffer.
func (d *dgramEP) udpCtl(st *ctlState, oob []byte) error {
	return walkCmsgs(oob, func(level, typ int, data []byte) error {
		if level != SOL_UDP {
			return nil
		}
		if typ != UDP_SEGMENT || len(data) != 2 {
			return syscall.EINVAL
		}
		d.udpSegmentCmsg(&st.o, UDPSegment(binary.NativeEndian.Uint16(data)))
		return nil
	})
}

// applyCmsg applies one typed message to st, checking its value as
// Linux does; messages the path does not read are passed over.
func (d *dgramEP) applyCmsg(st *ctlState, c any) error {
	switch m := c.(type) {
	case In6Pktinfo:
		if st.path == path4 {
			if !d.v6 {
				return nil // AF_INET: ip_cmsg_send skips SOL_IPV6
			}
			// A v4-mapped source only (ip_cmsg_send with allow_ipv6).
			if !m.Addr.Is4In6() {
				return syscall.EINVAL
			}
			return d.pktinfo4(&st.o, m.Ifindex, m.Addr.Unmap())
		}
		st.seen6 = true
		return d.pktinfo6(&st.o, m, st.oif)
	case InPktinfo:
		if st.path != path4 {
			return nil
		}
		return d.pktinfo4(&st.o, m.Ifindex, m.SpecDst)
	case IPTTL:
		if st.path != path4 {
			return nil
		}
		if m < 1 || m > 255 {
			return syscall.EINVAL
		}
		st.o.TTLSet, st.o.TTL = true, int(m)
	case IPTOS:
		if st.path != path4 {
			return nil
		}
		if m < 0 || m > 255 {
			return syscall.EINVAL
		}
		st.o.TOSSet, st.o.TOS = true, int(m)
	case IPRetOpts:
		if st.path != path4 {
			return nil
		}
		o, err := d.ep.Stack().CompileIPOptions(m)
		if err != nil {
			return err
		}
		st.o.IPOptsSet, st.o.IPOpts = true, o
	case IPv6HopLimit:
		if st.path != path6 {
			return nil
		}
		if m < -1 || m > 255 {
			return syscall.EINVAL
		}
		st.o.TTLSet, st.o.TTL = true, int(m)
	case IPv6TClass:
		if st.path != path6 {
			return nil
		}
		if m < -1 || m > 255 {
			return syscall.EINVAL
		}
		// -1 goes out as class 255: Linux takes the value as it is
		// and writes its low byte (unlike IPV6_HOPLIMIT -1, which is
		// the socket's hop limit).
		st.o.TOSSet, st.o.TOS = true, int(m)&0xff
	case IPv6DontFrag:
		if st.path != path6 {
			return nil
		}
		if m < 0 || m > 1 {
			return syscall.EINVAL
		}
		st.o.DontFragSet, st.o.DontFrag = true, m == 1
	case ipv6FlowInfo:
		if st.path == path6 {
			st.o.Flow = uint32(m)
		}
	case UDPSegment:
		d.udpSegmentCmsg(&st.o, m) // udp_gso.go
	default:
		return syscall.EINVAL
	}
	return nil
}

// counter is a process-wide event count.
type counter = atomic.Uint64

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }

// addrFrom16 is an in6_addr, unmapped never (a v4-mapped source stays
// one, for the checks that look for it).
func addrFrom16(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b)) }

// sendDst is the destination a datagram sendmsg named (invalid: the
// connected peer), for its transmit timestamps.
func sendDst(d *dgramEP, to Sockaddr) netip.AddrPort {
	if to == nil {
		return netip.AddrPort{}
	}
	ap, err := d.addr(to, !d.raw, false)
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}
