package socket

import (
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
)

// SO_PEEK_OFF (asm-generic/socket.h): where MSG_PEEK starts reading.
const SO_PEEK_OFF = 42

// peekOff is a socket's SO_PEEK_OFF, as Linux's sk_peek_off: -1 (the
// default) is off; otherwise each MSG_PEEK reads from that many bytes
// into the receive queue and moves it on by what it read, and each read
// moves it back by what it took. Kept by the endpoint adapter, so dup'ed
// descriptors share it as they share the kernel's sock. Stored plus one:
// the zero value is -1.
type peekOff struct{ v atomic.Int64 }

func (p *peekOff) get() int  { return int(p.v.Load() - 1) }
func (p *peekOff) set(v int) { p.v.Store(int64(v) + 1) }

// fwd is sk_peek_offset_fwd: a peek read n bytes.
func (p *peekOff) fwd(n int) {
	for {
		old := p.v.Load()
		if old-1 < 0 || n <= 0 || p.v.CompareAndSwap(old, old+int64(n)) {
			return
		}
	}
}

// bwd is sk_peek_offset_bwd: a read took n bytes.
func (p *peekOff) bwd(n int) {
	for {
		old := p.v.Load()
		if old-1 < 0 || n <= 0 || p.v.CompareAndSwap(old, max(old-int64(n), 1)) {
			return
		}
	}
}

// peekOffset is the socket's SO_PEEK_OFF, nil where Linux has none (raw
// and packet sockets: EOPNOTSUPP). UDP and ping sockets, TCP and AF_UNIX
// have it.
func (s *Socket) peekOffset() *peekOff {
	switch e := s.ep.(type) {
	case *tcpEP:
		return &e.po
	case *dgramEP:
		if !e.raw {
			return &e.po
		}
	case *unixEP:
		return &e.po
	}
	return nil
}

// peekOffOn says a MSG_PEEK on s starts at an offset.
func (s *Socket) peekOffOn() bool {
	p := s.peekOffset()
	return p != nil && p.get() >= 0
}

func (s *Socket) setPeekOff(v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	p := s.peekOffset()
	if p == nil {
		return syscall.EOPNOTSUPP
	}
	p.set(i) // any value: a negative one turns it off
	return nil
}

func (s *Socket) getPeekOff() (any, error) {
	p := s.peekOffset()
	if p == nil {
		return nil, syscall.EOPNOTSUPP
	}
	return p.get(), nil
}

// recvPeekOff is the TCP adapter's recv with SO_PEEK_OFF on.
func (t *tcpEP) recvPeekOff(b []byte, flags, off int) (int, int, Sockaddr, error) {
	if flags&MSG_PEEK != 0 {
		n, err := t.ep.PeekAt(b, off)
		t.po.fwd(n)
		return n, n, nil, err
	}
	n, err := t.ep.Read(b, false)
	t.po.bwd(n)
	return n, n, nil, err
}

// recvFrom reads one datagram (info may be nil), a peek from SO_PEEK_OFF
// when it is on; a read moves the offset back by the whole datagram. A
// non-nil at gets its arrival time (rxstamp.go; 0: none).
func (d *dgramEP) recvFrom(b []byte, flags int, info *stack.PacketInfo, at *int64) (n, full int, from netip.AddrPort, err error) {
	peek := flags&MSG_PEEK != 0
	off := d.po.get()
	if !peek || off < 0 {
		off = -1
	}
	var t int64
	n, full, from, t, err = d.ep.RecvFromAt(b, peek, off, info)
	if off >= 0 {
		d.po.fwd(n)
	}
	if err == nil {
		d.stamp.recvd(t, d.ts.cmsgs(t)) // SIOCGSTAMP (ioctl.go)
		if !peek {
			d.po.bwd(full)
		}
		if at != nil {
			*at = t
		}
	}
	return
}

// credRunAt is the credentials run holding stream position pos (nil:
// none recorded); call with e.mu held.
func (e *unixEP) credRunAt(pos int64) *unixCredRun {
	for i := range e.creds {
		if e.creds[i].end > pos {
			return &e.creds[i]
		}
	}
	return nil
}

// markAt is the first descriptor mark not wholly before pos; call with
// e.mu held.
func (e *unixEP) markAt(pos int64) *unixMark {
	for i := range e.marks {
		if e.marks[i].end > pos {
			return &e.marks[i]
		}
	}
	return nil
}
