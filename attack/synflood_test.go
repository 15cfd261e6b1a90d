package attack

import (
	"bytes"
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

// echoOnce accepts one connection on l, reads up to 64 bytes and writes
// them back, then closes it; the result goes to done.
func echoOnce(l *socket.Socket, done chan<- error) {
	c, _, err := l.Accept()
	if err != nil {
		done <- err
		return
	}
	defer c.Close()
	c.SetTimeout(time.Minute)
	b := make([]byte, 64)
	n, err := c.Recv(b, 0)
	if err == nil {
		_, err = c.Send(b[:n], 0)
	}
	done <- err
}

// roundTrip connects from the client, sends msg and expects it back.
func roundTrip(t *testing.T, l *lab, port int, msg string) {
	t.Helper()
	c, err := dialTCP(l.CNet, victimIP.String(), port, time.Minute)
	if err != nil {
		t.Fatalf("legitimate connect: %v", err)
	}
	defer c.Close()
	if _, err := c.Send([]byte(msg), 0); err != nil {
		t.Fatalf("legitimate send: %v", err)
	}
	b := make([]byte, 64)
	n, err := c.Recv(b, 0)
	if err != nil || !bytes.Equal(b[:n], []byte(msg)) {
		t.Fatalf("legitimate echo: %q, %v", b[:n], err)
	}
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
		done := make(chan error, 1)
		go echoOnce(ln, done)
		roundTrip(t, l, 80, "legitimate during the flood")
		if err := <-done; err != nil {
			t.Fatalf("victim side of the legitimate connection: %v", err)
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
		t.Logf("SYN flood: %d SYNs, %d half-open connections held, %d frames reached the attacker's port", total, synRecv, l.A.n.Load())

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
		roundTripAfter(t, l, ln)
	})
}

// roundTripAfter checks the listener still serves once the attack is over.
func roundTripAfter(t *testing.T, l *lab, ln *socket.Socket) {
	t.Helper()
	done := make(chan error, 1)
	go echoOnce(ln, done)
	roundTrip(t, l, 80, "legitimate after the attack")
	if err := <-done; err != nil {
		t.Fatalf("victim side after the attack: %v", err)
	}
}
