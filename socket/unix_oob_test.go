package socket

import (
	"bytes"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// TestUnixOOBRights: descriptors sent with a lone out-of-band byte go
// with it: a reader that steps over the byte, or over the place MSG_OOB
// emptied, closes them; one with SO_OOBINLINE receives them.
func TestUnixOOBRights(t *testing.T) {
	n := newNet(t)
	passed := func() int {
		u, err := n.Socket(AF_UNIX, SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Bind(&SockaddrUnix{"@oob-passed"}); err != nil {
			t.Fatalf("the passed socket's name is still bound: %v", err)
		}
		return u.Fileno()
	}
	for _, how := range []string{"skipped", "read out of band", "inline"} {
		a, b, err := n.SocketPair(SOCK_STREAM)
		if err != nil {
			t.Fatal(err)
		}
		if how == "inline" {
			if err := b.SetSockOptInt(SOL_SOCKET, SO_OOBINLINE, 1); err != nil {
				t.Fatal(err)
			}
		}
		fd := passed()
		if _, err := a.SendMsgControl([]byte("z"), unix.UnixRights(fd), MSG_OOB, nil); err != nil {
			t.Fatal(err)
		}
		n.Lookup(fd).Close()
		if _, err := a.Send([]byte("after"), 0); err != nil {
			t.Fatal(err)
		}
		if how == "read out of band" {
			buf := make([]byte, 1)
			if k, err := b.Recv(buf, MSG_OOB); k != 1 || err != nil || buf[0] != 'z' {
				t.Fatalf("%s: MSG_OOB read %d %q %v", how, k, buf, err)
			}
		}
		data, fds, _, _ := recvFDs(t, b, 64, unix.CmsgSpace(4))
		want, wantFDs := "after", 0
		if how == "inline" {
			want, wantFDs = "z", 1
		}
		if string(data) != want || len(fds) != wantFDs {
			t.Fatalf("%s: read %q with %d descriptors, want %q with %d", how, data, len(fds), want, wantFDs)
		}
		for _, fd := range fds {
			n.Lookup(fd).Close()
		}
		if k := n.UnixInflight(); k != 0 {
			t.Fatalf("%s: %d descriptors still in flight", how, k)
		}
		if q, _ := a.Ioctl(SIOCOUTQ, 0); how != "inline" && q != 0 {
			t.Fatalf("%s: the sender is still charged %d bytes", how, q)
		}
		a.Close()
		b.Close()
	}
	passed() // the name is free: every copy was closed
}

// TestUnixOOBBlocking: a blocking MSG_OOB send larger than the send
// buffer waits for the reader and queues its last byte out of band; a
// poller waiting for POLLPRI wakes when it comes.
func TestUnixOOBBlocking(t *testing.T) {
	a, b := streamPair(t)
	if err := a.SetSockOptInt(SOL_SOCKET, SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 10000)
	msg[len(msg)-1] = '!'
	pri := make(chan error, 1)
	go func() {
		fds := []PollFD{{Socket: b, Events: waiter.EventPri}}
		_, err := Poll(fds, 10*time.Second)
		if err == nil && fds[0].Revents&waiter.EventPri == 0 {
			err = syscall.ETIMEDOUT
		}
		pri <- err
	}()
	sent := make(chan error, 1)
	go func() {
		k, err := a.Send(msg, MSG_OOB)
		if err == nil && k != len(msg) {
			err = syscall.EIO
		}
		sent <- err
	}()
	var got []byte
	buf := make([]byte, 3000)
	for len(got) < len(msg)-1 {
		k, err := b.Recv(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := <-pri; err != nil {
		t.Fatalf("poll for POLLPRI: %v", err)
	}
	if !bytes.Equal(got, msg[:len(msg)-1]) {
		t.Fatalf("in-band bytes differ (%d of %d)", len(got), len(msg)-1)
	}
	if m, _ := b.Ioctl(SIOCATMARK, 0); m != 1 {
		t.Fatal("not at the mark after the in-band bytes")
	}
	if k, err := b.Recv(buf, MSG_OOB); k != 1 || err != nil || buf[0] != '!' {
		t.Fatalf("MSG_OOB read %d %q %v", k, buf[:1], err)
	}
	b.SetBlocking(false)
	if _, err := b.Recv(buf, 0); err != syscall.EAGAIN {
		t.Fatalf("read after the byte: %v, want EAGAIN", err)
	}
	if q, _ := a.Ioctl(SIOCOUTQ, 0); q != 0 {
		t.Fatalf("the sender is still charged %d bytes", q)
	}
}

// TestUnixOOBBlockingPeek: a blocking peek on a stream whose only
// content is the place a MSG_OOB read emptied (readable, as Linux's poll
// says, yet nothing to peek) waits for data and returns it.
func TestUnixOOBBlockingPeek(t *testing.T) {
	a, b := streamPair(t)
	if _, err := a.Send([]byte("!"), MSG_OOB); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if k, err := b.Recv(buf, MSG_OOB); k != 1 || err != nil {
		t.Fatalf("MSG_OOB read %d %v", k, err)
	}
	if b.ep.readiness(waiter.EventIn)&waiter.EventIn == 0 {
		t.Fatal("the emptied place does not keep the socket readable")
	}
	got := make(chan string, 1)
	go func() {
		k, err := b.Recv(buf, MSG_PEEK)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:k])
	}()
	// The peek waits (blocked, or about to block): data wakes it.
	if _, err := a.Send([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "data" {
			t.Fatalf("blocking peek gave %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking peek did not return the data")
	}
}

// streamPair is a connected AF_UNIX stream pair, closed at the end.
func streamPair(t *testing.T) (a, b *Socket) {
	t.Helper()
	a, b, err := newNet(t).SocketPair(SOCK_STREAM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
