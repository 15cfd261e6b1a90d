package interop

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
)

// TestInteropBusyPoll: reads with SO_BUSY_POLL on an AF_PACKET link to
// the kernel. A 64 MiB TCP transfer from the kernel arrives whole
// (SHA-256) and UDP echoes from a kernel socat come back, while the
// reads themselves take frames from the link (BusyPollStats): the
// frames they deliver go through the same TCP and UDP receive paths as
// the link's goroutine's.
func TestInteropBusyPoll(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	h := l.afpacketStackOpts(t, link.AFPacketOptions{Offload: true, QdiscBypass: true})
	h.busyPoll = 50 * time.Microsecond
	bp, ok := h.nic.Endpoint().(interface{ BusyPollStats() link.BusyPollStats })
	if !ok {
		t.Fatal("the AF_PACKET endpoint cannot be busy-polled")
	}

	t.Run("tcp_64MiB_sha256", func(t *testing.T) {
		b0 := bp.BusyPollStats()
		const size = 64 << 20
		path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
		kernelSendsFile(t, l, h, "10.79.0.2", 5511, path, sum, size)
		b1 := bp.BusyPollStats()
		t.Logf("busy polling: %d polls, %d frames read by them, %d leases ended by the link's goroutine; link %+v",
			b1.Polls-b0.Polls, b1.Frames-b0.Frames, b1.Reclaimed-b0.Reclaimed, h.nic.Endpoint().Stats().Snapshot())
		if b1.Frames == b0.Frames {
			t.Error("no frame was read by a busy-polling receive")
		}
	})

	t.Run("udp_echo", func(t *testing.T) {
		l.background(t, "socat", "UDP-RECVFROM:5512,fork,reuseaddr", "PIPE")
		l.waitListen(t, "udp", 5512)
		s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// socat forks for every datagram: the echo takes milliseconds,
		// so the budget covers that.
		if err := s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BUSY_POLL, 200_000); err != nil {
			t.Fatal(err)
		}
		s.SetTimeout(10 * time.Second)
		b0 := bp.BusyPollStats()
		to := socket.Inet("10.79.0.1", 5512)
		buf := make([]byte, 2048)
		const n = 50
		for i := range n {
			msg := []byte(fmt.Sprintf("datagram %d %s", i, bytes.Repeat([]byte{'x'}, i*20)))
			if _, err := s.SendTo(msg, 0, to); err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			k, from, err := s.RecvFrom(buf, 0)
			if err != nil {
				t.Fatalf("echo of datagram %d: %v", i, err)
			}
			if !bytes.Equal(buf[:k], msg) {
				t.Fatalf("echo of datagram %d from %v: %q", i, from, buf[:min(k, 20)])
			}
		}
		b1 := bp.BusyPollStats()
		t.Logf("busy polling: %d polls, %d frames read by them", b1.Polls-b0.Polls, b1.Frames-b0.Frames)
		// The first echo tells the socket its link; the others can be
		// polled for.
		if b1.Frames == b0.Frames {
			t.Error("no echo was read by a busy-polling receive")
		}
	})
}
