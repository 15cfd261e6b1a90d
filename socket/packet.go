package socket

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// AF_PACKET sockets: a copy of every frame of a NIC, and injection.
//
// socket(AF_PACKET, SOCK_RAW|SOCK_DGRAM, proto): proto is the ethertype
// in network byte order, as Linux takes it (Htons(ETH_P_ALL)). For the
// well-known ethertypes (ETH_P_ALL, IPv4, ARP, IPv6, VLAN, LLDP, RARP)
// host order is accepted too, so both 0x0003 and 0x0300 mean ETH_P_ALL
// and both 0x0800 and 0x0008 mean ETH_P_IP; any other value is read in
// network byte order. Proto 0 receives nothing until a bind names a
// protocol.
//
// SockaddrPacket.Protocol is always the ethertype in host order (the
// natural Go value), and Ifindex is the stack's NIC ID, numbered from 1
// (loopback) as Linux numbers interfaces; binding to Ifindex 0 means
// every interface, the default.
//
// SOCK_RAW reads and writes whole frames; SOCK_DGRAM reads the payload
// after the link header, and sends with SockaddrPacket{Ifindex, Protocol,
// HWAddr: destination MAC}, the stack adding the Ethernet header.
// Frames the host sends are seen only by ETH_P_ALL sockets (PktType
// PACKET_OUTGOING), as in Linux.
//
// Promiscuous mode: SetSockOpt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
// PacketMreq{Ifindex, Type: PACKET_MR_PROMISC}); it ends with
// PACKET_DROP_MEMBERSHIP or when the socket closes.

// Packet socket constants (Linux values).
const (
	ETH_P_ALL  = 0x0003
	ETH_P_IP   = 0x0800
	ETH_P_ARP  = 0x0806
	ETH_P_IPV6 = 0x86DD

	SOL_PACKET             = 263
	PACKET_ADD_MEMBERSHIP  = 1
	PACKET_DROP_MEMBERSHIP = 2
	PACKET_STATISTICS      = 6

	PACKET_MR_MULTICAST = 0
	PACKET_MR_PROMISC   = 1
	PACKET_MR_ALLMULTI  = 2

	PACKET_HOST      = 0
	PACKET_BROADCAST = 1
	PACKET_MULTICAST = 2
	PACKET_OTHERHOST = 3
	PACKET_OUTGOING  = 4
)

// Htons swaps a 16-bit value to network byte order, for the proto
// argument of AF_PACKET sockets (this host is little-endian in
// practice; the swap is what Linux programs write).
func Htons(v uint16) int { return int(v>>8 | v<<8) }

// PacketMreq is the PACKET_ADD_MEMBERSHIP / PACKET_DROP_MEMBERSHIP value.
type PacketMreq struct {
	Ifindex int
	Type    int // PACKET_MR_PROMISC (others are accepted and ignored)
}

// PacketStats is PACKET_STATISTICS: frames queued and dropped since the
// last read (reading resets them, as in Linux).
type PacketStats struct {
	Packets uint32
	Drops   uint32
}

// packetPromisc counts the promiscuous packet sockets of each NIC. The
// tap sees frames before the NIC's MAC filter, so frames for another
// host (PACKET_OTHERHOST) are passed up only while someone asked for
// promiscuous mode, as a real NIC would filter them in hardware.
var packetPromisc sync.Map // *stack.NIC -> *atomic.Int32

func promiscCount(nic *stack.NIC) *atomic.Int32 {
	v, _ := packetPromisc.LoadOrStore(nic, new(atomic.Int32))
	return v.(*atomic.Int32)
}

func setPromisc(nic *stack.NIC, on bool) {
	if on {
		promiscCount(nic).Add(1)
	} else {
		promiscCount(nic).Add(-1)
	}
	nic.SetPromiscuous(on)
}

const (
	packetDefaultRcvBuf = 212992
	packetMaxQueue      = 4096 // frames, whatever their size
	packetAnyIf         = 0    // sll_ifindex 0: every interface
)

// packetEthertype decodes the socket() proto argument (see above).
func packetEthertype(proto int) (uint16, error) {
	if proto < 0 || proto > 0xffff {
		return 0, syscall.EINVAL
	}
	if proto == 0 {
		return 0, nil
	}
	p := uint16(proto)
	sw := p>>8 | p<<8
	switch {
	case packetWellKnown(sw):
		return sw, nil
	case packetWellKnown(p):
		return p, nil
	}
	// Anything else is read as Linux does: network byte order.
	return sw, nil
}

// packetWellKnown lists the ethertypes accepted in either byte order.
func packetWellKnown(et uint16) bool {
	switch et {
	case ETH_P_ALL, ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, 0x8100, 0x88A8, 0x88CC, 0x8035:
		return true
	}
	return false
}

type packetRec struct {
	n     int
	ifidx int
	proto uint16
	ptype uint8
	src   [6]byte
	at    int64 // arrival, Unix ns, once timestamps are asked for (rxstamp.go); 0 none
}

type packetEP struct {
	n   *Net
	typ int
	wq  waiter.Queue

	mu      sync.Mutex
	closed  bool
	proto   uint16 // host-order ethertype; 0 none
	ifindex int
	rcvbuf  int
	rx      byteRing
	charged int // true size of the queue: bytes + stack.DgramOverhead per frame
	recs    []packetRec
	rhead   int
	rn      int
	promisc map[*stack.NIC]int
	packets uint32 // since the last PACKET_STATISTICS read
	drops   atomic.Uint64
	dropsRd uint64      // drops already reported by PACKET_STATISTICS
	stamp   rxStamp     // SIOCGSTAMP (ioctl.go)
	ts      tsOpts      // SO_TIMESTAMP, SO_TIMESTAMPING (rxstamp.go)
	stampRx atomic.Bool // record arrival times (rxstamp.go)
	txq     pktTxQueue  // transmit timestamp reports (packet_txstamp.go)

	smu     sync.Mutex
	scratch []byte // SOCK_DGRAM send: header + payload
	remove  func()
}

func (n *Net) newPacket(typ, proto int) (endpoint, error) {
	if typ != SOCK_RAW && typ != SOCK_DGRAM {
		return nil, syscall.ESOCKTNOSUPPORT
	}
	et, err := packetEthertype(proto)
	if err != nil {
		return nil, err
	}
	e := &packetEP{n: n, typ: typ, proto: et, ifindex: packetAnyIf, rcvbuf: packetDefaultRcvBuf}
	e.remove = n.st.AddPacketTap(e.tap)
	return e, nil
}

// tap runs on the link goroutine for every frame: filter, copy, return.
func (e *packetEP) tap(nic *stack.NIC, f []byte, outgoing bool) {
	var et uint16
	hdr := 0
	var src [6]byte
	ptype := uint8(PACKET_HOST)
	if nic.IsEthernet() {
		if len(f) < wire.EthernetHeaderLen {
			return
		}
		eth := wire.Ethernet(f)
		et = eth.EtherType()
		hdr = wire.EthernetHeaderLen
		src = eth.Src()
		dst := eth.Dst()
		switch {
		case outgoing:
			ptype = PACKET_OUTGOING
		case dst == nic.HardwareAddr():
			ptype = PACKET_HOST
		case dst.IsBroadcast():
			ptype = PACKET_BROADCAST
		case dst.IsMulticast():
			ptype = PACKET_MULTICAST
		default:
			ptype = PACKET_OTHERHOST
			if v, ok := packetPromisc.Load(nic); !ok || v.(*atomic.Int32).Load() <= 0 {
				return
			}
		}
	} else {
		// IP link (loopback, TUN): the version nibble says the protocol.
		if len(f) == 0 {
			return
		}
		switch f[0] >> 4 {
		case 4:
			et = ETH_P_IP
		case 6:
			et = ETH_P_IPV6
		default:
			return
		}
		if outgoing {
			ptype = PACKET_OUTGOING
		}
	}

	e.mu.Lock()
	if e.closed || e.proto == 0 || (e.ifindex != packetAnyIf && e.ifindex != nic.ID()) {
		e.mu.Unlock()
		return
	}
	if e.proto != ETH_P_ALL && (outgoing || e.proto != et) {
		e.mu.Unlock()
		return
	}
	data := f
	if e.typ == SOCK_DGRAM {
		data = f[hdr:]
	}
	var at int64
	if e.stampRx.Load() {
		// Only for frames this socket takes (rxstamp.go).
		at = max(e.n.st.Clock().Now().UnixNano(), 1)
	}
	// Every frame is charged its bytes plus the per-packet overhead
	// Linux's truesize has, so empty frames cannot fill memory for free.
	ts := len(data) + stack.DgramOverhead
	if e.rn >= packetMaxQueue || (e.rn > 0 && e.charged+ts > e.rcvbuf) {
		e.mu.Unlock()
		e.drops.Add(1)
		e.n.st.Stats().Packet.RcvbufErrors.Add(1)
		return
	}
	if e.rn == len(e.recs) {
		nr := make([]packetRec, max(32, 2*len(e.recs)))
		for i := 0; i < e.rn; i++ {
			nr[i] = e.recs[(e.rhead+i)%len(e.recs)]
		}
		e.recs, e.rhead = nr, 0
	}
	e.recs[(e.rhead+e.rn)%len(e.recs)] = packetRec{n: len(data), ifidx: nic.ID(), proto: et, ptype: ptype, src: src, at: at}
	e.rn++
	e.rx.write(data)
	e.charged += ts
	e.packets++
	e.mu.Unlock()
	e.wq.Notify(waiter.EventIn)
}

// Drops is the number of frames lost because the receive queue was full.
func (e *packetEP) Drops() uint64 { return e.drops.Load() }

func (e *packetEP) stream() bool          { return false }
func (e *packetEP) waiter() *waiter.Queue { return &e.wq }

func (e *packetEP) bind(a Sockaddr) error {
	sa, ok := a.(*SockaddrPacket)
	if !ok {
		return syscall.EINVAL
	}
	if sa.Ifindex != packetAnyIf && e.n.st.NICByID(sa.Ifindex) == nil {
		return syscall.ENODEV
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return syscall.EBADF
	}
	e.ifindex = sa.Ifindex
	if sa.Protocol != 0 {
		e.proto = sa.Protocol
	}
	return nil
}

func (e *packetEP) listen(int) error                    { return syscall.EOPNOTSUPP }
func (e *packetEP) accept() (endpoint, Sockaddr, error) { return nil, nil, syscall.EOPNOTSUPP }
func (e *packetEP) connect(Sockaddr) error              { return syscall.EOPNOTSUPP }
func (e *packetEP) connectResult() error                { return nil }
func (e *packetEP) shutdown(int) error                  { return syscall.EOPNOTSUPP }

func (e *packetEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	return e.sendCtl(b, to, nil)
}

// sendCtl is send with the timestamp control messages c (nil: none).
func (e *packetEP) sendCtl(b []byte, to Sockaddr, c *txCtl) (int, error) {
	e.mu.Lock()
	ifindex, proto := e.ifindex, e.proto
	e.mu.Unlock()
	var dst [6]byte
	if to != nil {
		sa, ok := to.(*SockaddrPacket)
		if !ok {
			return 0, syscall.EINVAL
		}
		ifindex = sa.Ifindex
		dst = sa.HWAddr
		if sa.Protocol != 0 {
			proto = sa.Protocol
		}
	} else if e.typ == SOCK_DGRAM {
		return 0, syscall.EDESTADDRREQ
	}
	if ifindex == packetAnyIf {
		return 0, syscall.ENXIO
	}
	nic := e.n.st.NICByID(ifindex)
	if nic == nil {
		return 0, syscall.ENXIO
	}
	if e.typ == SOCK_RAW || !nic.IsEthernet() {
		if err := nic.WriteRawFrame(b); err != nil {
			return 0, err
		}
		e.txStampedRaw(c, nic, b, dst, proto) // packet_txstamp.go
		return len(b), nil
	}
	if proto == 0 || proto == ETH_P_ALL {
		return 0, syscall.EINVAL
	}
	e.smu.Lock()
	defer e.smu.Unlock()
	need := wire.EthernetHeaderLen + len(b)
	if cap(e.scratch) < need {
		e.scratch = make([]byte, need)
	}
	f := e.scratch[:need]
	copy(f[0:6], dst[:])
	mac := nic.HardwareAddr()
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:14], proto)
	copy(f[wire.EthernetHeaderLen:], b)
	if err := nic.WriteRawFrame(f); err != nil {
		return 0, err
	}
	e.txStamped(c, f) // packet_txstamp.go
	return len(b), nil
}

func (e *packetEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	n, full, from, _, err := e.recvAt(b, flags)
	return n, full, from, err
}

// recvAt is recv that also gives the frame's arrival time (0: none).
func (e *packetEP) recvAt(b []byte, flags int) (int, int, Sockaddr, int64, error) {
	e.mu.Lock()
	if e.rn == 0 {
		closed := e.closed
		e.mu.Unlock()
		if closed {
			return 0, 0, nil, 0, nil
		}
		return 0, 0, nil, 0, syscall.EAGAIN
	}
	r := e.recs[e.rhead]
	n := e.rx.peek(b[:min(len(b), r.n)], 0)
	if flags&MSG_PEEK == 0 {
		e.rx.discard(r.n)
		e.charged -= r.n + stack.DgramOverhead
		e.rhead = (e.rhead + 1) % len(e.recs)
		e.rn--
	}
	e.mu.Unlock()
	e.stamp.recvd(r.at, e.ts.cmsgs(r.at)) // SIOCGSTAMP (ioctl.go)
	return n, r.n, &SockaddrPacket{Ifindex: r.ifidx, Protocol: r.proto, PktType: r.ptype, HWAddr: r.src}, r.at, nil
}

func (e *packetEP) close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	pr := e.promisc
	e.promisc = nil
	e.rx.reset()
	e.recs, e.rn, e.charged = nil, 0, 0
	e.txq.items = nil
	e.mu.Unlock()
	e.remove()
	for nic, c := range pr {
		for ; c > 0; c-- {
			setPromisc(nic, false)
		}
	}
	e.wq.Notify(waiter.EventIn | waiter.EventOut | waiter.EventHUp)
}

func (e *packetEP) readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := waiter.EventOut
	if e.rn > 0 {
		r |= waiter.EventIn
	}
	if e.txQueuedLocked() {
		r |= waiter.EventErr // a queued report (datagram_poll)
	}
	if e.closed {
		r |= waiter.EventHUp
	}
	return r & (mask | waiter.EventErr | waiter.EventHUp)
}

func (e *packetEP) localAddr() Sockaddr {
	e.mu.Lock()
	defer e.mu.Unlock()
	sa := &SockaddrPacket{Ifindex: e.ifindex, Protocol: e.proto}
	if nic := e.n.st.NICByID(e.ifindex); nic != nil {
		sa.HWAddr = nic.HardwareAddr()
	}
	return sa
}

func (e *packetEP) remoteAddr() (Sockaddr, error) { return nil, syscall.ENOTCONN }

func (e *packetEP) setOption(level, name int, v any) error {
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_RCVBUF:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.mu.Lock()
			e.rcvbuf = max(2304, min(2*i, 1<<26))
			e.mu.Unlock()
			return nil
		case SO_SNDBUF, SO_REUSEADDR, SO_DEBUG, SO_BROADCAST:
			_, err := intOpt(v)
			return err
		}
		return syscall.ENOPROTOOPT
	case SOL_PACKET:
		switch name {
		case PACKET_ADD_MEMBERSHIP, PACKET_DROP_MEMBERSHIP:
			m, ok := v.(PacketMreq) // a *PacketMreq is dereferenced by SetSockOpt
			if !ok {
				return syscall.EINVAL
			}
			nic := e.n.st.NICByID(m.Ifindex)
			if nic == nil {
				return syscall.ENODEV
			}
			if m.Type != PACKET_MR_PROMISC {
				return nil // multicast/allmulti memberships: accepted, not needed here
			}
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				return syscall.EBADF
			}
			if e.promisc == nil {
				e.promisc = map[*stack.NIC]int{}
			}
			if name == PACKET_ADD_MEMBERSHIP {
				e.promisc[nic]++
				e.mu.Unlock()
				setPromisc(nic, true)
				return nil
			}
			if e.promisc[nic] == 0 {
				e.mu.Unlock()
				return syscall.EADDRNOTAVAIL
			}
			e.promisc[nic]--
			e.mu.Unlock()
			setPromisc(nic, false)
			return nil
		}
		return syscall.ENOPROTOOPT
	}
	return syscall.ENOPROTOOPT
}

func (e *packetEP) getOption(level, name int) (any, error) {
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_RCVBUF:
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.rcvbuf, nil
		}
		return nil, syscall.ENOPROTOOPT
	case SOL_PACKET:
		if name == PACKET_STATISTICS {
			e.mu.Lock()
			defer e.mu.Unlock()
			d := e.drops.Load()
			st := PacketStats{Packets: e.packets + uint32(d-e.dropsRd), Drops: uint32(d - e.dropsRd)}
			e.packets, e.dropsRd = 0, d
			return st, nil
		}
		return nil, syscall.ENOPROTOOPT
	}
	return nil, syscall.ENOPROTOOPT
}
