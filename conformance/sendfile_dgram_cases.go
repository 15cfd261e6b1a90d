package conformance

import (
	"strings"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// sendfile(2) on datagram sockets at the size limits (socket/sendfile.go):
// a UDP socket sends what the file has as one datagram, however large
// count is, and fails with EMSGSIZE only when the file's bytes outgrow a
// datagram; AF_UNIX datagram and seqpacket sockets get messages of
// 64 KiB (the splice pipe's size) and a shorter last one. (On IPv6,
// Linux leaves the bytes of a count beyond the end of the file corked
// in the socket, unsent, so only IPv4 is compared for that.)

func dgramFileCases() []Case {
	return []Case{
		{"sendfile/udp count beyond the end of the file", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			f := t.tempFile(strings.Repeat("s", 100))
			defer f.Close()
			t.Check("connect", a.Connect(ba))
			for _, n := range []int{4 << 20, 4<<20 + 1, 1 << 30} {
				off := int64(0)
				t.sendFile("count "+itoaConf(n), a, f, &off, n)
			}
			t.sendFile("count 1<<30 at the file position", a, f, nil, 1<<30)
			t.sendFile("again, at the end", a, f, nil, 1<<30)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			for i := 0; i < 5; i++ {
				t.Recv("recv", b, 1, socket.MSG_DONTWAIT|socket.MSG_TRUNC)
			}
		}},
		{"sendfile/udp file beyond a datagram", false, func(t *T) {
			a, b, _, ba := t.UDPPair()
			f := t.tempFile(strings.Repeat("m", 5<<20))
			defer f.Close()
			t.Check("connect", a.Connect(ba))
			for _, n := range []int{65507, 65508, 64 << 10, 64<<10 + 1, 4 << 20, 4<<20 + 1, 1 << 30} {
				off := int64(0)
				t.sendFile("count "+itoaConf(n), a, f, &off, n)
			}
			off := int64(5<<20 - 65507)
			t.sendFile("the last 65507 bytes, count 1<<30", a, f, &off, 1<<30)
			Ready(b, false, 5*time.Second)
			t.Quiesce()
			for i := 0; i < 3; i++ {
				t.Recv("recv", b, 1, socket.MSG_DONTWAIT|socket.MSG_TRUNC)
			}
		}},
		{"sendfile/unix dgram beyond 64 KiB", false, func(t *T) {
			r := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			name := unixName()
			t.Must("bind", r.Bind(name))
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			w.SetTimeout(5 * time.Second)
			t.Check("connect", w.Connect(name))
			small := t.tempFile(strings.Repeat("v", 100))
			defer small.Close()
			off := int64(0)
			t.sendFile("count beyond the end", w, small, &off, 1<<30)
			f := t.tempFile(strings.Repeat("u", 150000))
			defer f.Close()
			off = 0
			t.sendFile("150000", w, f, &off, 150000)
			for i := 0; i < 5; i++ {
				t.Recv("recv", r, 1, socket.MSG_DONTWAIT|socket.MSG_TRUNC)
			}
		}},
		{"sendfile/unix seqpacket beyond 64 KiB", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_SEQPACKET)
			c.SetTimeout(5 * time.Second)
			f := t.tempFile(strings.Repeat("p", 150000))
			defer f.Close()
			off := int64(0)
			t.sendFile("150000", c, f, &off, 150000)
			for i := 0; i < 4; i++ {
				t.Recv("recv", s, 1, socket.MSG_DONTWAIT|socket.MSG_TRUNC)
			}
		}},
	}
}
