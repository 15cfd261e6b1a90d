package netconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// tcpPair returns a connected client (on a) and server (on b) conn.
func tcpPair(t testing.TB, a, b *socket.Net, serverAddr string) (client, server net.Conn) {
	t.Helper()
	l := mustListen(t, b, "tcp", serverAddr)
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	d := Dialer{Net: a, Timeout: 10 * time.Second}
	dst := l.Addr().(*net.TCPAddr).AddrPort()
	if dst.Addr().IsUnspecified() && a != b {
		dst = netip.AddrPortFrom(addrB, dst.Port())
	}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c, r.c
}

func TestTCPEchoAndAddrs(t *testing.T) {
	p := newPair(t)
	c, s := tcpPair(t, p.a, p.b, "10.0.0.2:7")
	if _, ok := c.(*TCPConn); !ok {
		t.Fatalf("Dial returned %T", c)
	}
	if c.RemoteAddr().String() != "10.0.0.2:7" || s.LocalAddr().String() != "10.0.0.2:7" {
		t.Errorf("addrs: client remote %v, server local %v", c.RemoteAddr(), s.LocalAddr())
	}
	if c.LocalAddr().String() != s.RemoteAddr().String() {
		t.Errorf("client local %v != server remote %v", c.LocalAddr(), s.RemoteAddr())
	}
	if _, ok := s.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is %T", s.RemoteAddr())
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q %v", buf, err)
	}
	// CloseWrite: the peer reads io.EOF, and can still answer.
	if err := c.(*TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite: %d %v, want 0 EOF", n, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "pong" {
		t.Fatalf("client ReadAll %q %v", got, err)
	}
	// Options go through to the socket.
	tc := c.(*TCPConn)
	for _, err := range []error{tc.SetNoDelay(false), tc.SetKeepAlive(true), tc.SetKeepAlivePeriod(30 * time.Second),
		tc.SetLinger(5), tc.SetReadBuffer(1 << 16), tc.SetWriteBuffer(1 << 16)} {
		if err != nil {
			t.Errorf("option: %v", err)
		}
	}
	if v, _ := tc.Socket().GetSockOptInt(socket.SOL_TCP, socket.TCP_NODELAY); v != 0 {
		t.Errorf("TCP_NODELAY = %d after SetNoDelay(false)", v)
	}
}

func TestTCPDialRefused(t *testing.T) {
	p := newPair(t)
	_, err := Dial(p.a, "tcp", "10.0.0.2:1")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial closed port: %v, want ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != "tcp" || oe.Addr.String() != "10.0.0.2:1" {
		t.Fatalf("dial error %#v", err)
	}
	var se interface{ Unwrap() error }
	if !errors.As(err, &se) {
		t.Fatalf("no wrapped error in %v", err)
	}
	if want := "dial tcp 10.0.0.2:1: connect: connection refused"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

func TestTCPDialTimeoutAndCancel(t *testing.T) {
	p := newPair(t)
	// 10.0.0.9 never answers ARP, so the SYN never leaves: only the
	// deadline can end the dial.
	d := Dialer{Net: p.a, Timeout: 50 * time.Millisecond}
	_, err := d.Dial("tcp", "10.0.0.9:80")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial timeout: %v, want a net.Error with Timeout()", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial timeout: %v does not match context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&Dialer{Net: p.a}).DialContext(ctx, "tcp", "10.0.0.9:80")
		done <- err
	}()
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled dial: %v, want context.Canceled", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("canceled dial: %v, want OpError dial", err)
	}
}

func TestTCPListenerCloseUnblocksAccept(t *testing.T) {
	n := newHost(t)
	l := mustListen(t, n, "tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	waitBlocked(t, l.(*Listener).Socket())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkClosedErr(t, <-done, "accept")
	_, err := l.Accept()
	checkClosedErr(t, err, "accept")

	// Accept deadline.
	l2 := mustListen(t, n, "tcp", "127.0.0.1:0")
	l2.(*Listener).SetDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = l2.Accept()
	checkDeadlineErr(t, err, "accept")
}

func TestTCPListenErrors(t *testing.T) {
	n := newHost(t)
	l := mustListen(t, n, "tcp", "127.0.0.1:8080")
	_, err := Listen(n, "tcp", "127.0.0.1:8080")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second listen: %v, want OpError listen EADDRINUSE", err)
	}
	if l.Addr().String() != "127.0.0.1:8080" {
		t.Errorf("Addr %v", l.Addr())
	}
}

func TestTCPDeadlinesAndClose(t *testing.T) {
	p := newPair(t)
	c, s := tcpPair(t, p.a, p.b, ":80")
	buf := make([]byte, 10)

	// Past deadline: fails at once, even with data waiting.
	s.Write([]byte("data"))
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Unix(1, 0))
	n, err := c.Read(buf)
	if n != 0 {
		t.Errorf("Read past deadline returned %d bytes", n)
	}
	checkDeadlineErr(t, err, "read")
	c.SetWriteDeadline(time.Unix(1, 0))
	n, err = c.Write([]byte("x"))
	if n != 0 {
		t.Errorf("Write past deadline wrote %d", n)
	}
	checkDeadlineErr(t, err, "write")
	c.SetDeadline(time.Time{})
	if n, err := io.ReadFull(c, buf[:3]); err != nil || string(buf[:n]) != "ata" {
		t.Fatalf("after clearing: %q %v", buf[:n], err)
	}

	// A pending Read is woken by a past deadline.
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	waitBlocked(t, c.(*TCPConn).Socket())
	c.SetReadDeadline(time.Unix(1, 0))
	checkDeadlineErr(t, <-done, "read")
	c.SetReadDeadline(time.Time{})

	// A Write blocked on a full window is woken by a deadline: the
	// server never reads.
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big := make([]byte, 64<<20)
	n, err = c.Write(big)
	checkDeadlineErr(t, err, "write")
	if n >= len(big) {
		t.Errorf("Write past a full window reported %d of %d", n, len(big))
	}
	c.SetWriteDeadline(time.Time{})

	// Close unblocks a pending Read with net.ErrClosed.
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	waitBlocked(t, c.(*TCPConn).Socket())
	c.Close()
	checkClosedErr(t, <-done, "read")
	_, err = c.Write([]byte("x"))
	checkClosedErr(t, err, "write")
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDeadline after Close: %v", err)
	}
}

func TestTCPResetSeenAsErrno(t *testing.T) {
	p := newPair(t)
	c, s := tcpPair(t, p.a, p.b, ":81")
	// Linger 0 makes Close send RST.
	if err := s.(*TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after peer RST: %v, want ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read after RST: %#v", err)
	}
}

func TestTCPIOCopy20MiB(t *testing.T) {
	p := newPair(t)
	c, s := tcpPair(t, p.a, p.b, ":9000")
	const size = 20 << 20
	src := rand.New(rand.NewSource(1))
	want := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, io.TeeReader(io.LimitReader(src, size), want))
		if err == nil {
			err = c.(*TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got := sha256.New()
	n, err := io.Copy(got, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("copied %d bytes, want %d", n, size)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("copied bytes differ")
	}
}

func TestTCPBufioLineProtocol(t *testing.T) {
	n := newHost(t)
	l := mustListen(t, n, "tcp4", "127.0.0.1:0")
	// Server: reads lines "ADD a b" / "QUIT", answers "= sum".
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewScanner(c)
		w := bufio.NewWriter(c)
		for r.Scan() {
			var a, b int
			if r.Text() == "QUIT" {
				fmt.Fprintln(w, "BYE")
				w.Flush()
				return
			}
			if _, err := fmt.Sscanf(r.Text(), "ADD %d %d", &a, &b); err != nil {
				fmt.Fprintln(w, "ERR", err)
			} else {
				fmt.Fprintln(w, "=", a+b)
			}
			w.Flush()
		}
	}()
	c, err := Dial(n, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
	// Pipeline many requests before reading any answer.
	const k = 2000
	for i := 0; i < k; i++ {
		fmt.Fprintf(rw, "ADD %d %d\n", i, 2*i)
	}
	rw.WriteString("QUIT\n")
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < k; i++ {
		line, err := rw.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if want := fmt.Sprintf("= %d\n", 3*i); line != want {
			t.Fatalf("line %d: %q, want %q", i, line, want)
		}
	}
	line, _ := rw.ReadString('\n')
	if strings.TrimSpace(line) != "BYE" {
		t.Fatalf("last line %q", line)
	}
	if _, err := rw.ReadString('\n'); err != io.EOF {
		t.Fatalf("after BYE: %v, want EOF", err)
	}
}
