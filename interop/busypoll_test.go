package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
)

// TestInteropBusyPoll: reads with SO_BUSY_POLL on an AF_PACKET link to
// the kernel. A 64 MiB TCP transfer from the kernel arrives whole
// (SHA-256) and UDP echoes from a kernel socat come back, while the
// reads themselves take frames from the link (BusyPollStats): the
// frames they deliver go through the same TCP and UDP receive paths as
// the link's goroutine's. The same transfer read by an event loop (a
// Poller and non-blocking reads) arrives whole too, with frames read by
// Poller.Wait's polls or the non-blocking reads' one-pass polls.
func TestInteropBusyPoll(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	// BusyPollSelect is net.core.busy_poll: only the poller subtest
	// calls Poller.Wait.
	h := l.afpacketStackWith(t, link.AFPacketOptions{Offload: true, QdiscBypass: true}, false,
		stack.Options{BusyPollSelect: 200 * time.Microsecond})
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

	// The event loop with SO_BUSY_POLL 0 is the control: no poll at all.
	// With the Poller's own parameters (EPIOCSPARAMS) and the socket's
	// SO_BUSY_POLL still 0, Wait polls and the reads do not, as with
	// Linux's epoll.
	t.Run("tcp_poller_nonblocking_64MiB_sha256", func(t *testing.T) {
		for _, c := range []struct {
			name       string
			busy, port int
			pp         *socket.BusyPollParams
		}{
			{"off", 0, 5513, nil},
			{"busy_poll", 50, 5515, nil},
			{"poller_params", 0, 5517, &socket.BusyPollParams{Usecs: 200, Budget: 8, Prefer: 1}},
		} {
			t.Run(c.name, func(t *testing.T) {
				busy := c.busy
				b0 := bp.BusyPollStats()
				waits, d := eventLoopReceive(t, l, h, c.port, busy, c.pp)
				b1 := bp.BusyPollStats()
				polls, frames := b1.Polls-b0.Polls, b1.Frames-b0.Frames
				once, onceFrames := b1.OncePolls-b0.OncePolls, b1.OnceFrames-b0.OnceFrames
				t.Logf("64 MiB kernel -> sockstack, SO_BUSY_POLL %d, poller parameters %+v: %.2f Gbit/s; %d waits; Poller.Wait: %d polls read %d frames; non-blocking reads: %d polls read %d frames; %d leases ended by the link's goroutine",
					busy, c.pp, gbps(64<<20, d), waits, polls-once, frames-onceFrames, once, onceFrames, b1.Reclaimed-b0.Reclaimed)
				switch {
				case busy == 0 && c.pp == nil && polls != 0:
					t.Errorf("%d polls with SO_BUSY_POLL 0", polls)
				case busy == 0 && once != 0:
					t.Errorf("%d non-blocking reads polled with SO_BUSY_POLL 0", once)
				case c.pp != nil && frames == 0:
					t.Errorf("no frame was read by Poller.Wait's polls with the poller's parameters (%d polls)", polls)
				case busy > 0 && frames == 0:
					// Which of the two reads the frames depends on the
					// pace: a reader slower than the sender (the race
					// detector) always finds data and seldom waits. The
					// unit tests check each path on its own (socket's
					// TestBusyPollSelect and TestBusyPollNonblockingRecv).
					t.Error("no frame was read by the event loop's busy polling")
				}
			})
		}
	})

	t.Run("udp_echo", func(t *testing.T) {
		// The first echo tells the socket its link; the others can be
		// polled for.
		if polls, frames := udpEchoPolled(t, l, h, bp, "10.79.0.1", 5512); frames == 0 {
			t.Errorf("no echo was read by a busy-polling receive (%d polls)", polls)
		}
	})
}

// udpEchoPolled sends 50 datagrams from an unconnected sockstack UDP
// socket with SO_BUSY_POLL to a kernel socat echoing them at kaddr:port
// and checks each echo; it returns the polls and the frames they read
// meanwhile.
func udpEchoPolled(t *testing.T, l *lab, h *host, bp interface{ BusyPollStats() link.BusyPollStats }, kaddr string, port int) (polls, frames uint64) {
	t.Helper()
	l.background(t, "socat", fmt.Sprintf("UDP-RECVFROM:%d,fork,reuseaddr", port), "PIPE")
	l.waitListen(t, "udp", port)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// socat forks for every datagram: the echo takes milliseconds, so
	// the budget covers that.
	if err := s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BUSY_POLL, 200_000); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(10 * time.Second)
	b0 := bp.BusyPollStats()
	to := socket.Inet(kaddr, port)
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
	t.Logf("UDP echoes: %d polls, %d frames read by them, %d calls before the flow's queue was known",
		b1.Polls-b0.Polls, b1.Frames-b0.Frames, b1.FlowMisses-b0.FlowMisses)
	return b1.Polls - b0.Polls, b1.Frames - b0.Frames
}

// TestInteropBusyPollQueues: SO_BUSY_POLL on multi-queue devices, a
// two-queue TAP and two AF_PACKET sockets in a fanout group. The kernel
// picks a flow's queue (the TAP: the queue the flow was last written on;
// fanout: its own hash), so a poll must find the queue its connection's
// frames come in on (the device learns it from the frames it delivers):
// 64 MiB from the kernel arrive whole, and polls read frames; so do
// UDP echoes to an unconnected socket, polled on the queue of its last
// datagram's flow.
func TestInteropBusyPollQueues(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	for _, k := range []struct {
		name         string
		saddr, kaddr string
		open         func() *host
	}{
		{"tap_2q", stackIP.String(), kernelIP.String(), func() *host { return l.startOffloadStackQ(2) }},
		{"afpacket_fanout2", "10.79.0.2", "10.79.0.1", func() *host {
			return l.afpacketStackOpts(t, link.AFPacketOptions{Offload: true, QdiscBypass: true, Queues: 2})
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			h := k.open()
			h.busyPoll = 50 * time.Microsecond
			bp, ok := h.nic.Endpoint().(interface{ BusyPollStats() link.BusyPollStats })
			if !ok {
				t.Fatal("the endpoint cannot be busy-polled")
			}
			const size = 64 << 20
			path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
			b0 := bp.BusyPollStats()
			kernelSendsFile(t, l, h, k.saddr, 5514, path, sum, size)
			b1 := bp.BusyPollStats()
			t.Logf("busy polling: %d polls, %d frames read by them, %d leases ended by a queue's goroutine, %d calls before the flow's queue was known; link %+v",
				b1.Polls-b0.Polls, b1.Frames-b0.Frames, b1.Reclaimed-b0.Reclaimed, b1.FlowMisses-b0.FlowMisses, h.nic.Endpoint().Stats().Snapshot())
			if b1.Frames == b0.Frames {
				t.Error("no frame was read by a busy-polling receive")
			}
			// An unconnected UDP socket: the device's queue for the
			// flow of its last datagram.
			if polls, frames := udpEchoPolled(t, l, h, bp, k.kaddr, 5516); frames == 0 {
				t.Errorf("no echo was read by a busy-polling receive (%d polls)", polls)
			}
		})
	}
}

// eventLoopReceive has the kernel send 64 MiB to port, read by a Poller
// (with the busy polling parameters pp, if not nil) and non-blocking
// reads with SO_BUSY_POLL busy (µs), checked with SHA-256; it returns how many times Wait returned and how long the
// transfer took from the accept. socat writes 8 KiB at a time, which
// bounds the rate (about 2.5 Gbit/s here): the reader waits often, so
// both paths poll many times. It is a test of the paths, not a
// benchmark (with 256 KiB writes the SHA-256 bounds the reader instead,
// and it seldom waits).
func eventLoopReceive(t *testing.T, l *lab, h *host, port, busy int, pp *socket.BusyPollParams) (int, time.Duration) {
	t.Helper()
	const size = 64 << 20
	path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
	ls := listenTCP(t, h, port)
	defer ls.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := startCmd(t, l.cmd(ctx, "socat", "-u", "OPEN:"+path, fmt.Sprintf("TCP:10.79.0.2:%d", port)))
	conn, _, err := ls.Accept()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	defer conn.Close()
	if err := conn.SetSockOptInt(socket.SOL_SOCKET, socket.SO_BUSY_POLL, busy); err != nil {
		t.Fatal(err)
	}
	conn.SetTimeout(0) // non-blocking
	p := socket.NewPoller()
	defer p.Close()
	if pp != nil {
		if err := p.SetBusyPollParams(*pp); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Add(conn, waiter.EventIn, 1); err != nil {
		t.Fatal(err)
	}
	hs := sha256.New()
	buf := make([]byte, 256<<10)
	ev := make([]socket.PollEvent, 1)
	var total int64
	waits := 0
loop:
	for {
		n, err := p.Wait(ev, 10*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("Wait after %d bytes: %d, %v", total, n, err)
		}
		waits++
		for {
			k, err := conn.Recv(buf, 0)
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			if err != nil {
				t.Fatalf("Recv after %d bytes: %v", total, err)
			}
			if k == 0 {
				break loop
			}
			hs.Write(buf[:k])
			total += int64(k)
		}
	}
	d := time.Since(start)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(hs.Sum(nil)); total != size || got != sum {
		t.Fatalf("sockstack received %d bytes, SHA-256 %s; kernel sent %d, %s", total, got, size, sum)
	}
	return waits, d
}
