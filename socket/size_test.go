package socket

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/sockstack/sockstack/stack"
)

// A Socket is part of the memory of every idle connection (issue 10): 96
// bytes is its Go size class. Rarely used state (deadlines, stored
// options, the Dup reference count) lives in sockExtra, made on first
// use, so a field added here must not push it to the next class.
func TestSocketSize(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 96 {
		t.Fatalf("Socket is %d bytes, over 96", n)
	}
}

// A TCP socket's tcpEP is part of every connection too: 48 bytes is its
// size class. SIOCGSTAMP's record, which an error-queue read or the
// request alone sets, is made on first use for that reason.
func TestTCPEPSize(t *testing.T) {
	if n := unsafe.Sizeof(tcpEP{}); n > 48 {
		t.Fatalf("tcpEP is %d bytes, over 48", n)
	}
}

// A blocking connect waits on the socket's cancel channel; once it
// returns, the idle socket must not keep the channel (112 bytes per
// dialed connection), and a later blocking call still wakes on Close.
func TestIdleSocketDropsCancelChan(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	l := mustSocket(t, p.b, AF_INET, SOCK_STREAM, 0)
	if err := l.Bind(ap(addrB, 5003)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	c := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := c.Connect(ap(addrB, 5003)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	held, n := c.cancel, c.nwait.Load()
	c.mu.Unlock()
	if held != nil || n != 0 {
		t.Fatalf("after connect: cancel channel %v, %d holders; want none", held, n)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Recv(make([]byte, 1), 0)
		done <- err
	}()
	// Wait until the reader holds the channel, then close under it.
	for {
		c.mu.Lock()
		n = c.nwait.Load()
		c.mu.Unlock()
		if n > 0 {
			break
		}
		runtime.Gosched()
	}
	c.Close()
	if err := <-done; !errors.Is(err, syscall.EBADF) {
		t.Fatalf("recv blocked across close: %v, want EBADF", err)
	}
}
