package socket

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// The receive-side IP options of Linux (ip_sockglue.c, ipv6_sockglue.c)
// and recvmsg(2) with a control buffer (RecvMsgControl), laid out as
// Linux lays out msg_control on a 64-bit host:
//
//   - IP_RECVTTL: an IP_TTL message (int), the datagram's TTL;
//   - IP_RECVTOS: an IP_TOS message (one byte), its TOS;
//   - IP_RECVOPTS: an IP_RECVOPTS message with its options as this host's
//     receive path left them (Record Route and Timestamp filled in), none
//     when it had none;
//   - IP_RETOPTS: an IP_RETOPTS message with the options a reply would
//     carry (Linux's __ip_options_echo then ip_options_undo: Record Route
//     and Timestamp with the reply's slots left empty; MSG_CTRUNC instead
//     when a slot does not fit);
//   - IPV6_FLOWINFO (IPV6_RECVFLOWINFO): an IPV6_FLOWINFO message, the
//     IPv6 header's first word less the version (traffic class and flow
//     label, network byte order), when it is not zero.
//
// They take effect on UDP, ping and raw sockets (IPv4 datagrams of an
// AF_INET6 socket get the IP-level ones), on normal reads and on reads
// of the error queue (where they describe the ICMP packet). TCP sockets
// take and report them and give no control messages, as Linux's
// recvmsg for TCP gives none of these (Linux reports some through
// getsockopt(IP_PKTOPTIONS), which sockstack does not have). IP_OPTIONS
// sets the options of the datagrams or segments a socket sends
// (stack/ipopts_send.go, tcp/ipopts.go).

// Option numbers (Linux's).
const (
	IP_RECVOPTS    = 6
	IP_RETOPTS     = 7
	IP_RECVRETOPTS = IP_RETOPTS
	IP_RECVTTL     = 12
	IP_RECVTOS     = 13

	// IPV6_FLOWINFO is both the option that asks for the flow
	// information of received datagrams and that control message's
	// type; Linux has no separate IPV6_RECVFLOWINFO name.
	IPV6_FLOWINFO      = 11
	IPV6_RECVFLOWINFO  = IPV6_FLOWINFO
	IPV6_FLOWINFO_SEND = 33

	// IPV6_RECVHOPOPTS and IPV6_RECVDSTOPTS ask for a received IPv6
	// datagram's Hop-by-Hop header (an IPV6_HOPOPTS message) and each of
	// its Destination Options headers (IPV6_DSTOPTS messages), whole.
	IPV6_RECVHOPOPTS = 53
	IPV6_RECVDSTOPTS = 58

	// MSG_CTRUNC: a control message did not fit msg_control.
	MSG_CTRUNC = 0x8
)

// recvInfo bits of these options (inet6_pktinfo.go and transparent.go
// use 1 to 64).
const (
	ttl4Bit     = 128
	tos4Bit     = 256
	recvOptsBit = 512
	retOptsBit  = 1024
	flowBit     = 2048 // IPV6_FLOWINFO
	sndFlowBit  = 4096 // IPV6_FLOWINFO_SEND
	hopOptsBit  = 8192 // IPV6_RECVHOPOPTS
	dstOptsBit  = 16384
)

func recvOptBit(level, name int) uint32 {
	switch {
	case level == SOL_IP && name == IP_RECVTTL:
		return ttl4Bit
	case level == SOL_IP && name == IP_RECVTOS:
		return tos4Bit
	case level == SOL_IP && name == IP_RECVOPTS:
		return recvOptsBit
	case level == SOL_IP && name == IP_RETOPTS:
		return retOptsBit
	case level == IPPROTO_IPV6 && name == IPV6_FLOWINFO:
		return flowBit
	case level == IPPROTO_IPV6 && name == IPV6_FLOWINFO_SEND:
		return sndFlowBit
	case level == IPPROTO_IPV6 && name == IPV6_RECVHOPOPTS:
		return hopOptsBit
	case level == IPPROTO_IPV6 && name == IPV6_RECVDSTOPTS:
		return dstOptsBit
	}
	return ext6RecvBit(level, name) // inet6_ext_recv.go
}

// recvOptTarget is the socket's recvInfo and family for these options,
// nil for sockets without them.
func (s *Socket) recvOptTarget() (bits *atomic.Uint32, v6, raw bool) {
	switch x := s.ep.(type) {
	case *dgramEP:
		return &x.recvInfo, x.v6, x.raw
	case *tcpEP:
		return &x.recvInfo, x.v6, false
	}
	return nil, false, false
}

// IP_OPTIONS (Linux's number): the IPv4 options every datagram or
// segment of the socket carries; set from the raw bytes (a string or
// []byte), read back as a string. On TCP they go on every segment of the
// connection and take their room from its MSS (tcp/ipopts.go); an
// AF_INET6 TCP socket keeps them for a v4-mapped peer, as Linux does. A
// listener's children do not inherit them: a child echoes the options
// of the SYN that opened it (stack/tcphost.go).
const IP_OPTIONS = 4

// ipOptionsTarget is the socket IP_OPTIONS applies to: its stack and
// how to set and read the compiled value. ok false: not an inet socket
// (the caller goes on); err: an inet socket that refuses them.
func (s *Socket) ipOptionsTarget() (st *stack.Stack, set func(*stack.SendIPOpts), get func() *stack.SendIPOpts, ok bool, err error) {
	switch x := s.ep.(type) {
	case *dgramEP:
		if x.v6 && x.raw {
			return nil, nil, nil, true, syscall.ENOPROTOOPT
		}
		return x.ep.Stack(), x.ep.SetIPOptions, x.ep.IPOptions, true, nil
	case *tcpEP:
		set = func(o *stack.SendIPOpts) {
			if o == nil {
				x.ep.SetIPOptions(nil) // an untyped nil: none
				return
			}
			x.ep.SetIPOptions(o)
		}
		get = func() *stack.SendIPOpts {
			o, _ := x.ep.IPOptions().(*stack.SendIPOpts)
			return o
		}
		return x.net.st, set, get, true, nil
	}
	return nil, nil, nil, false, nil
}

// setIPOptions is setsockopt(IP_OPTIONS); handled false for others.
func (s *Socket) setIPOptions(level, name int, v any) (handled bool, err error) {
	if level != SOL_IP || name != IP_OPTIONS {
		return false, nil
	}
	st, set, _, ok, err := s.ipOptionsTarget()
	if !ok || err != nil {
		return ok, err
	}
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case int:
		b = binary.NativeEndian.AppendUint32(nil, uint32(x))
	default:
		return true, syscall.EINVAL
	}
	o, err := st.CompileIPOptions(b)
	if err != nil {
		return true, err
	}
	set(o)
	return true, nil
}

// getIPOptions is getsockopt(IP_OPTIONS): the options as set, what
// sending fills in left empty (Linux's ip_options_undo).
func (s *Socket) getIPOptions(level, name int) (handled bool, v any, err error) {
	if level != SOL_IP || name != IP_OPTIONS {
		return false, nil, nil
	}
	_, _, get, ok, err := s.ipOptionsTarget()
	if !ok || err != nil {
		return ok, nil, err
	}
	return true, string(get().Value()), nil
}

// setRecvOpt is setsockopt for the options above; handled false for
// others. The IP level reads an int from 4 bytes or more, a byte from
// fewer and takes none as 0 (do_ip_setsockopt); the IPv6 level wants a
// whole int (EINVAL). An AF_INET6 raw socket takes no SOL_IP option and
// an AF_INET socket no IPPROTO_IPV6 one (ENOPROTOOPT).
func (s *Socket) setRecvOpt(level, name int, v any) (handled bool, err error) {
	if ok, err := s.setIPOptions(level, name, v); ok {
		return true, err
	}
	bit := recvOptBit(level, name)
	if bit == 0 {
		return false, nil
	}
	bits, v6, raw := s.recvOptTarget()
	if bits == nil {
		return false, nil
	}
	if level == IPPROTO_IPV6 && !v6 || level == SOL_IP && v6 && raw {
		return true, syscall.ENOPROTOOPT
	}
	i, err := sockoptIntLen(v, level == SOL_IP)
	if err != nil {
		return true, err
	}
	setBit(bits, bit, i != 0)
	return true, nil
}

// getRecvOpt is getsockopt for the options above: 0 or 1. The IPv6
// level on an AF_INET socket is EOPNOTSUPP (ip_getsockopt answers a level
// it does not know); SOL_IP on an AF_INET6 raw socket ENOPROTOOPT.
func (s *Socket) getRecvOpt(level, name int) (handled bool, v any, err error) {
	if ok, v, err := s.getIPOptions(level, name); ok {
		return true, v, err
	}
	bit := recvOptBit(level, name)
	if bit == 0 {
		return false, nil, nil
	}
	bits, v6, raw := s.recvOptTarget()
	if bits == nil {
		return false, nil, nil
	}
	if level == IPPROTO_IPV6 && !v6 {
		return true, nil, syscall.EOPNOTSUPP
	}
	if level == SOL_IP && v6 && raw {
		return true, nil, syscall.ENOPROTOOPT
	}
	return true, b2i(bits.Load()&bit != 0), nil
}

// sockoptIntLen reads an option value as Linux reads optval: a string
// is the raw bytes (an int from 4 or more; with short, a byte from 1 to
// 3 and 0 from none, else EINVAL); other values as intOpt.
func sockoptIntLen(v any, short bool) (int, error) {
	switch x := v.(type) {
	case string:
		switch {
		case len(x) >= 4:
			return int(int32(binary.NativeEndian.Uint32([]byte(x[:4])))), nil
		case !short:
			return 0, syscall.EINVAL
		case len(x) >= 1:
			return int(x[0]), nil
		}
		return 0, nil
	case uint8:
		if !short {
			return 0, syscall.EINVAL
		}
		return int(x), nil
	}
	return intOpt(v)
}

// cmsgWriter fills a recvmsg control buffer as Linux's put_cmsg does: a
// message that does not fit whole is cut to the room left (its cmsg_len
// saying so) and sets MSG_CTRUNC; with less room than a header, nothing.
type cmsgWriter struct {
	b     []byte
	n     int
	trunc bool
}

func (w *cmsgWriter) put(level, typ int, data []byte) {
	const hdr = 16
	room := len(w.b) - w.n
	if room < hdr {
		w.trunc = true
		return
	}
	clen := hdr + len(data)
	if clen > room {
		w.trunc = true
		clen = room
	}
	d := w.b[w.n:]
	ne := binary.NativeEndian
	ne.PutUint64(d[0:], uint64(clen))
	ne.PutUint32(d[8:], uint32(level))
	ne.PutUint32(d[12:], uint32(typ))
	copy(d[hdr:clen], data)
	space := min((hdr+len(data)+7)&^7, room)
	clear(d[clen:space])
	w.n += space
}

func (w *cmsgWriter) putInt(level, typ int, v int32) {
	var d [4]byte
	binary.NativeEndian.PutUint32(d[:], uint32(v))
	w.put(level, typ, d[:])
}

// putAll writes control messages already laid out (as SockExtendedErr.Cmsg gives them).
func (w *cmsgWriter) putAll(b []byte) {
	ne := binary.NativeEndian
	for len(b) >= 16 {
		clen := int(ne.Uint64(b))
		if clen < 16 || clen > len(b) {
			return
		}
		w.put(int(ne.Uint32(b[8:])), int(ne.Uint32(b[12:])), b[16:clen])
		b = b[min((clen+7)&^7, len(b)):]
	}
}

// rxMeta is what the IP-level control messages describe: a received
// datagram, or the ICMP packet that brought an error.
type rxMeta struct {
	dst      netip.Addr
	ifindex  int
	specDst  netip.Addr // IP_PKTINFO's ipi_spec_dst
	ttl, tos uint8
	flow     uint32 // IPv6 flow label
	opts     *stack.RecvIPOpts
	ext6     *stack.RecvExt6 // IPV6_HOPOPTS, IPV6_DSTOPTS
	port     uint16          // IP_ORIGDSTADDR's port
	portOK   bool
}

// ipCmsgRecv writes what Linux's ip_cmsg_recv gives, in its order:
// IP_PKTINFO, IP_TTL, IP_TOS, IP_RECVOPTS, IP_RETOPTS, IP_ORIGDSTADDR.
func ipCmsgRecv(w *cmsgWriter, st *stack.Stack, bits uint32, m *rxMeta) {
	if bits&ipPktinfoBit != 0 {
		var d [12]byte
		binary.NativeEndian.PutUint32(d[:], uint32(m.ifindex))
		if m.specDst.Is4() {
			a := m.specDst.As4()
			copy(d[4:], a[:])
		}
		a := m.dst.Unmap().As4()
		copy(d[8:], a[:])
		w.put(SOL_IP, IP_PKTINFO, d[:])
	}
	if bits&ttl4Bit != 0 {
		w.putInt(SOL_IP, IP_TTL, int32(m.ttl))
	}
	if bits&tos4Bit != 0 {
		w.put(SOL_IP, IP_TOS, []byte{m.tos})
	}
	if bits&recvOptsBit != 0 && m.opts != nil && m.opts.Len != 0 {
		w.put(SOL_IP, IP_RECVOPTS, m.opts.Bytes())
	}
	if bits&retOptsBit != 0 && m.opts != nil && m.opts.Len != 0 {
		var out [wire.IPv4MaxOptionsLen]byte
		if n, ok := st.RetOpts(m.opts, &out); ok {
			w.put(SOL_IP, IP_RETOPTS, out[:n])
		} else {
			w.trunc = true
		}
	}
	if bits&origDst4Bit != 0 && m.portOK {
		var d [16]byte
		putSockaddr(d[:], netip.AddrPortFrom(m.dst, m.port), false)
		w.put(SOL_IP, IP_ORIGDSTADDR, d[:])
	}
}

// ip6CmsgRecv writes what Linux's ip6_datagram_recv_specific_ctl gives
// for an IPv6 packet, in its order: IPV6_HOPLIMIT, IPV6_TCLASS,
// IPV6_FLOWINFO (when not zero), IPV6_HOPOPTS, one IPV6_DSTOPTS per
// Destination Options header in chain order, IPV6_ORIGDSTADDR.
func ip6CmsgRecv(w *cmsgWriter, bits uint32, m *rxMeta) {
	if bits&2 != 0 {
		w.putInt(IPPROTO_IPV6, IPV6_HOPLIMIT, int32(m.ttl))
	}
	if bits&4 != 0 {
		w.putInt(IPPROTO_IPV6, IPV6_TCLASS, int32(m.tos))
	}
	if fi := uint32(m.tos)<<20 | m.flow&0xfffff; bits&flowBit != 0 && fi != 0 {
		var d [4]byte
		binary.BigEndian.PutUint32(d[:], fi)
		w.put(IPPROTO_IPV6, IPV6_FLOWINFO, d[:])
	}
	putExt6Cmsgs(w, bits, m) // IPV6_HOPOPTS to the RFC 2292 ones (inet6_ext_recv.go)
	if bits&origDst6Bit != 0 && m.portOK {
		var d [28]byte
		putSockaddr(d[:], netip.AddrPortFrom(m.dst, m.port), true)
		if m.dst.IsLinkLocalUnicast() {
			binary.NativeEndian.PutUint32(d[24:], uint32(m.ifindex))
		}
		w.put(IPPROTO_IPV6, IPV6_ORIGDSTADDR, d[:])
	}
}

// ctlRecv writes a datagram socket's control messages for m: v4 says m
// is an IPv4 packet. An AF_INET6 socket gives IPV6_PKTINFO first (with
// IPV6_RECVPKTINFO), then the IPv6 messages for IPv6, the IPv4 ones
// for IPv4 (udpv6_recvmsg, ipv6_recv_error); an AF_INET socket the IPv4
// ones (ip_cmsg_recv).
func ctlRecv(w *cmsgWriter, st *stack.Stack, v6sock bool, bits uint32, m *rxMeta, v4 bool) {
	if !v6sock {
		ipCmsgRecv(w, st, bits, m)
		return
	}
	if bits&1 != 0 {
		var d [20]byte
		a := mapped(m.dst).As16()
		copy(d[:], a[:])
		binary.NativeEndian.PutUint32(d[16:], uint32(m.ifindex))
		w.put(IPPROTO_IPV6, IPV6_PKTINFO, d[:])
	}
	if v4 {
		ipCmsgRecv(w, st, bits, m)
		return
	}
	ip6CmsgRecv(w, bits, m)
}

// RecvMsgControl is recvmsg(2) with a control buffer: the datagram into
// p, the control messages the socket's options ask for into oob in
// Linux's layout and order (oobn bytes; MSG_CTRUNC in rflags when they
// did not fit), as the kernel gives them to a 64-bit process. With
// MSG_ERRQUEUE it reads the error queue (RecvErr) and oob gets the
// timestamps asked for (when the error was queued), the IP messages
// describing the ICMP packet and IP_RECVERR / IPV6_RECVERR. A
// UDP socket with UDP_GRO gives UDP_GRO first for a coalesced read. A
// TCP socket gives no control message. UDP, raw, ping and packet
// sockets give the receive timestamps SO_TIMESTAMP, SO_TIMESTAMPNS and
// SO_TIMESTAMPING ask for first, with the datagram's arrival time
// (rxstamp.go); a packet or CAN socket gives nothing else. AF_UNIX sockets give
// SCM_CREDENTIALS and SCM_RIGHTS (unix_rights.go). Other sockets:
// EOPNOTSUPP.
func (s *Socket) RecvMsgControl(p, oob []byte, flags int) (n, oobn, rflags int, from Sockaddr, err error) {
	if s.closed.Load() {
		return 0, 0, 0, nil, syscall.EBADF
	}
	// Linux hands MSG_CMSG_CLOEXEC back in msg_flags on every socket
	// (___sys_recvmsg); it means nothing to an inet one.
	defer func() {
		if err == nil {
			rflags |= flags & MSG_CMSG_CLOEXEC
		}
	}()
	w := cmsgWriter{b: oob}
	if flags&MSG_ERRQUEUE != 0 {
		switch s.ep.(type) {
		case *tcpEP, *dgramEP:
			var ee SockExtendedErr
			var at int64
			if n, rflags, from, ee, err = s.recvErr(p, flags, &at); err != nil {
				return 0, 0, 0, nil, err
			}
			if d, ok := s.ep.(*dgramEP); ok {
				// ip_recv_error gives the timestamps first too.
				d.ts.putErr(&w, at, d.ep.Stack().Clock())
			} else if t, ok := s.ep.(*tcpEP); ok && at != 0 {
				// A TCP transmit timestamp report (tcptxstamp.go).
				t.tcpStampOpts(true).ts.putErr(&w, at, t.net.st.Clock())
			}
			w.putAll(ee.Cmsg())
			if w.trunc {
				rflags |= MSG_CTRUNC
			}
			return n, w.n, rflags, from, nil
		case *packetEP:
			n, rflags, err = s.ep.(*packetEP).recvErrControl(p, &w) // packet_txstamp.go
			if err != nil {
				return 0, 0, 0, nil, err
			}
			return n, w.n, rflags, nil, nil
		}
	}
	switch d := s.ep.(type) {
	case *unixEP:
		return s.recvUnixControl(d, p, oob, flags) // unix_rights.go
	case *tcpEP:
		return s.recvTCPControl(d, p, oob, flags) // TCP_INQ (tcpopts.go)
	case *packetEP:
		if n, rflags, from, err = s.recvPacketControl(d, p, &w, flags); err != nil { // rxstamp.go
			return 0, 0, 0, nil, err
		}
	case *canRawEP:
		if n, rflags, from, err = s.recvCANControl(d, p, &w, flags); err != nil { // can.go
			return 0, 0, 0, nil, err
		}
	case *bcmEP:
		if n, rflags, from, err = s.recvBCMControl(d, p, &w, flags); err != nil { // can_bcm.go
			return 0, 0, 0, nil, err
		}
	case *isotpEP:
		if n, rflags, from, err = s.recvISOTPControl(d, p, &w, flags); err != nil { // can_isotp.go
			return 0, 0, 0, nil, err
		}
	case *dgramEP:
		var info stack.PacketInfo
		var at int64
		if n, rflags, from, info, err = s.recvDgramInfo(d, p, flags, &at); err != nil {
			return 0, 0, 0, nil, err
		}
		// Timestamps come first: sock_recv_cmsgs (ping: sock_recv_timestamp)
		// runs before UDP_GRO and the IP messages.
		d.ts.put(&w, at, d.ep.Stack().Clock())
		if info.GSOSize > 0 && d.ep.Kind() == stack.KindUDP && d.ep.UDPGRO() {
			w.putInt(SOL_UDP, UDP_GRO, int32(info.GSOSize))
		}
		st := d.ep.Stack()
		defer stack.PutRecvExt6(info.Ext6)
		m := rxMeta{dst: info.Dst, ttl: info.HopLimit, tos: info.TClass, flow: info.Flow, opts: &info.Opts, ext6: info.Ext6}
		v4 := m.dst.Is4() || m.dst.Is4In6()
		m.ifindex, m.specDst = st.IfIndexOf(info.Dst), info.Dst
		if m.ifindex == 0 {
			// A broadcast or a group: the NIC it came in on and (IPv4)
			// the address a reply to its sender uses, as Linux's
			// fib_compute_spec_dst routes back to the source; a group
			// needs no route of its own.
			var src netip.Addr
			if f, ok := from.(*SockaddrInet); ok {
				src = f.AddrPort.Addr()
			}
			if z := src.Zone(); z != "" {
				if n := st.NICByName(z); n != nil {
					m.ifindex = n.ID() // a link-local sender: its link
				}
			}
			for _, a := range [2]netip.Addr{src.WithZone("").Unmap(), info.Dst.Unmap()} {
				if m.ifindex != 0 {
					break
				}
				if !a.IsValid() {
					continue
				}
				if r, err := st.FindRoute(a); err == nil && r.NIC != nil {
					m.ifindex = r.NIC.ID()
					if v4 {
						m.specDst = r.Src
					}
				}
			}
		}
		if info.IfIndex != 0 {
			m.ifindex = info.IfIndex // the NIC it came in on, as Linux's skb->dev
		}
		if d.ep.Kind() == stack.KindUDP && info.Dst.IsValid() || info.DstPortOK {
			m.port, m.portOK = info.DstPort, true
		}
		ctlRecv(&w, st, d.v6, d.recvInfo.Load(), &m, v4)
	default:
		return 0, 0, 0, nil, syscall.EOPNOTSUPP
	}
	if w.trunc {
		rflags |= MSG_CTRUNC
	}
	return n, w.n, rflags, from, nil
}
