package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// PacketConn is the part of a datagram socket a transfer uses: both
// *socket.Socket and sockapi.Sock (the host kernel's sockets too) have it,
// so one client serves sockstack and the kernel.
type PacketConn interface {
	SendTo(b []byte, flags int, a socket.Sockaddr) (int, error)
	RecvFrom(b []byte, flags int) (int, socket.Sockaddr, error)
	SetTimeout(d time.Duration)
	Close() error
}

// conn is one transfer's lock-step exchange on its own socket (its TID).
type conn struct {
	so      PacketConn
	peer    netip.AddrPort // the other side's TID once known
	locked  bool           // peer is known (the client learns it from the first answer)
	sendTo  netip.AddrPort // where last goes before locked (the server's port 69)
	timeout time.Duration
	retries int
	blksize int // negotiated block size
	// dallyFactor is how many timeouts of silence end the wait after the
	// final ACK: the server lingers longer (in the background) than a
	// client, whose caller waits.
	dallyFactor int
	buf         []byte // receive buffer
	last        []byte // the packet to retransmit on timeout
	out         []byte // scratch for building packets

	progress func(done int64)
	done     int64

	// Counters (for tests and logs).
	retransmits int
	dupACKs     int
	dupDATA     int
	strays      int
}

// ErrTimedOut ends a transfer whose peer stayed silent through every
// retransmission.
var ErrTimedOut = errors.New("tftp: timed out")

var errTimedOut = ErrTimedOut

func newConn(so PacketConn, timeout time.Duration, retries int) *conn {
	return &conn{so: so, timeout: timeout, retries: retries, blksize: DefaultBlksize, dallyFactor: 2, buf: make([]byte, MaxBlksize+4+1)}
}

func (c *conn) to() socket.Sockaddr {
	if c.locked {
		return socket.InetAddr(c.peer)
	}
	return socket.InetAddr(c.sendTo)
}

// send sends p and remembers it for retransmission.
func (c *conn) send(p []byte) error {
	c.last = p
	_, err := c.so.SendTo(p, 0, c.to())
	return err
}

// sendError tells the peer why we stop, and returns the same error.
func (c *conn) sendError(code uint16, msg string) error {
	p := appendError(nil, code, msg)
	c.so.SendTo(p, 0, c.to())
	return &Error{Code: code, Msg: msg}
}

// verdict of a packet handed to an exchange's handler.
type verdict int

const (
	accept verdict = iota // the awaited packet: the exchange is done
	ignore                // keep waiting (the timer keeps running)
	resend                // send the last packet again, keep waiting
)

// exchange sends the last packet (already set with send) and waits for a
// packet the handler accepts, retransmitting on timeout up to retries
// times. ERROR packets from the peer end it with that error. The
// handler may return an error to abort.
func (c *conn) exchange(handle func(op uint16, p []byte) (verdict, error)) error {
	tries := 0
	deadline := time.Now().Add(c.timeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			if tries >= c.retries {
				return errTimedOut
			}
			tries++
			c.retransmits++
			if _, err := c.so.SendTo(c.last, 0, c.to()); err != nil && !transient(err) {
				return err
			}
			deadline = time.Now().Add(c.timeout)
			continue
		}
		c.so.SetTimeout(wait)
		k, from, err := c.so.RecvFrom(c.buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || transient(err) {
				continue // timed out (handled at the top) or an ICMP error
			}
			return err
		}
		fa, ok := from.(*socket.SockaddrInet)
		if !ok {
			continue
		}
		if !c.locked {
			// The first answer names the other side's TID; it must come
			// from the host we asked.
			if fa.AddrPort.Addr() != c.sendTo.Addr() {
				c.strays++
				continue
			}
			c.peer, c.locked = fa.AddrPort, true
		} else if fa.AddrPort != c.peer {
			// RFC 1350: a packet from a wrong TID gets error 5, and the
			// transfer goes on.
			c.strays++
			c.so.SendTo(appendError(c.out[:0], ErrUnknownTID, "unknown transfer ID"), 0, from)
			continue
		}
		p := c.buf[:k]
		if k < 2 {
			continue
		}
		op := binary.BigEndian.Uint16(p)
		if op == opERROR {
			return parseError(p)
		}
		v, err := handle(op, p)
		if err != nil {
			return err
		}
		switch v {
		case accept:
			return nil
		case resend:
			if _, err := c.so.SendTo(c.last, 0, c.to()); err != nil && !transient(err) {
				return err
			}
		}
	}
}

// transient errors are ICMP reports queued on the socket (the peer may
// be briefly unreachable); the retransmission logic copes with them.
func transient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ENOBUFS)
}

// sendData sends r as DATA blocks of blksize, starting at block 1, each
// sent again on timeout until its ACK comes. A duplicate ACK of an
// earlier block is ignored, not answered, which is what prevents the
// Sorcerer's Apprentice syndrome (RFC 1123 4.2.3.1). Block numbers wrap
// from 65535 to 0.
func (c *conn) sendData(r io.Reader) error {
	blksize := c.blksize
	data := make([]byte, 4+blksize)
	block := uint16(1)
	for {
		k, err := io.ReadFull(r, data[4:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return c.sendError(ErrUndefined, "read error")
		}
		binary.BigEndian.PutUint16(data, opDATA)
		binary.BigEndian.PutUint16(data[2:], block)
		if err := c.send(data[:4+k]); err != nil {
			return err
		}
		want := block
		err = c.exchange(func(op uint16, p []byte) (verdict, error) {
			switch op {
			case opACK:
				if len(p) < 4 {
					return ignore, nil
				}
				if binary.BigEndian.Uint16(p[2:]) == want {
					return accept, nil
				}
				c.dupACKs++
				return ignore, nil
			case opOACK:
				return ignore, nil // a late duplicate of the request's answer
			}
			return ignore, c.sendError(ErrIllegalOp, "unexpected packet")
		})
		if err != nil {
			return err
		}
		c.done += int64(k)
		if c.progress != nil {
			c.progress(c.done)
		}
		if k < blksize {
			return nil
		}
		block++
	}
}

// recvData receives DATA blocks from block 1 into w, acknowledging each;
// the first packet to send (an ACK 0, an OACK or a request) must already
// be set with send. A duplicate of the previous block is acknowledged
// again (its ACK was lost). After the last block it dallies for one
// timeout so a lost final ACK can be resent. limit bounds the bytes
// accepted (0: none). first, when not nil, handles packets other than
// DATA until block 1 came (the client's answer to an OACK); it returns
// errOACKDone after it has sent the ACK 0 itself, and may change
// c.blksize. finish, when not nil, runs after the last block is written
// and before it is acknowledged.
func (c *conn) recvData(w io.Writer, limit int64, first func(op uint16, p []byte) (verdict, error), finish func() error) error {
	expect := uint16(1)
	ack := make([]byte, 0, 4)
	var payload []byte
	for {
		err := c.exchange(func(op uint16, p []byte) (verdict, error) {
			if op != opDATA {
				if first != nil {
					return first(op, p)
				}
				if op == opOACK && expect == 1 {
					return resend, nil // our ACK 0 to the OACK was lost
				}
				return ignore, c.sendError(ErrIllegalOp, "unexpected packet")
			}
			if len(p) < 4 {
				return ignore, nil
			}
			n := binary.BigEndian.Uint16(p[2:])
			switch n {
			case expect:
				if len(p)-4 > c.blksize {
					return ignore, c.sendError(ErrIllegalOp, "block too large")
				}
				payload = p[4:]
				return accept, nil
			case expect - 1:
				c.dupDATA++
				return resend, nil // our ACK was lost
			}
			return ignore, nil
		})
		if err != nil {
			if first != nil && err == errOACKDone {
				// The handler for the request's answer accepted an OACK and
				// set the ACK 0 to send; go on waiting for block 1.
				first = nil
				continue
			}
			return err
		}
		first = nil
		if limit > 0 && c.done+int64(len(payload)) > limit {
			return c.sendError(ErrDiskFull, "file too large")
		}
		if _, err := w.Write(payload); err != nil {
			return c.sendError(ErrDiskFull, "write error")
		}
		c.done += int64(len(payload))
		if c.progress != nil {
			c.progress(c.done)
		}
		last := len(payload) < c.blksize
		if last && finish != nil {
			// Store the file before the final ACK, so that the sender's
			// success means the file is in place.
			if err := finish(); err != nil {
				return c.sendError(ErrDiskFull, "cannot store file")
			}
		}
		ack = appendACK(ack[:0], expect)
		if err := c.send(ack); err != nil {
			return err
		}
		if last {
			c.dally(expect)
			return nil
		}
		expect++
	}
}

// errOACKDone is returned by a first-packet handler that consumed an OACK.
var errOACKDone = errors.New("oack handled")

// dally answers retransmissions of the final block for a while, in case
// the final ACK was lost: until the line has been quiet for dallyFactor
// timeouts (so a retransmission sent one timeout later, by a peer with
// the same timeout, is still caught), and at most retries+1 times.
func (c *conn) dally(block uint16) {
	quiet := time.Duration(c.dallyFactor) * c.timeout
	deadline := time.Now().Add(quiet)
	answered := 0
	for answered <= c.retries {
		wait := time.Until(deadline)
		if wait <= 0 {
			return // quiet: the sender has its ACK
		}
		c.so.SetTimeout(wait)
		k, from, err := c.so.RecvFrom(c.buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || transient(err) {
				continue
			}
			return
		}
		fa, ok := from.(*socket.SockaddrInet)
		if !ok || fa.AddrPort != c.peer || k < 4 {
			continue
		}
		if binary.BigEndian.Uint16(c.buf) == opDATA && binary.BigEndian.Uint16(c.buf[2:]) == block {
			c.dupDATA++
			answered++
			c.so.SendTo(c.last, 0, c.to())
			deadline = time.Now().Add(quiet)
		}
	}
}

func (c *conn) String() string {
	return fmt.Sprintf("peer %v: %d bytes, %d retransmits, %d dup ACKs, %d dup DATA", c.peer, c.done, c.retransmits, c.dupACKs, c.dupDATA)
}
