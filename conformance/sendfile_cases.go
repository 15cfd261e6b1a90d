package conformance

import (
	"os"
	"strings"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// sendfile(2) with a socket as out_fd (Socket.SendFile): bytes from a
// file at an offset (the offset moved on) or at the file's position
// (the position moved on), to TCP, AF_UNIX and UDP sockets, and the
// errnos of sockets that cannot send.

type fileSender interface {
	SendFile(f *os.File, offset *int64, count int) (int, error)
}

// sendFile logs one sendfile: the count, the offset after it (or the
// file's position when offset is nil), or the error.
func (t *T) sendFile(step string, s sockapi.Sock, f *os.File, offset *int64, count int) {
	v, ok := s.(fileSender)
	if !ok {
		t.Logf("%s: no sendfile on %T", step, s)
		return
	}
	n, err := v.SendFile(f, offset, count)
	where := ""
	if offset != nil {
		where = " offset " + itoaConf(int(*offset))
	} else if pos, e := f.Seek(0, 1); e == nil {
		where = " position " + itoaConf(int(pos))
	}
	if err != nil {
		t.Logf("%s: %s%s", step, ErrName(err), where)
		return
	}
	t.Logf("%s: %d%s", step, n, where)
}

// tempFile is a file holding data, removed after the case.
func (t *T) tempFile(data string) *os.File {
	f, err := os.CreateTemp("", "sockstack-sendfile-")
	if err != nil {
		t.Logf("temp file: %v", err)
		t.Stop()
	}
	os.Remove(f.Name())
	f.WriteString(data)
	f.Seek(0, 0)
	return f
}

func sendfileCases() []Case {
	const data = "0123456789abcdefghij"
	return []Case{
		{"sendfile/tcp with an offset", false, func(t *T) {
			cli, srv := t.Pair()
			f := t.tempFile(data)
			defer f.Close()
			off := int64(5)
			t.sendFile("5 from 5", cli, f, &off, 5)
			t.sendFile("past the end", cli, f, &off, 100)
			t.sendFile("at the end", cli, f, &off, 10)
			t.sendFile("count 0", cli, f, &off, 0)
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Recv("recv", srv, 64, 0)
		}},
		{"sendfile/tcp at the file position", false, func(t *T) {
			cli, srv := t.Pair()
			f := t.tempFile(data)
			defer f.Close()
			f.Seek(3, 0)
			t.sendFile("4", cli, f, nil, 4)
			t.sendFile("rest", cli, f, nil, 1000)
			Settled(cli, 5*time.Second)
			t.Quiesce()
			t.Recv("recv", srv, 64, 0)
		}},
		{"sendfile/tcp larger than the send buffer, blocking", false, func(t *T) {
			cli, srv := t.Pair()
			big := strings.Repeat("x", 3<<20)
			f := t.tempFile(big)
			defer f.Close()
			done := make(chan int, 1)
			go func() {
				total := 0
				b := make([]byte, 1<<16)
				for total < len(big) {
					n, err := srv.Recv(b, 0)
					if err != nil || n == 0 {
						break
					}
					total += n
				}
				done <- total
			}()
			t.sendFile("3 MiB", cli, f, nil, len(big))
			t.Logf("received %d", <-done)
		}},
		{"sendfile/tcp non-blocking, full", false, func(t *T) {
			cli, _ := t.Pair()
			t.Check("SO_SNDBUF", cli.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096))
			big := strings.Repeat("y", 4<<20)
			f := t.tempFile(big)
			defer f.Close()
			cli.SetBlocking(false)
			v, ok := cli.(fileSender)
			if !ok {
				t.Logf("no sendfile")
				return
			}
			// Until the buffers on both sides are full: then EAGAIN, and
			// the position has moved by exactly what was sent.
			sent := 0
			var err error
			for i := 0; i < 10000 && err == nil; i++ {
				var n int
				n, err = v.SendFile(f, nil, len(big))
				sent += n
			}
			pos, _ := f.Seek(0, 1)
			t.Logf("stopped with %s; position matches the bytes sent: %v", ErrName(err), pos == int64(sent))
		}},
		{"sendfile/unconnected and listening tcp", false, func(t *T) {
			f := t.tempFile(data)
			defer f.Close()
			off := int64(0)
			t.sendFile("unconnected", t.TCP(), f, &off, 5)
			l, _ := t.Listener(4)
			t.sendFile("listener", l, f, &off, 5)
		}},
		{"sendfile/udp", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			f := t.tempFile(data)
			defer f.Close()
			off := int64(0)
			t.sendFile("unconnected", a, f, &off, 5)
			t.Check("connect", a.Connect(ba))
			t.sendFile("connected", a, f, &off, 7)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			t.RecvFrom("recv", b, 64, socket.MSG_DONTWAIT)
			t.RecvFrom("recv", b, 64, socket.MSG_DONTWAIT)
		}},
		{"sendfile/udp larger than a page", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			f := t.tempFile(strings.Repeat("z", 70000))
			defer f.Close()
			t.Check("connect", a.Connect(ba))
			for _, n := range []int{5000, 65507, 65508, 70000} {
				off := int64(0)
				t.sendFile("connected "+itoaConf(n), a, f, &off, n)
			}
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			for i := 0; i < 6; i++ {
				t.Recv("recv", b, 1, socket.MSG_DONTWAIT|socket.MSG_TRUNC)
			}
		}},
		{"sendfile/unix stream", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			f := t.tempFile(data)
			defer f.Close()
			off := int64(10)
			t.sendFile("10", c, f, &off, 10)
			t.Recv("recv", s, 64, 0)
		}},
		{"sendfile/bad arguments", false, func(t *T) {
			cli, _ := t.Pair()
			f := t.tempFile(data)
			off := int64(-1)
			t.sendFile("negative offset", cli, f, &off, 5)
			w, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err == nil {
				zero := int64(0)
				t.sendFile("write-only file", cli, w, &zero, 5)
				w.Close()
			}
			f.Close()
			zero := int64(0)
			t.sendFile("closed file", cli, f, &zero, 5)
		}},
	}
}
