package conformance

import (
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// SIOCOUTQ of AF_UNIX sockets against SO_SNDBUF (socket/ioctl.go,
// docs/DECISIONS.md): what a program may rely on: a message counts more
// than its bytes (an empty one too), a socket that can send no more
// reports at least SO_SNDBUF (and less than twice it), and 0 once the
// peer has read everything. Both count the kernel memory of the unread
// messages (socket/unix_mem.go); unix_queue_cases.go compares the
// figures themselves.

// fill sends size-byte messages on s without waiting until it refuses
// one (at most limit sends), and logs how that ended.
func (t *T) fill(step string, s sockapi.Sock, size, limit int) {
	b := make([]byte, size)
	for i := 0; i < limit; i++ {
		if _, err := s.Send(b, socket.MSG_DONTWAIT); err != nil {
			t.Logf("%s: %s", step, ErrName(err))
			return
		}
	}
	t.Logf("%s: still room after %d sends", step, limit)
}

// outqVsSndbuf logs how SIOCOUTQ of s compares with its SO_SNDBUF.
func (t *T) outqVsSndbuf(step string, s sockapi.Sock) {
	q, err := s.Ioctl(socket.SIOCOUTQ, 0)
	if err != nil {
		t.Logf("%s SIOCOUTQ: %s", step, ErrName(err))
		return
	}
	buf, err := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_SNDBUF)
	if err != nil {
		t.Logf("%s SO_SNDBUF: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: SIOCOUTQ at least SO_SNDBUF %v, under twice it %v", step, q >= buf, q < 2*buf)
}

func unixOutqCases() []Case {
	// drain reads s until nothing is left (at most limit reads).
	drain := func(t *T, s sockapi.Sock, limit int) {
		b := make([]byte, 65536)
		for i := 0; i < limit; i++ {
			if _, err := s.Recv(b, socket.MSG_DONTWAIT); err != nil {
				return
			}
		}
	}
	return append([]Case{
		{"ioctl/unix seqpacket SIOCOUTQ and SO_SNDBUF", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_SEQPACKET)
			t.Must("send", c.SendAll([]byte("abcde"), 0))
			q, err := c.Ioctl(socket.SIOCOUTQ, 0)
			t.Logf("one 5-byte message: %s, SIOCOUTQ more than 5 %v", ErrName(err), q > 5)
			t.fill("5-byte messages", c, 5, 100000)
			t.outqVsSndbuf("full", c)
			drain(t, s, 100000)
			t.unixOutq("all read", c)
		}},
		{"ioctl/unix stream SIOCOUTQ and SO_SNDBUF", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			t.fill("4096-byte writes", c, 4096, 10000)
			t.outqVsSndbuf("full", c)
			drain(t, s, 100000)
			t.unixOutq("all read", c)
		}},
		{"ioctl/unix dgram empty datagram SIOCOUTQ", false, func(t *T) {
			r := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			name := unixName()
			t.Must("bind", r.Bind(name))
			w := t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0)
			t.Send("send empty", w, nil, 0, name)
			t.unixOutq("queued", w)
			t.Recv("recv", r, 64, 0)
			t.unixOutq("read", w)
		}},
	}, unixQueueCases()...) // unix_queue_cases.go
}
