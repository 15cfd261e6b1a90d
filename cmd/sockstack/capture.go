package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
)

// capture reads every frame an interface of the kernel sends and
// receives, as tcpdump -i does: an AF_PACKET socket for all protocols,
// whose address tells the direction (PACKET_OUTGOING: sent by this host).
type capture struct {
	fd       int
	loopback bool
}

// openCapture opens the socket inside netns ("" for ours).
func openCapture(iface, netns string) (*capture, error) {
	c := &capture{fd: -1}
	err := inNetns(netns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("no interface %s", iface)
		}
		c.loopback = ifi.Flags&net.FlagLoopback != 0
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return fmt.Errorf("AF_PACKET socket: %v (capturing needs root or CAP_NET_RAW, e.g. sudo setcap cap_net_raw+ep ./sockstack)", err)
			}
			return fmt.Errorf("AF_PACKET socket: %v", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind AF_PACKET to %s: %v", iface, err)
		}
		// A bounded wait, so the reader sees ctx end.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) Close() error { return unix.Close(c.fd) }

// run hands each frame to fn with its direction until ctx ends.
func (c *capture) run(ctx context.Context, fn func(dir link.Direction, frame []byte)) error {
	buf := make([]byte, 65536+64)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		n = min(n, len(buf))
		dir := link.In
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			// On loopback every packet also comes back in: show it once,
			// as libpcap does.
			if c.loopback {
				continue
			}
			dir = link.Out
		}
		fn(dir, buf[:n])
	}
	return nil
}
