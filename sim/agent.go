package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

// allEvents is what an agent listens for.
const allEvents = waiter.EventIn | waiter.EventOut | waiter.EventErr | waiter.EventHUp | waiter.EventRdHUp

// conn binds a TCP endpoint to an event-driven handler: readiness
// notifications schedule the handler as an event (never run it inside
// the notifier, which holds TCP's locks).
type conn struct {
	s       *Sim
	h       *Host
	gen     uint64
	ep      *tcp.Endpoint
	ent     waiter.Entry
	pending bool
	closed  bool
	handler func(c *conn)
	flow    *Flow
	// protocol state of the handler
	hash           hash.Hash
	sent, recvd    uint64
	shut           bool
	stage          int
	need, respLeft uint64
	reqStart       int64
	hdr            []byte
	done           int
}

func (h *Host) watch(ep *tcp.Endpoint, fn func(c *conn)) *conn {
	c := &conn{s: h.s, h: h, gen: h.gen, ep: ep, handler: fn}
	c.ent.Fn = c.wake
	ep.Waiter().Register(&c.ent, allEvents)
	return c
}

func (c *conn) wake(waiter.EventMask) {
	if !c.pending {
		c.pending = true
		c.s.schedule(0, c, 0, nil)
	}
}

func (c *conn) fire(uint64, *packet) {
	c.pending = false
	if c.closed || c.h.gen != c.gen {
		return
	}
	c.handler(c)
}

// close releases the endpoint and stops the handler.
func (c *conn) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.ep.Waiter().Unregister(&c.ent)
	c.ep.Close()
}

// pattern is the byte stream a flow sends: a seeded block of a prime
// length, so a misplaced segment changes the hash.
func (s *Sim) pattern() []byte {
	if s.pat == nil {
		r := s.Rand("pattern")
		s.pat = make([]byte, 65521)
		for i := 0; i < len(s.pat); i += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && i+k < len(s.pat); k++ {
				s.pat[i+k] = byte(v >> (8 * k))
			}
		}
	}
	return s.pat
}

// writeStream writes the flow pattern from offset c.sent up to total.
func (c *conn) writeStream(total uint64) error {
	pat := c.s.pattern()
	for c.sent < total {
		off := c.sent % uint64(len(pat))
		chunk := pat[off:]
		if rem := total - c.sent; uint64(len(chunk)) > rem {
			chunk = chunk[:rem]
		}
		n, err := c.ep.Write(chunk)
		if n > 0 {
			if c.hash != nil {
				c.hash.Write(chunk[:n])
			}
			c.sent += uint64(n)
		}
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return nil
			}
			return err
		}
	}
	return nil
}

// readAll reads what is queued; eof reports the peer's FIN.
func (c *conn) readAll(sink func([]byte)) (eof bool, err error) {
	buf := c.s.scratch()
	for {
		n, err := c.ep.Read(buf, false)
		if n > 0 {
			c.recvd += uint64(n)
			if sink != nil {
				sink(buf[:n])
			}
			continue
		}
		if err == nil {
			return true, nil
		}
		if errors.Is(err, syscall.EAGAIN) {
			return false, nil
		}
		return false, err
	}
}

func (s *Sim) scratch() []byte {
	if s.buf == nil {
		s.buf = make([]byte, 64<<10)
	}
	return s.buf
}

// Listen starts a TCP server on the host; accept hands each new
// connection to serve. It is started again after a restart. A host with
// IPv6 addresses listens on [::] (IPV6_V6ONLY) too.
func (h *Host) Listen(port uint16, serve func(c *conn)) error {
	v6 := h.AddrOf(6).IsValid()
	start := func() error {
		if err := h.listen(netip.IPv4Unspecified(), port, serve); err != nil {
			return err
		}
		if v6 {
			return h.listen(netip.IPv6Unspecified(), port, serve)
		}
		return nil
	}
	h.onRestart = append(h.onRestart, func() { start() })
	return start()
}

func (h *Host) listen(wild netip.Addr, port uint16, serve func(c *conn)) error {
	ep := h.Stack.TCP.NewEndpoint()
	ep.SetReuseAddr(true)
	if wild.Is6() {
		ep.SetInet6()
		ep.SetV6Only(true)
	}
	if err := ep.Bind(netip.AddrPortFrom(wild, port)); err != nil {
		return err
	}
	if err := ep.Listen(4096); err != nil {
		return err
	}
	h.watch(ep, func(l *conn) {
		for {
			ep2, _, err := l.ep.Accept()
			if err != nil {
				return
			}
			c := h.watch(ep2, serve)
			c.wake(0)
		}
	})
	return nil
}

// Dial opens a TCP connection from h; fn runs on every readiness change.
func (h *Host) Dial(to netip.AddrPort, cc string, fn func(c *conn)) (*conn, error) {
	ep := h.Stack.TCP.NewEndpoint()
	if to.Addr().Is6() {
		ep.SetInet6()
	}
	if cc != "" {
		if err := ep.SetCongestion(cc); err != nil {
			return nil, err
		}
	}
	c := h.watch(ep, fn)
	if err := ep.Connect(to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		c.close()
		return nil, err
	}
	return c, nil
}

// established reports the connection is up, or fails it.
func (c *conn) established() (bool, error) {
	switch c.ep.State() {
	case tcp.StateSynSent, tcp.StateSynRcvd:
		return false, nil
	case tcp.StateClosed:
		if err := c.ep.SoError(); err != nil {
			return false, err
		}
		return false, syscall.ECONNABORTED
	}
	return true, nil
}

func (f *Flow) fail(now time.Duration, err error) {
	if f.Err == "" && !f.Completed {
		f.Err = err.Error()
		f.End = now
	}
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func newHash() hash.Hash { return sha256.New() }
