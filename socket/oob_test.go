package socket_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// oobAPI is one side of the differential test: sockets plus the two
// calls sockapi.Sock does not have (SIOCATMARK, poll for POLLPRI).
type oobAPI struct {
	api     sockapi.API
	atMark  func(s sockapi.Sock) string
	waitPri func(s sockapi.Sock) bool
	// recvOOB is recvmsg with MSG_OOB, with the flags the kernel
	// returns (hostsock drops them on stream sockets).
	recvOOB func(s sockapi.Sock, b []byte, flags int) (int, int, error)
}

func errStr(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// oobScript plays urgent data over loopback and returns the transcript.
func oobScript(t *testing.T, a oobAPI) []string {
	var out []string
	log := func(f string, v ...any) { out = append(out, fmt.Sprintf(f, v...)) }
	sock := func() sockapi.Sock {
		s, err := a.api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	l := sock()
	if err := l.Bind(socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0))); err != nil {
		t.Fatal(err)
	}
	l.Listen(4)
	la, _ := l.GetSockName()
	c := sock()
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(5 * time.Second)
	b := make([]byte, 64)
	recv := func(what string, flags int) {
		var n, rf int
		var err error
		if flags&socket.MSG_OOB != 0 {
			n, rf, err = a.recvOOB(s, b, flags)
		} else {
			n, _, _, err = s.RecvMsg(b, flags)
		}
		log("%s: %q oob=%v trunc=%v %s", what, b[:max(n, 0)], rf&socket.MSG_OOB != 0, rf&socket.MSG_TRUNC != 0, errStr(err))
	}
	_, _, err = a.recvOOB(l, b, socket.MSG_OOB)
	log("listener MSG_OOB: %s", errStr(err))
	log("listener atmark: %s", a.atMark(l))
	recv("MSG_OOB, none", socket.MSG_OOB)
	log("atmark: %s", a.atMark(s))

	c.Send([]byte("ab"), 0)
	c.Send([]byte("c"), socket.MSG_OOB)
	c.Send([]byte("de"), 0)
	log("POLLPRI: %v", a.waitPri(s))
	recv("read", 0)
	log("atmark: %s", a.atMark(s))
	recv("MSG_OOB|MSG_PEEK", socket.MSG_OOB|socket.MSG_PEEK)
	recv("MSG_OOB", socket.MSG_OOB)
	recv("MSG_OOB again", socket.MSG_OOB)
	recv("read", 0)
	log("atmark: %s", a.atMark(s))

	// SO_OOBINLINE: the byte stays in the stream.
	log("SO_OOBINLINE: %s", errStr(s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)))
	c.Send([]byte("fg"), 0)
	c.Send([]byte("h"), socket.MSG_OOB)
	log("POLLPRI: %v", a.waitPri(s))
	recv("read", 0)
	log("atmark: %s", a.atMark(s))
	recv("MSG_OOB inline", socket.MSG_OOB)
	recv("read", 0)
	log("atmark: %s", a.atMark(s))

	// Out of band again, read with an empty buffer: MSG_TRUNC.
	s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 0)
	c.Send([]byte("i"), socket.MSG_OOB)
	log("POLLPRI: %v", a.waitPri(s))
	n, rf, err := a.recvOOB(s, b[:0], socket.MSG_OOB)
	log("MSG_OOB empty buffer: %d oob=%v trunc=%v %s", n, rf&socket.MSG_OOB != 0, rf&socket.MSG_TRUNC != 0, errStr(err))
	recv("MSG_OOB after", socket.MSG_OOB)
	c.Send([]byte("j"), 0)
	recv("read", 0)
	return out
}

// TestOOBAgainstLinux runs the same urgent-data script on the kernel's
// loopback and on sockstack's and compares the transcripts.
func TestOOBAgainstLinux(t *testing.T) {
	host := oobAPI{
		api: sockapi.Host(),
		atMark: func(s sockapi.Sock) string {
			v, err := unix.IoctlGetInt(s.Fileno(), unix.SIOCATMARK)
			if err != nil {
				return errStr(err)
			}
			return fmt.Sprint(v)
		},
		waitPri: func(s sockapi.Sock) bool {
			fds := []unix.PollFd{{Fd: int32(s.Fileno()), Events: unix.POLLPRI}}
			n, err := unix.Poll(fds, 5000)
			return err == nil && n == 1 && fds[0].Revents&unix.POLLPRI != 0
		},
		recvOOB: func(s sockapi.Sock, b []byte, flags int) (int, int, error) {
			n, _, rf, _, err := unix.Recvmsg(s.Fileno(), b, nil, flags)
			return n, rf, err
		},
	}
	st := stack.New(stack.Options{})
	defer st.Close()
	stk := oobAPI{
		api: sockapi.Stack(socket.New(st)),
		atMark: func(s sockapi.Sock) string {
			m, err := s.(sockapi.StackSock).AtMark()
			if err != nil {
				return errStr(err)
			}
			if m {
				return "1"
			}
			return "0"
		},
		waitPri: func(s sockapi.Sock) bool {
			fds := []socket.PollFD{{Socket: s.(sockapi.StackSock).Socket, Events: waiter.EventPri}}
			n, err := socket.Poll(fds, 5*time.Second)
			return err == nil && n == 1 && fds[0].Revents&waiter.EventPri != 0
		},
		recvOOB: func(s sockapi.Sock, b []byte, flags int) (int, int, error) {
			n, rf, _, err := s.RecvMsg(b, flags)
			return n, rf, err
		},
	}
	linux := oobScript(t, host)
	ours := oobScript(t, stk)
	if strings.Join(linux, "\n") != strings.Join(ours, "\n") {
		var d []string
		for i := range max(len(linux), len(ours)) {
			l, o := "", ""
			if i < len(linux) {
				l = linux[i]
			}
			if i < len(ours) {
				o = ours[i]
			}
			mark := "  "
			if l != o {
				mark = "! "
			}
			d = append(d, fmt.Sprintf("%slinux: %-50s sockstack: %s", mark, l, o))
		}
		t.Fatalf("urgent data differs from Linux:\n%s", strings.Join(d, "\n"))
	}
	t.Logf("agrees with Linux:\n%s", strings.Join(linux, "\n"))
}
