package conformance

import (
	"strings"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// MSG_OOB on AF_UNIX stream sockets (socket/unix_oob.go), as Linux has
// had it since 5.15 (CONFIG_AF_UNIX_OOB): a send with MSG_OOB queues
// its last byte as the out-of-band byte; a read stops before it and,
// starting on it, skips it (reads it with SO_OOBINLINE); recv with
// MSG_OOB takes it; SIOCATMARK says the next byte read is the mark;
// POLLPRI while one waits; a second replaces the first, which is read
// in line. Datagram and seqpacket sockets answer EOPNOTSUPP.

// unixOOBPoll logs whether s is readable and has priority data now.
func (t *T) unixOOBPoll(step string, s sockapi.Sock) {
	in, pri, _ := pollInPri(s)
	var ev []string
	if in {
		ev = append(ev, "IN")
	}
	if pri {
		ev = append(ev, "PRI")
	}
	t.Logf("%s poll: %s", step, strings.Join(ev, "|"))
}

// unixOOBState logs SIOCATMARK, SIOCINQ and the poll events of s.
func (t *T) unixOOBState(step string, s sockapi.Sock) {
	t.Ioctl(step, s, socket.SIOCATMARK, 0)
	t.Ioctl(step, s, socket.SIOCINQ, 0)
	t.unixOOBPoll(step, s)
}

// unixOOBStream connects a stream pair and sends the pieces in order,
// those starting with "!" (the mark dropped) with MSG_OOB.
func (t *T) unixOOBStream(pieces ...string) (c, s sockapi.Sock) {
	_, c, s = t.unixConn(socket.SOCK_STREAM)
	for _, p := range pieces {
		if oob, ok := strings.CutPrefix(p, "!"); ok {
			t.Send("send oob "+oob, c, []byte(oob), socket.MSG_OOB, nil)
		} else {
			t.Send("send "+p, c, []byte(p), 0, nil)
		}
	}
	return c, s
}

const dw = socket.MSG_DONTWAIT

func unixOOBCases() []Case {
	return []Case{
		{"unixoob/read stops at the mark, then takes the byte", false, func(t *T) {
			_, s := t.unixOOBStream("abc", "!de", "fg")
			t.unixOOBState("queued", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("at the mark", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixOOBState("oob read", s)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read oob again", s, 64, socket.MSG_OOB|dw)
			t.unixOOBState("empty", s)
		}},
		{"unixoob/a read starting on the byte skips it", false, func(t *T) {
			_, s := t.unixOOBStream("ab", "!c", "de")
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
		}},
		{"unixoob/the byte read first, then the data", false, func(t *T) {
			_, s := t.unixOOBStream("ab", "!c", "de")
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixOOBState("oob read", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/peek", false, func(t *T) {
			_, s := t.unixOOBStream("ab", "!c", "de")
			t.unixRecv("peek oob", s, 64, socket.MSG_OOB|socket.MSG_PEEK|dw)
			t.unixRecv("peek oob", s, 64, socket.MSG_OOB|socket.MSG_PEEK|dw)
			t.unixRecv("peek", s, 64, socket.MSG_PEEK|dw)
			t.unixRecv("read", s, 1, dw)
			t.unixRecv("peek", s, 64, socket.MSG_PEEK|dw)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("peek at the mark", s, 64, socket.MSG_PEEK|dw)
			t.unixOOBState("at the mark", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixRecv("peek", s, 64, socket.MSG_PEEK|dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/a second byte replaces the first", false, func(t *T) {
			_, s := t.unixOOBStream("a", "!b", "c", "!d", "e")
			t.unixOOBState("queued", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("1", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("2", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/two bytes back to back", false, func(t *T) {
			_, s := t.unixOOBStream("!a", "!b", "c")
			t.unixOOBState("queued", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/SO_OOBINLINE", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			t.Must("oobinline", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1))
			t.Send("send", c, []byte("ab"), 0, nil)
			t.Send("send oob", c, []byte("c"), socket.MSG_OOB, nil)
			t.Send("send", c, []byte("de"), 0, nil)
			t.unixOOBState("queued", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("at the mark", s)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixRecv("peek", s, 64, socket.MSG_PEEK|dw)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
		}},
		{"unixoob/SO_OOBINLINE set after the byte came", false, func(t *T) {
			_, s := t.unixOOBStream("ab", "!c", "de")
			t.Must("oobinline", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1))
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/SO_OOBINLINE cleared with the byte read in line", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			t.Must("oobinline", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1))
			t.Send("send oob", c, []byte("ab"), socket.MSG_OOB, nil)
			t.Must("oobinline off", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 0))
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
		}},
		{"unixoob/sends that fail", false, func(t *T) {
			_, c, s := t.unixConn(socket.SOCK_STREAM)
			t.Send("empty oob", c, nil, socket.MSG_OOB, nil)
			t.unixRecv("read oob on a buffer of 0", s, 0, socket.MSG_OOB|dw)
			t.Send("one byte", c, []byte("x"), socket.MSG_OOB, nil)
			t.unixRecv("read oob on a buffer of 0", s, 0, socket.MSG_OOB|dw)
			t.unixOOBState("after", s)
			t.Must("shutdown", s.Shutdown(socket.SHUT_RD))
			t.Send("oob to a shut reader", c, []byte("yz"), socket.MSG_OOB|socket.MSG_NOSIGNAL, nil)
			t.Must("close", s.Close())
			t.Send("oob to a closed peer", c, []byte("yz"), socket.MSG_OOB|socket.MSG_NOSIGNAL, nil)
			u := t.Socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
			t.Send("oob unconnected", u, []byte("yz"), socket.MSG_OOB|socket.MSG_NOSIGNAL, nil)
			t.unixRecv("read oob unconnected", u, 64, socket.MSG_OOB|dw)
		}},
		{"unixoob/the peer shuts its writing half", false, func(t *T) {
			c, s := t.unixOOBStream("ab", "!c")
			t.Must("shutdown", c.Shutdown(socket.SHUT_WR))
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.unixRecv("read", s, 64, dw)
		}},
		{"unixoob/SIOCINQ after a skipped byte", false, func(t *T) {
			c, s := t.unixOOBStream("ab", "!c", "de")
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read", s, 64, dw)
			t.Send("send", c, []byte("fg"), 0, nil)
			t.unixOOBState("more", s)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
		}},
		{"unixoob/MSG_WAITALL stops at the mark", false, func(t *T) {
			_, s := t.unixOOBStream("ab", "!c", "de")
			t.unixRecv("read all", s, 4, socket.MSG_WAITALL)
			t.unixRecv("read all", s, 2, socket.MSG_WAITALL)
		}},
		{"unixoob/the sender's SIOCOUTQ", false, func(t *T) {
			c, s := t.unixOOBStream("ab", "!c", "de", "!f")
			t.Ioctl("queued", c, socket.SIOCOUTQ, 0)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.Ioctl("oob read", c, socket.SIOCOUTQ, 0)
			t.unixRecv("read", s, 64, dw)
			t.Ioctl("read", c, socket.SIOCOUTQ, 0)
			t.unixRecv("read", s, 64, dw)
			t.Ioctl("read", c, socket.SIOCOUTQ, 0)
			t.unixRecv("read", s, 64, dw)
			t.Ioctl("read", c, socket.SIOCOUTQ, 0)
		}},
		{"unixoob/an emptied place with another byte pending", false, func(t *T) {
			c, s := t.unixOOBStream("a", "!b")
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
			t.Send("send", c, []byte("c"), 0, nil)
			t.Send("send oob", c, []byte("de"), socket.MSG_OOB, nil)
			t.unixOOBState("queued", s)
			t.unixRecv("peek", s, 64, socket.MSG_PEEK|dw)
			t.unixRecv("read", s, 64, dw)
			t.unixOOBState("after", s)
			t.unixRecv("read", s, 64, dw)
			t.unixRecv("read oob", s, 64, socket.MSG_OOB|dw)
		}},
		{"unixoob/datagram and seqpacket", false, func(t *T) {
			for _, ty := range []int{socket.SOCK_DGRAM, socket.SOCK_SEQPACKET} {
				a, b := t.unixPair(ty)
				t.Send("send oob", a, []byte("x"), socket.MSG_OOB, nil)
				t.Send("send", a, []byte("y"), 0, nil)
				t.unixRecv("read oob", b, 64, socket.MSG_OOB|dw)
				t.unixRecv("read", b, 64, dw)
			}
		}},
	}
}
