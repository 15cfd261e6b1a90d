package attack

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// listenTCP opens a listener on the victim at 0.0.0.0:port.
func listenTCP(t *testing.T, n *socket.Net, port, backlog int) *socket.Socket {
	t.Helper()
	s, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	must(t, err)
	must(t, s.Bind(socket.Inet("0.0.0.0", port)))
	must(t, s.Listen(backlog))
	t.Cleanup(func() { s.Close() })
	return s
}

// dialTCP connects from n to addr:port with a timeout.
func dialTCP(n *socket.Net, addr string, port int, timeout time.Duration) (*socket.Socket, error) {
	s, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	s.SetTimeout(timeout)
	if err := s.Connect(socket.Inet(addr, port)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// tryRoundTrip connects from the client, sends msg and expects it back.
func tryRoundTrip(l *lab, port int, msg string) error {
	c, err := dialTCP(l.CNet, victimIP.String(), port, time.Minute)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	if _, err := c.Send([]byte(msg), 0); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	b := make([]byte, 64)
	n, err := c.Recv(b, 0)
	if err != nil || !bytes.Equal(b[:n], []byte(msg)) {
		return fmt.Errorf("echo %q: %v", b[:n], err)
	}
	return nil
}

// serveEcho echoes one read on every connection ln accepts, until ln closes.
func serveEcho(ln *socket.Socket) {
	for {
		c, _, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetTimeout(time.Minute)
			b := make([]byte, 64)
			if n, err := c.Recv(b, 0); err == nil {
				c.Send(b[:n], 0)
			}
		}()
	}
}

// legitimate is a client that wants an answer: it retries a connection
// that failed, as applications do, up to three times; it returns how many
// attempts it took (0: none succeeded).
func legitimate(t *testing.T, l *lab, port int, msg string) int {
	t.Helper()
	for i := 1; i <= 3; i++ {
		err := tryRoundTrip(l, port, msg)
		if err == nil {
			return i
		}
		t.Logf("%s: attempt %d: %v", msg, i, err)
	}
	return 0
}

// TestSYNFlood: 100,000 SYNs from spoofed sources at a listener with a
// backlog of 128. The SYN queue fills, SYN cookies answer the rest
// without state, and a legitimate client connects in the middle of the
// flood. The victim's heap must not grow with the number of SYNs.
func TestSYNFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{TCP: tcp.Config{Seed: []byte("attack")}})
		const backlog = 128
		ln := listenTCP(t, l.VNet, 80, backlog)
		total := scaled(100_000, 2)
		m := begin(t, "SYN flood", l.V)

		half := make(chan struct{})
		flooded := make(chan struct{})
		go func() {
			defer close(flooded)
			dst := netip.AddrPortFrom(victimIP, 80)
			batch := make([][]byte, 0, 64)
			for i := 0; i < total; i++ {
				h := wire.TCPHeader{Seq: uint32(i) * 2654435761, Flags: wire.TCPFlagSYN, Window: 64240,
					Options: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true,
						HasTS: true, TSVal: uint32(i)}}
				batch = append(batch, tcpFrame(spoofed(i), dst, h, nil))
				if len(batch) == cap(batch) || i == total-1 {
					l.A.send(batch...)
					batch = batch[:0]
				}
				if i == total/2 {
					close(half)
				}
			}
		}()
		<-half
		// On failure, what both hosts counted says why.
		c0 := snap(l.C)
		defer func() {
			if t.Failed() {
				t.Logf("victim: %v", snap(l.V).since(m.c0))
				t.Logf("client: %v", snap(l.C).since(c0))
			}
		}()
		go serveEcho(ln)
		// The client's frames queue behind the flood at the victim's port,
		// and a full queue drops them. When its handshake ACK and first
		// data are both lost, its next pure ACK carries a sequence number
		// past the data and fails the cookie check (the cookie encodes
		// ISN+1): it is dropped, and the client's retransmission from
		// ISN+1 passes (Linux would reset it).
		during := legitimate(t, l, 80, "legitimate during the flood")
		if during == 0 {
			t.Fatalf("a legitimate client failed three times during the flood")
		}
		<-flooded
		synctest.Wait()
		synRecv := 0
		for _, c := range l.V.TCP.Table() {
			if c.State == tcp.StateSynRcvd {
				synRecv++
			}
		}
		m.end()
		t.Logf("SYN flood: %d SYNs, %d half-open connections held, %d frames reached the attacker's port; the legitimate client needed %d attempt(s)",
			total, synRecv, l.A.n.Load(), during)

		if got := m.moved.get("TCP.SynCookiesSent"); got < uint64(total)/2 {
			t.Errorf("SynCookiesSent = %d for %d SYNs with a backlog of %d: cookies not used", got, total, backlog)
		}
		if synRecv > backlog {
			t.Errorf("%d half-open connections held, backlog %d", synRecv, backlog)
		}
		// Without cookies the flood would hold an endpoint per SYN; with
		// them only the backlog's worth of half-open connections is held.
		if g := m.grew(); g > 4<<20 {
			t.Errorf("victim heap grew by %d bytes after %d SYNs (bound 4 MiB)", g, total)
		}
		// Nothing else of the victim's is left in the queue after the
		// SYN-ACK retries run out.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		for _, c := range l.V.TCP.Table() {
			if c.State == tcp.StateSynRcvd {
				t.Fatalf("half-open connection %v still held after the SYN-ACK retries", c.Remote)
			}
		}
		if legitimate(t, l, 80, "legitimate after the flood") != 1 {
			t.Errorf("a legitimate client needed more than one attempt after the flood")
		}
	})
}
