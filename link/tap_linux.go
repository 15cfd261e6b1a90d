package link

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// TAPOptions configure OpenTAP and OpenTUN.
type TAPOptions struct {
	// Netns is a network namespace name under /run/netns; the device is
	// opened (or created) there. Empty: the caller's namespace.
	Netns string
	// MTU, when set, is applied to the device; 0 keeps the device's MTU.
	MTU int
	// Kind is KindEthernet for a TAP, KindIP for a TUN.
	Kind Kind
	// MAC is the stack's own hardware address on a TAP; zero means a
	// random locally administered one. It is not the kernel side's MAC,
	// which the kernel chose for its end of the device.
	MAC wire.MAC
	// ReadBatch is the most frames delivered per batch (DefaultReadBatch).
	ReadBatch int
	// Offload opens the device with virtio-net headers (IFF_VNET_HDR)
	// and asks for checksum and segmentation offload (TUNSETOFFLOAD:
	// CSUM, TSO4, TSO6, and USO where the kernel has it): TCP super-
	// segments of up to 64 KB and partial checksums then cross the
	// device whole, both ways.
	Offload bool
	// Queues, above 1, opens a multi-queue device (IFF_MULTI_QUEUE) with
	// that many queues, each an fd with its own goroutine reading and
	// delivering in batches: the kernel spreads flows over the queues
	// (and answers a flow on the queue it last arrived from), the
	// endpoint picks a transmit queue by flow hash, so different flows
	// are processed on different cores, each flow in order.
	Queues int
	// NoIOURing makes the endpoint write one frame per write(2) even
	// where io_uring works. By default a device without Offload
	// batches its writes through io_uring (the frames written while a
	// received batch is delivered, or while TCP hands over a flush,
	// leave in one call), and falls back by itself where io_uring is
	// missing or forbidden (kernel.io_uring_disabled, seccomp). With
	// Offload it is not used. Reads are one read(2) per frame either
	// way.
	NoIOURing bool
}

// TAP is an endpoint on a Linux TAP (Ethernet frames) or TUN (bare IP
// packets) device. The kernel is the peer: what the endpoint writes, the
// kernel receives on the device, and what the kernel sends out of the
// device, the endpoint reads.
type TAP struct {
	fdEndpoint
	offFlags uint // TUNSETOFFLOAD flags the kernel took
}

// OffloadFlags are the TUNSETOFFLOAD flags the kernel accepted (0
// without Offload); USO is there when the kernel has it.
func (t *TAP) OffloadFlags() uint { return t.offFlags }

// errNoIOURing is why a TAP opened with NoIOURing does not use it.
var errNoIOURing = errors.New("link: io_uring not asked for (NoIOURing)")

// errURingOffload is why a TAP with virtio-net headers does not use
// io_uring: the stack hands it super-segments of up to 64 KB one at a
// time, too large to copy and hold back for a batch, and beside which a
// system call costs little.
var errURingOffload = errors.New("link: io_uring not used with virtio-net headers (Offload)")

// errURingFailed: a ring failed while in use, and was given up.
var errURingFailed = errors.New("link: an io_uring failed while in use; one system call per frame since")

// IOURing tells whether the endpoint writes through io_uring, and if
// not, why: the error of io_uring_setup, of the check that writes can
// be made non-blocking, errURingOffload, or errURingFailed.
func (t *TAP) IOURing() (bool, error) {
	if t.uringErr != nil {
		return false, t.uringErr
	}
	if t.sumQueues(func(e *fdEndpoint) uint64 { return e.ringFailures.Load() }) > 0 {
		return false, errURingFailed
	}
	return true, nil
}

// ReadCalls and WriteCalls count the system calls that read and wrote
// frames over every queue: with RxFrames and TxFrames they tell how
// well reads and writes were batched.
func (t *TAP) ReadCalls() uint64 {
	return t.sumQueues(func(e *fdEndpoint) uint64 { return e.rcalls.Load() })
}

// WriteCalls: see ReadCalls.
func (t *TAP) WriteCalls() uint64 {
	return t.sumQueues(func(e *fdEndpoint) uint64 { return e.wcalls.Load() })
}

func (t *TAP) sumQueues(f func(*fdEndpoint) uint64) uint64 {
	if t.queues == nil {
		return f(&t.fdEndpoint)
	}
	var n uint64
	for _, q := range t.queues {
		n += f(q)
	}
	return n
}

// OpenTAP opens the TAP device name, creating it if it does not exist (a
// created device disappears when the endpoint is closed). An empty name
// or a pattern like "tap%d" lets the kernel choose; Name tells which.
func OpenTAP(name string, opts TAPOptions) (*TAP, error) {
	return openTunTap(name, opts)
}

// OpenTUN is OpenTAP for a layer 3 TUN device (KindIP, no ARP).
func OpenTUN(name string, opts TAPOptions) (*TAP, error) {
	opts.Kind = KindIP
	return openTunTap(name, opts)
}

func openTunTap(name string, opts TAPOptions) (*TAP, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("link: interface name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	what := "TAP"
	if opts.Kind == KindIP {
		flags = unix.IFF_TUN | unix.IFF_NO_PI
		what = "TUN"
	}
	if opts.Offload {
		flags |= unix.IFF_VNET_HDR
	}
	if opts.Queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	nq := max(opts.Queues, 1)
	var offFlags uint
	var (
		fds    []int
		ifname string
		mtu    int
	)
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	err := inNetns(opts.Netns, func() error {
		ifname = name
		for q := range nq {
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
					return fmt.Errorf("link: /dev/net/tun is missing: %w (no TUN/TAP support, or create it: mknod /dev/net/tun c 10 200)", err)
				}
				return permErr("open /dev/net/tun", err)
			}
			fds = append(fds, fd)
			ifr, err := unix.NewIfreq(ifname)
			if err != nil {
				return fmt.Errorf("link: interface name %q: %w", name, err)
			}
			ifr.SetUint16(flags)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				switch {
				case errors.Is(err, unix.EBUSY):
					return fmt.Errorf("link: %s %q: %w (another process has it open)", what, name, err)
				case errors.Is(err, unix.EINVAL) && q > 0:
					return fmt.Errorf("link: %s %q queue %d: %w", what, ifname, q, err)
				case errors.Is(err, unix.EINVAL):
					return fmt.Errorf("link: %s %q: %w (does a device of another kind have this name, or one opened without the same queue mode?)", what, name, err)
				}
				return permErr(fmt.Sprintf("%s %q (TUNSETIFF)", what, name), err)
			}
			// Further queues attach to the device the first one made.
			ifname = ifr.Name()
			if opts.Offload {
				if offFlags, err = setOffload(fd); err != nil {
					return fmt.Errorf("link: %s %q: TUNSETOFFLOAD: %w", what, name, err)
				}
			} else {
				// The offloads an earlier opener set outlive it on a
				// persistent device: without virtio-net headers the
				// kernel would send checksums unfinished.
				_ = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0)
			}
		}
		// MTU ioctls go through a socket of the device's namespace.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("link: socket for MTU: %w", err)
		}
		defer unix.Close(s)
		mr, _ := unix.NewIfreq(ifname)
		if opts.MTU > 0 {
			mr.SetUint32(uint32(opts.MTU))
			if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, mr); err != nil {
				return permErr(fmt.Sprintf("set MTU %d on %s", opts.MTU, ifname), err)
			}
			mtu = opts.MTU
			return nil
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFMTU, mr); err != nil {
			return fmt.Errorf("link: get MTU of %s: %w", ifname, err)
		}
		mtu = int(mr.Uint32())
		return nil
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	t := &TAP{}
	t.name, t.mtu, t.kind = ifname, mtu, opts.Kind
	bufSize := mtu
	if opts.Kind == KindEthernet {
		// Without IFF_VNET_HDR the kernel sends at most MTU+14 (plus a
		// VLAN tag); a shorter read buffer would silently cut frames.
		bufSize = mtu + wire.EthernetHeaderLen + 4
		t.mac = opts.MAC
		if t.mac == (wire.MAC{}) {
			t.mac = randomMAC()
		}
	}
	if opts.Offload {
		// A super-segment from the kernel: 64 KB of IP after the headers.
		bufSize = vnetHdrLen + wire.EthernetHeaderLen + 4 + InMemoryGSOMax
	}
	for q, fd := range fds {
		e := &t.fdEndpoint
		if q > 0 {
			e = &fdEndpoint{name: t.name, mtu: t.mtu, kind: t.kind, mac: t.mac, stats: t.stats}
		} else {
			t.stats = new(Stats)
		}
		e.stats = t.stats
		if err := e.initFD(fd, "/dev/net/tun:"+ifname, opts.ReadBatch, bufSize); err != nil {
			// initFD closed fd; close the others and the queues made so far.
			for _, other := range fds[q+1:] {
				unix.Close(other)
			}
			for _, made := range t.queues {
				made.f.Close()
			}
			return nil, fmt.Errorf("link: %s %s: %w", what, ifname, err)
		}
		e.readFn, e.writeFn = e.readEach, e.writeOne
		if opts.Offload {
			e.vnet.on = true
			e.writeFn = e.writeVnet
			e.initLend() // lend.go: super-segments are kept, not copied
		}
		switch {
		case opts.NoIOURing:
			e.uringErr = errNoIOURing
		case opts.Offload:
			e.uringErr = errURingOffload
		default:
			e.uringInit(fd)
		}
		if e.wring != nil && nq == 1 {
			// Frames held while a received batch is delivered, or while
			// TCP hands over a flush, leave in one call
			// (hold_linux.go). Not with several queues: a flow's
			// answer may hash to another queue.
			e.initHold(len(e.bufs), bufSize)
			e.deliverHook = e.holdWrites
		}
		if nq > 1 {
			t.queues = append(t.queues, e)
		}
	}
	t.offFlags = offFlags
	t.learnFlows()
	return t, nil
}
