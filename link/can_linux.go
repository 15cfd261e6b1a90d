package link

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// HostCAN attaches a sockstack bus to a CAN interface of the host
// kernel (can0, vcan0) through an AF_CAN raw socket: frames from the
// kernel's interface are queued on the bus as from a node of their own,
// frames of the other bus nodes are written to the kernel's interface.
type HostCAN struct {
	node   *CANIf
	fd     int
	closed atomic.Bool
	done   chan struct{}
	wbuf   [wire.CANFDMTU]byte

	RxFrames, TxFrames, RxDropped, TxErrors, RxMalformed atomic.Uint64
}

// ErrNoHostCAN says the kernel has no SocketCAN (socket(AF_CAN) failed).
var ErrNoHostCAN = errors.New("the host kernel has no AF_CAN (socket(AF_CAN, SOCK_RAW, CAN_RAW) failed)")

// HostCANAvailable tries socket(AF_CAN, SOCK_RAW, CAN_RAW) and reports
// the error if the kernel refuses it.
func HostCANAvailable() error {
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return errors.Join(ErrNoHostCAN, err)
	}
	unix.Close(fd)
	return nil
}

// AttachHostCAN joins bus to the host interface ifname.
func AttachHostCAN(bus *CANBus, ifname string) (*HostCAN, error) {
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, errors.Join(ErrNoHostCAN, err)
	}
	idx, err := hostIfindex(ifname)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// FD frames on if the interface carries them; classic-only
	// interfaces refuse the option's effect at send time.
	_ = unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1)
	// A receive timeout lets the reader notice Close.
	tv := unix.Timeval{Usec: 200000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: idx}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	h := &HostCAN{fd: fd, done: make(chan struct{})}
	h.node = bus.Attach("host:" + ifname)
	h.node.AddReceiver(h)
	go h.readLoop()
	return h, nil
}

func hostIfindex(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// ReceiveCAN writes the other nodes' frames to the kernel interface.
func (h *HostCAN) ReceiveCAN(_ *CANIf, f *wire.CANFrame, local bool, origin any) {
	if local || f.IsErr() || origin == any(h) || h.closed.Load() {
		return
	}
	n := wire.PutCANFrame(h.wbuf[:], f)
	if _, err := unix.Write(h.fd, h.wbuf[:n]); err != nil {
		h.TxErrors.Add(1)
		return
	}
	h.TxFrames.Add(1)
}

func (h *HostCAN) readLoop() {
	defer close(h.done)
	buf := make([]byte, wire.CANFDMTU)
	var f wire.CANFrame
	for {
		n, err := unix.Read(h.fd, buf)
		if err != nil {
			if h.closed.Load() {
				return
			}
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			return
		}
		if wire.ParseCANFrame(buf[:n], &f) != nil {
			h.RxMalformed.Add(1)
			continue
		}
		h.RxFrames.Add(1)
		if h.node.Send(&f, h, false) != nil {
			h.RxDropped.Add(1)
		}
	}
}

// Close detaches from the host interface.
func (h *HostCAN) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.node.RemoveReceiver(h)
	h.node.SetDown(true)
	// Shutting the socket down wakes the blocked read.
	_ = unix.Shutdown(h.fd, unix.SHUT_RDWR)
	err := unix.Close(h.fd)
	<-h.done
	return err
}
