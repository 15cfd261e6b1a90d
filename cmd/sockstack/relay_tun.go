package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's side of the TUN carries packets only some time after the
// relay opened it. Opening a TUN turns its carrier on, but the kernel
// swaps the device's real queueing discipline in (dev_activate) later,
// from its link-watch work, which waits for the RTNL lock; until then
// every packet routed into the TUN meets the no-op discipline and is
// dropped (counted in the link's TX dropped, reason QDISC_DROP). A
// client's first packets after the relay started, or restarted on the
// same TUN, were so lost: a ping's first echo now and then (the flake of
// TestInteropRelayICMP; more often while other work holds the RTNL
// lock, as namespaces being deleted do). The same work sets the link's
// operational state (RFC 2863) from the carrier before it activates the
// discipline, and announces the change (RTM_NEWLINK) after: the relay
// says it runs once the link is up in that sense.

// tunReadyWait bounds the wait: past it the relay runs anyway and says so.
const tunReadyWait = 10 * time.Second

// waitTUNReady waits until the kernel has activated the TUN name in
// namespace netns (its operational state is up), at most d. It reports
// whether it had to wait (the carrier change was still pending), and an
// error when the state could not be learnt or did not come in time.
func waitTUNReady(name, netns string, d time.Duration) (waited bool, err error) {
	return waitOperState(name, netns, true, d)
}

// waitOperState waits until the operational state of link name in
// netns is up (or, with up false, is not), at most d; a link set down
// by the administrator has nothing to wait for. It reports whether the
// first answer was not yet the state wanted.
func waitOperState(name, netns string, want bool, d time.Duration) (waited bool, err error) {
	var fd int
	var index int
	err = inNetns(netns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		index = ifi.Index
		// Subscribed before asking: an announcement between the
		// answer and the first read is not missed.
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	// RTM_GETLINK for the index.
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:12], 1)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(index))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, err
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 1<<16)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return waited, fmt.Errorf("the kernel has not brought %s %s within %v", name, upDown(want), d)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				return waited, fmt.Errorf("the kernel has not brought %s %s within %v", name, upDown(want), d)
			}
			return waited, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			up, adminUp, ok := linkOperUp(m, index)
			if !ok {
				continue
			}
			if up == want || !adminUp {
				// Down by the administrator: nothing to wait for
				// (the kernel activates it when it is set up).
				return waited, nil
			}
			waited = true
		}
	}
}

// linkOperUp reads an RTM_NEWLINK message about index: whether its
// operational state is up, and whether the link is set up (IFF_UP).
func linkOperUp(m syscall.NetlinkMessage, index int) (up, adminUp, ok bool) {
	if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
		return false, false, false
	}
	if int(int32(binary.NativeEndian.Uint32(m.Data[4:8]))) != index {
		return false, false, false
	}
	flags := binary.NativeEndian.Uint32(m.Data[8:12])
	attrs, err := syscall.ParseNetlinkRouteAttr(&m)
	if err != nil {
		return false, false, false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_OPERSTATE && len(a.Value) >= 1 {
			return a.Value[0] == ifOperUp, flags&unix.IFF_UP != 0, true
		}
	}
	return false, flags&unix.IFF_UP != 0, true
}

// ifOperUp is IF_OPER_UP (linux/if.h: RFC 2863's up).
const ifOperUp = 6

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
