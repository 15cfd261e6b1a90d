package link

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// AFPacketOptions configure OpenAFPacket.
type AFPacketOptions struct {
	// Netns is a network namespace name under /run/netns holding the
	// interface. Empty: the caller's namespace.
	Netns string
	// Promisc puts the interface in promiscuous mode while the socket is
	// open, so frames to other MACs are seen too.
	Promisc bool
	// MAC is the stack's hardware address; zero means the interface's own.
	MAC wire.MAC
	// ReadBatch is the most frames taken per recvmmsg (DefaultReadBatch).
	ReadBatch int
	// Offload turns on PACKET_VNET_HDR: every frame crosses the socket
	// with a virtio-net header, so TCP super-segments (the kernel's GRO
	// or TSO packets, the stack's GSO) and partial checksums go whole
	// both ways.
	Offload bool
	// QdiscBypass sends straight to the driver (PACKET_QDISC_BYPASS),
	// skipping the interface's queueing discipline, like a NIC's own
	// ring: no qdisc push-back, no tc shaping on our transmissions.
	QdiscBypass bool
	// FanoutGroup, when non-zero, joins the socket to a PACKET_FANOUT
	// group of that id with flows hashed across its members
	// (PACKET_FANOUT_HASH): sockets opened with the same group on one
	// interface split its receive load without reordering a flow.
	FanoutGroup uint16
	// Queues, above 1, opens that many sockets in one PACKET_FANOUT_HASH
	// group (FanoutGroup, or a unique one the kernel picks), each with
	// its own goroutine: the kernel hashes each received flow to one
	// socket, so flows are received on different cores, each in order;
	// transmission picks a socket by flow hash too.
	Queues int
	// Ring reads and writes through memory-mapped rings instead of
	// recvmmsg/sendmmsg; received frames are lent to a lending receiver
	// in place (RingStats).
	Ring bool
	// RingVersion picks the receive ring's kind: 2 (or 0), TPACKET_V2
	// (tpacket2_linux.go), each frame handed over as soon as the kernel
	// has written it, in a slot of the largest frame; 3, TPACKET_V3
	// (tpacket_linux.go), frames handed over a block at a time, a block
	// when full or after its 1 ms timer. V3 takes less CPU per frame
	// when frames are many and small, but holds every sparse frame back
	// up to 1 ms: a bbr sender whose ACKs come through it is cut to a
	// tenth (BENCHMARKS.md, "AF_PACKET receive rings for a sender").
	RingVersion int
	// RingBlockSize and RingBlocks size each socket's TPACKET_V3 receive
	// ring (DefaultRingBlockSize, DefaultRingBlocks when 0); a block must
	// hold the largest frame.
	RingBlockSize, RingBlocks int
	// RingNoTx, with Ring, leaves out the transmit ring: frames are sent
	// with sendmmsg as without a ring.
	RingNoTx bool
	// RingFrames is the number of slots of a TPACKET_V2 receive ring
	// (0: DefaultRing2Bytes' worth, at least DefaultRing2MinFrames).
	RingFrames int
	// ReorderWait is how long the reader, finding nothing more to read
	// while TCP holds back the ACK of a hole in a flow, waits for the
	// missing frame before TCP reports the hole (DefaultReorderWait when
	// 0; negative: no wait). On a veth the kernel's frames of one flow
	// can cross two CPUs' backlogs and arrive swapped by microseconds; a
	// hole reported at once makes a Linux sender retransmit and shrink
	// its window for nothing. ReorderWaitStats counts the waits. At
	// most MaxReorderWait.
	ReorderWait time.Duration

	retireMs int // tests: the TPACKET_V3 block timer (0: ringRetireMs)
}

// DefaultReorderWait is AFPacketOptions.ReorderWait's default: enough
// for the other CPU's backlog to drain on the machines measured
// (BENCHMARKS.md, "Waiting for a reordered frame"), short against any
// round trip a real loss is recovered in.
const DefaultReorderWait = 100 * time.Microsecond

// MaxReorderWait bounds AFPacketOptions.ReorderWait: a wait longer than
// a round trip would only delay the report of a real loss.
const MaxReorderWait = time.Second

// ReorderWaitStats counts the reader's waits for a reordered frame
// (AFPacketOptions.ReorderWait): Waits started, and Woken, those that
// ended with frames to read before the wait was up (the missing frame,
// or, after a real loss, the ones behind it).
type ReorderWaitStats struct {
	Waits, Woken uint64
}

// ReorderWaitStats sums the waits of all queues.
func (a *AFPacket) ReorderWaitStats() ReorderWaitStats {
	var s ReorderWaitStats
	for _, q := range a.afQueues() {
		s.Waits += q.reorderWaits.Load()
		s.Woken += q.reorderWoken.Load()
	}
	return s
}

// AFPacket is an endpoint on an AF_PACKET socket bound to an existing
// interface (a veth end, say): it reads every frame the interface receives
// and sends frames out of it. Frames the host itself sends on the
// interface are not read.
//
// It reads and writes with recvmmsg/sendmmsg, one system call per batch,
// or with Ring through memory-mapped rings; with Offload a frame carries
// up to 64 KB.
type AFPacket struct {
	fdEndpoint
	ifindex int

	rhdrs  []unix.Mmsghdr
	riov   []unix.Iovec
	rnames []unix.RawSockaddrLinklayer

	whdrs []unix.Mmsghdr
	wiov  []unix.Iovec
	wvnet [][vnetHdrLen]byte // one header per frame being written (Offload)

	ring    *tpRing  // with Ring, TPACKET_V3
	ring2   *tp2Ring // with Ring, TPACKET_V2
	tx      *tpTx    // the transmit ring of either
	group   uint16   // fanout group, if inGroup
	inGroup bool
	kdrops  atomic.Uint64 // frames the kernel dropped at a full ring or socket buffer
	nreads  int           // reading goroutine: batches read (recvmmsg)

	all []*AFPacket // every socket of the endpoint (Queues > 1), this one first
}

// afpacketRcvBuf is the socket buffer asked for without a ring.
const afpacketRcvBuf = 8 << 20

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpenAFPacket opens an AF_PACKET socket on ifname (opts.Queues of them
// in a fanout group).
func OpenAFPacket(ifname string, opts AFPacketOptions) (*AFPacket, error) {
	if opts.ReorderWait > MaxReorderWait {
		return nil, fmt.Errorf("link: AF_PACKET reorder wait %v: at most %v", opts.ReorderWait, MaxReorderWait)
	}
	nq := max(opts.Queues, 1)
	var (
		fds, sfds []int
		ifi       *net.Interface
	)
	closeFrom := func(i int) {
		for _, fd := range fds[i:] {
			unix.Close(fd)
		}
		for _, fd := range sfds[min(i, len(sfds)):] {
			unix.Close(fd)
		}
	}
	err := inNetns(opts.Netns, func() error {
		var err error
		// The interface (found over netlink) is looked up in the namespace too.
		ifi, err = net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("link: interface %q: %w", ifname, err)
		}
		for range nq {
			// Protocol 0: nothing is queued before bind picks the interface.
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return permErr("AF_PACKET socket", err)
			}
			fds = append(fds, fd)
			if opts.Ring {
				continue
			}
			// The socket sendmmsg writes to (sendSocketSetup).
			fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return permErr("AF_PACKET socket", err)
			}
			sfds = append(sfds, fd)
		}
		return nil
	})
	if err != nil {
		closeFrom(0)
		return nil, err
	}
	group := fanoutGroup{id: opts.FanoutGroup, known: opts.FanoutGroup != 0}
	stats := new(Stats)
	var all []*AFPacket
	for i, fd := range fds {
		sfd := -1
		if i < len(sfds) {
			sfd = sfds[i]
		}
		a, err := openAFPacketFD(fd, sfd, ifi, opts, stats, nq > 1 || group.known, &group)
		if err != nil {
			closeFrom(i + 1)
			for _, q := range all {
				q.closeQueue()
			}
			return nil, err
		}
		all = append(all, a)
	}
	a := all[0]
	if nq > 1 {
		a.all = all
		for _, q := range all {
			a.queues = append(a.queues, &q.fdEndpoint)
		}
		a.learnFlows()
	}
	return a, nil
}

// fanoutGroup is the group the sockets of one endpoint join; until the
// first joins a unique one (id 0 is a valid id), it is not known.
type fanoutGroup struct {
	id    uint16
	known bool
}

// openAFPacketFD sets up one socket, and sfd (-1: none) to send on; both
// are closed on failure. With fanout it joins group, or a unique group
// which it then records there.
func openAFPacketFD(fd, sfd int, ifi *net.Interface, opts AFPacketOptions, stats *Stats, fanout bool, group *fanoutGroup) (*AFPacket, error) {
	ifname := ifi.Name
	fail := func(err error) (*AFPacket, error) {
		unix.Close(fd)
		if sfd >= 0 {
			unix.Close(sfd)
		}
		return nil, err
	}
	if sfd >= 0 {
		if err := sendSocketSetup(sfd, ifi, opts); err != nil {
			return fail(err)
		}
	}
	// The kernel's own transmissions on the interface would otherwise come
	// back to us (kernels before 4.20 lack the option; we then check
	// sll_pkttype per frame).
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(permErr("bind AF_PACKET to "+ifname, err))
	}
	if opts.Offload {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fail(fmt.Errorf("link: PACKET_VNET_HDR on %s: %w", ifname, err))
		}
	}
	maxFrame := ifi.MTU + wire.EthernetHeaderLen + 4
	if opts.Offload {
		maxFrame = vnetHdrLen + wire.EthernetHeaderLen + 4 + InMemoryGSOMax
	}
	var (
		ring  *tpRing
		ring2 *tp2Ring
	)
	closeRing := func() {
		if ring != nil {
			ring.close()
		}
		if ring2 != nil {
			ring2.close()
		}
	}
	if !opts.Ring {
		// The default socket buffer (about 200 KB) holds three 64 KB
		// super-segments: a burst from the kernel would be dropped.
		// Past the rmem_max limit only with CAP_NET_ADMIN (FORCE).
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, afpacketRcvBuf) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, afpacketRcvBuf)
		}
	}
	if opts.Ring {
		var err error
		switch opts.RingVersion {
		case 0, 2:
			ring2, err = setupRing2(fd, opts.RingFrames, maxFrame, !opts.RingNoTx)
		case 3:
			ring, err = setupRing(fd, opts.RingBlockSize, opts.RingBlocks, maxFrame, opts.retireMs, !opts.RingNoTx)
		default:
			err = fmt.Errorf("ring version %d: want 2 or 3", opts.RingVersion)
		}
		if err != nil {
			return fail(fmt.Errorf("link: AF_PACKET ring on %s: %w", ifname, err))
		}
		// A slot the kernel cannot send is skipped, not left to block the ring.
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1)
	}
	failRing := func(err error) (*AFPacket, error) {
		closeRing()
		return fail(err)
	}
	if opts.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return failRing(fmt.Errorf("link: PACKET_QDISC_BYPASS on %s: %w", ifname, err))
		}
	}
	if fanout {
		arg := int(group.id) | unix.PACKET_FANOUT_HASH<<16
		if !group.known {
			arg |= unix.PACKET_FANOUT_FLAG_UNIQUEID << 16
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return failRing(fmt.Errorf("link: PACKET_FANOUT group %d on %s: %w", group.id, ifname, err))
		}
		if !group.known {
			v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
			if err != nil {
				return failRing(fmt.Errorf("link: PACKET_FANOUT id on %s: %w", ifname, err))
			}
			group.id, group.known = uint16(v), true
		}
	}
	if opts.Promisc {
		mreq := &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
			return failRing(permErr("promiscuous mode on "+ifname, err))
		}
	}
	a := &AFPacket{ifindex: ifi.Index, ring: ring, ring2: ring2}
	switch {
	case ring != nil:
		a.tx = ring.tx
	case ring2 != nil:
		a.tx = ring2.tx
	}
	if fanout {
		a.group, a.inGroup = group.id, true
	}
	a.name, a.mtu, a.kind, a.stats = ifi.Name, ifi.MTU, KindEthernet, stats
	a.mac = opts.MAC
	if a.mac == (wire.MAC{}) && len(ifi.HardwareAddr) == 6 {
		a.mac = wire.MAC(ifi.HardwareAddr)
	}
	bufSize, batch := maxFrame, opts.ReadBatch
	if ring != nil || ring2 != nil {
		// Frames are read in place: no buffers, larger batches.
		bufSize = 0
		if ring2 != nil {
			batch = ring2.batch(batch)
		} else if batch <= 0 {
			batch = 128
		}
	}
	if err := a.initFD(fd, "afpacket:"+ifname, batch, bufSize); err != nil {
		closeRing()
		if sfd >= 0 {
			unix.Close(sfd)
		}
		return nil, fmt.Errorf("link: AF_PACKET on %s: %w", ifname, err)
	}
	if sfd >= 0 {
		a.sendFD, a.sendOwn = sfd, true
	}
	switch {
	case opts.ReorderWait == 0:
		a.reorderWait = DefaultReorderWait
	case opts.ReorderWait > 0:
		a.reorderWait = opts.ReorderWait
	}
	a.vnet.on = opts.Offload
	n := len(a.bufs)
	switch {
	case ring != nil: // frames are lent in place
		a.readFn, a.lend.on, a.lend.ring = a.readRing, true, ring
	case ring2 != nil:
		a.readFn, a.lend.on, a.lend.ring = a.readRing2, true, ring2
	default:
		if opts.Offload && bufSize == LendBufLen {
			a.initLend()
			a.refillHook = a.setRiov
		}
		a.rhdrs = make([]unix.Mmsghdr, n)
		a.riov = make([]unix.Iovec, n)
		a.rnames = make([]unix.RawSockaddrLinklayer, n)
		a.setRiov()
		for i := range a.rhdrs {
			h := &a.rhdrs[i].Hdr
			h.Iov = &a.riov[i]
			h.SetIovlen(1)
			h.Name = (*byte)(unsafe.Pointer(&a.rnames[i]))
		}
		a.readFn = a.readMany
	}
	if a.tx != nil {
		a.writeFn = a.writeRing
		a.deliverHook = a.holdWrites
		return a, nil
	}
	a.whdrs = make([]unix.Mmsghdr, n)
	a.wiov = make([]unix.Iovec, 4*n) // per frame: virtio-net header, frame, a gathered tail's two parts
	if opts.Offload {
		a.wvnet = make([][vnetHdrLen]byte, n)
	}
	a.writeFn = a.writeMany
	if !opts.Offload {
		// Not with Offload: frames of up to 64 KB are too large to copy.
		a.initHold(n, maxFrame)
		a.deliverHook = a.holdWrites
	}
	return a, nil
}

// holdWrites is the deliverHook: writes are held from the start of a
// delivered batch to its end, then sent. With a transmit ring they wait
// marked in its slots for one kick.
func (a *AFPacket) holdWrites(start bool) {
	if a.tx == nil {
		a.fdEndpoint.holdWrites(start)
		return
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.hold(start) && a.tx.pending {
		a.rc.Control(func(fd uintptr) { a.kick(fd) })
	}
}

// HoldWrites is link.Holder: as the reading goroutine holds writes
// while it delivers a batch (holdWrites), when it does.
func (a *AFPacket) HoldWrites(start bool) {
	if a.deliverHook != nil {
		a.holdWrites(start)
	}
}

// FlushHeld is link.Holder's: the held frames leave now (a transmit
// ring's are kicked).
func (a *AFPacket) FlushHeld() {
	if a.tx == nil {
		a.fdEndpoint.FlushHeld()
		return
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.tx.pending {
		a.rc.Control(func(fd uintptr) { a.kick(fd) })
	}
}

// WriteFrames is fdEndpoint.WriteFrames, except that with a transmit
// ring the frames go to its slots (writeRing leaves the kick to
// holdWrites while holding).
func (a *AFPacket) WriteFrames(frames [][]byte) (int, error) {
	if a.tx == nil || a.queues != nil {
		return a.fdEndpoint.WriteFrames(frames)
	}
	if a.closed.Load() {
		return 0, ErrClosed
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.writeLocked(frames)
}

// FanoutGroup is the PACKET_FANOUT group the sockets joined, if any.
func (a *AFPacket) FanoutGroup() (id uint16, ok bool) { return a.group, a.inGroup }

// Close closes every socket, then unmaps the rings (with no writer left
// inside them).
func (a *AFPacket) Close() error {
	err := a.fdEndpoint.Close()
	for _, q := range a.afQueues() {
		q.wmu.Lock()
		q.closeRings()
		q.wmu.Unlock()
	}
	return err
}

// closeQueue undoes openAFPacketFD (a failed open).
func (a *AFPacket) closeQueue() {
	a.f.Close()
	a.closeSend()
	a.closeRings()
}

// Without rings, frames leave by a second socket of their
// own, which never enters Go's poller. A packet socket's buffer is
// released when the kernel frees what it sent (on a veth, at once), and
// each release wakes whoever waits on the socket: the poller's epoll
// registration, which Go makes for writing as well as reading, so every
// frame sent woke the poller's thread for nothing. The receiving socket
// sends nothing now; the sending one has no reader to wake and is
// polled only while the kernel pushes back (writeOwn). Measured in
// BENCHMARKS.md, "AF_PACKET sends on a socket of its own".
//
// sendSocketSetup makes sfd a send-only socket on ifi: bound with
// protocol 0 (the kernel takes a frame's protocol from its Ethernet
// header, and queues nothing to a socket of protocol 0), with the
// options that shape what is sent.
func sendSocketSetup(sfd int, ifi *net.Interface, opts AFPacketOptions) error {
	if err := unix.Bind(sfd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return permErr("bind AF_PACKET to "+ifi.Name, err)
	}
	if opts.Offload {
		if err := unix.SetsockoptInt(sfd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fmt.Errorf("link: PACKET_VNET_HDR on %s: %w", ifi.Name, err)
		}
	}
	if opts.QdiscBypass {
		if err := unix.SetsockoptInt(sfd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("link: PACKET_QDISC_BYPASS on %s: %w", ifi.Name, err)
		}
	}
	return nil
}

// closeRings unmaps the socket's rings, if any.
func (a *AFPacket) closeRings() {
	if a.ring != nil {
		a.ring.close()
	}
	if a.ring2 != nil {
		a.ring2.close()
	}
}

// ReadCalls is how many recvmmsg calls read, over every socket of the
// endpoint, those that found nothing included (a receive ring reads
// without them): with RxFrames it tells how well reads were batched.
func (a *AFPacket) ReadCalls() uint64 {
	return a.sumQueues(func(q *AFPacket) uint64 { return q.rcalls.Load() })
}

// WriteCalls is how many system calls sent frames (sendmmsg, or a
// transmit ring's sendto), over every socket of the endpoint: with
// TxFrames it tells how well writes were batched.
func (a *AFPacket) WriteCalls() uint64 {
	return a.sumQueues(func(q *AFPacket) uint64 { return q.wcalls.Load() })
}

// sumQueues adds f over every socket of the endpoint.
func (a *AFPacket) sumQueues(f func(*AFPacket) uint64) uint64 {
	var n uint64
	for _, q := range a.afQueues() {
		n += f(q)
	}
	return n
}

// Ifindex is the interface index in its namespace.
func (a *AFPacket) Ifindex() int { return a.ifindex }

// setRiov points the receive iovecs at the read buffers.
func (a *AFPacket) setRiov() {
	for i := range a.riov {
		a.riov[i].Base = &a.bufs[i][0]
		a.riov[i].SetLen(len(a.bufs[i]))
	}
}

func (a *AFPacket) readMany(fd uintptr) bool {
	// A full socket buffer drops silently: collect the kernel's count
	// now and then (a system call per 64 batches).
	if a.nreads++; a.nreads%64 == 0 {
		a.collectDrops(int(fd))
	}
	for i := range a.rhdrs {
		a.rhdrs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
		a.rhdrs[i].Hdr.Flags = 0
		a.rhdrs[i].Len = 0
	}
	for {
		a.rcalls.Add(1)
		r, errno := nbSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&a.rhdrs[0])),
			uintptr(a.readLimit(len(a.rhdrs))), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			a.rerr = errno
			return true
		}
		for i := range int(r) {
			h := &a.rhdrs[i]
			if a.rnames[i].Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || int(h.Len) > len(a.bufs[i]) {
				a.stats.RxDropped.Add(1) // longer than MTU: a cut frame is useless
				continue
			}
			f := a.bufs[i][:h.Len]
			if a.vnet.on {
				m, ok := parseVnetHdr(f, wire.EthernetHeaderLen)
				if !ok || len(f) <= vnetHdrLen {
					a.stats.RxDropped.Add(1)
					continue
				}
				a.vnet.metas[a.nread] = m
				f = f[vnetHdrLen:]
			}
			a.frames[a.nread] = f
			a.nread++
		}
		if a.nread == 0 {
			// Only outgoing or oversized frames: look again.
			for i := range a.rhdrs {
				a.rhdrs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
				a.rhdrs[i].Hdr.Flags = 0
			}
			continue
		}
		return true
	}
}

func (a *AFPacket) writeMany(fd uintptr) bool {
	for a.wnext < len(a.wframes) {
		k := min(len(a.wframes)-a.wnext, len(a.whdrs))
		for i := range k {
			f := a.wframes[a.wnext+i]
			if len(f) == 0 {
				k = i
				break
			}
			iov := a.wiov[4*i : 4*i+4]
			iov[0].Base = &f[0]
			iov[0].SetLen(len(f))
			niov := 1
			if a.vnet.on {
				var m Meta
				if a.vnet.wmeta != nil {
					m = a.vnet.wmeta[a.wnext+i]
				}
				putVnetHdr(a.wvnet[i][:], m)
				iov[1] = iov[0]
				iov[0].Base = &a.wvnet[i][0]
				iov[0].SetLen(vnetHdrLen)
				niov = 2
			}
			if a.wnext+i == 0 {
				for _, t := range a.wtail {
					if len(t) > 0 {
						iov[niov].Base = &t[0]
						iov[niov].SetLen(len(t))
						niov++
					}
				}
			}
			a.whdrs[i].Hdr = unix.Msghdr{Iov: &iov[0]}
			a.whdrs[i].Hdr.SetIovlen(niov)
		}
		if k == 0 { // an empty frame: refuse it
			a.stats.TxDropped.Add(1)
			a.wnext++
			continue
		}
		r, errno := nbSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&a.whdrs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
		a.wcalls.Add(1)
		clear(a.wiov[:4*k]) // keep no pointers to the caller's frames
		switch errno {
		case 0:
			if r == 0 { // no progress; never seen, but do not spin
				a.stats.TxDropped.Add(1)
				a.wnext++
				continue
			}
			for i, f := range a.wframes[a.wnext : a.wnext+int(r)] {
				a.stats.TxFrames.Add(1)
				a.stats.TxBytes.Add(uint64(len(f) + a.tailLen(a.wnext+i)))
			}
			a.wtaken += int(r)
			a.wnext += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			// sendmmsg fails only when the first frame fails: skip it.
			a.stats.TxDropped.Add(1)
			if a.werr == nil {
				a.werr = errno
			}
			a.wnext++
		}
	}
	return true
}

// Offloads: with Offload the socket takes TCP super-segments up to 64 KB,
// UDP ones too where the kernel has it (afpacket_uso_linux.go), and
// partial checksums (the kernel cuts and sums what the interface
// cannot); otherwise nothing beyond the MTU.
func (a *AFPacket) Offloads() Offloads {
	if !a.vnet.on {
		return Offloads{}
	}
	return Offloads{GSOMax: InMemoryGSOMax, NeedsMeta: true, PartialCsum: true, UDPGSO: packetUSO()}
}

// WriteFrameVec writes one frame gathered from head and tail (VecWriter)
// with sendmmsg; not with a transmit ring (its slots are filled by copy)
// nor without Offload (writes may be held during a delivery).
func (a *AFPacket) WriteFrameVec(head []byte, tail [2][]byte, m Meta) (bool, error) {
	if !a.vnet.on || a.tx != nil || a.pend != nil {
		return false, nil
	}
	return true, a.writeVec(head, tail, m)
}

// WriteFramesMeta writes frames with their offload state.
func (a *AFPacket) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	if !a.vnet.on {
		n := 0
		for i, f := range frames {
			var werr error
			err := a.vnet.seg.finish(f, meta[i], func(b []byte) error {
				_, werr = a.WriteFrames([][]byte{b})
				return werr
			})
			if werr != nil {
				return n, werr
			}
			if err != nil {
				a.stats.TxDropped.Add(1)
			}
			n++
		}
		return n, nil
	}
	if a.closed.Load() {
		return 0, ErrClosed
	}
	if a.queues != nil {
		return a.writeQueues(frames, meta)
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.vnet.wmeta = meta
	defer func() { a.vnet.wmeta = nil }()
	return a.writeLocked(frames)
}
