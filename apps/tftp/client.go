package tftp

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// ClientConfig configures Get and Put.
type ClientConfig struct {
	Mode          string        // "octet" (default) or "netascii"
	Blksize       int           // ask for this block size (8..65464); 0 = don't ask (512)
	Tsize         bool          // ask for / tell the transfer size (tsize option)
	TimeoutOption int           // ask the server to use this timeout in seconds (1..255); 0 = don't ask
	Timeout       time.Duration // our retransmission timeout; default TimeoutOption seconds, or 1s
	Retries       int           // retransmissions of one packet before giving up; default 5
	// Progress, when set, is called after every block with the bytes
	// moved so far and the total (-1 while unknown). ProgressBar makes one.
	Progress func(done, total int64)
}

func (cfg *ClientConfig) fill() error {
	if cfg.Mode == "" {
		cfg.Mode = "octet"
	}
	if cfg.Mode != "octet" && cfg.Mode != "netascii" {
		return fmt.Errorf("tftp: mode %q: want octet or netascii", cfg.Mode)
	}
	if cfg.Blksize != 0 && (cfg.Blksize < MinBlksize || cfg.Blksize > MaxBlksize) {
		return fmt.Errorf("tftp: blksize %d outside %d..%d", cfg.Blksize, MinBlksize, MaxBlksize)
	}
	if cfg.TimeoutOption != 0 && (cfg.TimeoutOption < MinTimeout || cfg.TimeoutOption > MaxTimeout) {
		return fmt.Errorf("tftp: timeout %d outside %d..%d", cfg.TimeoutOption, MinTimeout, MaxTimeout)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
		if cfg.TimeoutOption > 0 {
			cfg.Timeout = time.Duration(cfg.TimeoutOption) * time.Second
		}
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	return nil
}

// Result describes a finished transfer.
type Result struct {
	Bytes       int64          // payload bytes moved (after netascii conversion on the wire)
	Blksize     int            // block size used
	Tsize       int64          // size announced in the OACK, -1 if none
	Retransmits int            // packets sent again after a timeout
	Server      netip.AddrPort // the server's transfer ID
}

func (cfg *ClientConfig) options(op uint16, size int64) [][2]string {
	var o [][2]string
	if cfg.Blksize != 0 {
		o = append(o, [2]string{"blksize", strconv.Itoa(cfg.Blksize)})
	}
	if cfg.TimeoutOption != 0 {
		o = append(o, [2]string{"timeout", strconv.Itoa(cfg.TimeoutOption)})
	}
	if cfg.Tsize {
		if op == opRRQ {
			o = append(o, [2]string{"tsize", "0"})
		} else if size >= 0 {
			o = append(o, [2]string{"tsize", strconv.FormatInt(size, 10)})
		}
	}
	return o
}

// anyOf is the wildcard address of peer's family, port 0.
func anyOf(peer netip.Addr) *socket.SockaddrInet {
	if peer.Is6() && !peer.Is4In6() {
		return socket.Inet6("::", 0)
	}
	return socket.Inet("0.0.0.0", 0)
}

// openSocket makes the transfer's socket: a UDP socket of the peer's
// family on an ephemeral port (its TID).
func openSocket(n *socket.Net, peer netip.Addr) (PacketConn, error) {
	so, err := boundSocket(n, peer)
	if err != nil {
		return nil, err
	}
	return so, nil
}

func boundSocket(n *socket.Net, peer netip.Addr) (*socket.Socket, error) {
	fam := socket.AF_INET
	if peer.Is6() && !peer.Is4In6() {
		fam = socket.AF_INET6
	}
	so, err := n.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	if err := so.Bind(anyOf(peer)); err != nil {
		so.Close()
		return nil, err
	}
	return so, nil
}

func dialTFTP(ctx context.Context, so PacketConn, srv netip.AddrPort, cfg *ClientConfig) (*conn, func() bool) {
	stop := context.AfterFunc(ctx, func() { so.Close() })
	c := newConn(so, cfg.Timeout, cfg.Retries)
	c.sendTo = srv
	return c, stop
}

// applyOACK checks the server's OACK against what we asked for (RFC 2347:
// only options we sent may come back, blksize no larger) and applies it.
func (c *conn) applyOACK(p []byte, cfg *ClientConfig, asked [][2]string, tsize *int64) error {
	opts, err := parseOptions(p[2:])
	if err != nil {
		return c.sendError(ErrOption, "malformed OACK")
	}
	sent := map[string]bool{}
	for _, o := range asked {
		sent[o[0]] = true
	}
	for _, name := range opts.order {
		v := opts.vals[name]
		if !sent[name] {
			return c.sendError(ErrOption, "unrequested option "+name)
		}
		switch name {
		case "blksize":
			x, ok := parseIntOpt(v, MinBlksize, int64(cfg.Blksize))
			if !ok {
				return c.sendError(ErrOption, "bad blksize")
			}
			c.blksize = int(x)
		case "timeout":
			x, ok := parseIntOpt(v, MinTimeout, MaxTimeout)
			if !ok || int(x) != cfg.TimeoutOption {
				return c.sendError(ErrOption, "bad timeout")
			}
			c.timeout = time.Duration(x) * time.Second
		case "tsize":
			x, ok := parseIntOpt(v, 0, 1<<62)
			if !ok {
				return c.sendError(ErrOption, "bad tsize")
			}
			*tsize = x
		}
	}
	return nil
}

// Get reads the file remote from the TFTP server srv (for example
// 10.0.0.2:69) into w. It stops when ctx ends.
func Get(ctx context.Context, n *socket.Net, srv netip.AddrPort, remote string, w io.Writer, cfg ClientConfig) (Result, error) {
	so, err := openSocket(n, srv.Addr())
	if err != nil {
		return Result{Tsize: -1}, err
	}
	return GetOn(ctx, so, srv, remote, w, cfg)
}

// GetOn is Get on a socket the caller made (a bound UDP socket of any
// stack); it closes so.
func GetOn(ctx context.Context, so PacketConn, srv netip.AddrPort, remote string, w io.Writer, cfg ClientConfig) (res Result, err error) {
	res = Result{Tsize: -1}
	// The context closes the socket from its own goroutine, which a short
	// transfer can outrun: an already ended context fails up front.
	if err := ctx.Err(); err != nil {
		return res, err
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // the socket was closed under us for this
		}
	}()
	if err := cfg.fill(); err != nil {
		so.Close()
		return res, err
	}
	c, stop := dialTFTP(ctx, so, srv, &cfg)
	defer c.so.Close()
	defer stop()
	asked := cfg.options(opRRQ, -1)
	if cfg.Progress != nil {
		c.progress = func(done int64) { cfg.Progress(done, res.Tsize) }
	}
	var na *netasciiWriter
	if cfg.Mode == "netascii" {
		na = newNetasciiWriter(w)
		w = na
	}
	if err := c.send(appendRequest(nil, opRRQ, remote, cfg.Mode, asked)); err != nil {
		return res, err
	}
	first := func(op uint16, p []byte) (verdict, error) {
		if op != opOACK {
			return ignore, c.sendError(ErrIllegalOp, "unexpected packet")
		}
		if len(asked) == 0 {
			return ignore, c.sendError(ErrOption, "OACK without options asked")
		}
		if err := c.applyOACK(p, &cfg, asked, &res.Tsize); err != nil {
			return ignore, err
		}
		if err := c.send(appendACK(nil, 0)); err != nil {
			return ignore, err
		}
		return ignore, errOACKDone
	}
	var finish func() error
	if na != nil {
		finish = na.Flush
	}
	err = c.recvData(w, 0, first, finish)
	res.Bytes, res.Blksize, res.Retransmits, res.Server = c.done, c.blksize, c.retransmits, c.peer
	if err != nil && ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, err
}

// Put writes r to the file remote on the TFTP server srv. size is r's
// length when known (for the tsize option and the progress total), or -1.
func Put(ctx context.Context, n *socket.Net, srv netip.AddrPort, remote string, r io.Reader, size int64, cfg ClientConfig) (Result, error) {
	so, err := openSocket(n, srv.Addr())
	if err != nil {
		return Result{Tsize: -1}, err
	}
	return PutOn(ctx, so, srv, remote, r, size, cfg)
}

// PutOn is Put on a socket the caller made; it closes so.
func PutOn(ctx context.Context, so PacketConn, srv netip.AddrPort, remote string, r io.Reader, size int64, cfg ClientConfig) (res Result, err error) {
	res = Result{Tsize: -1}
	// The context closes the socket from its own goroutine, which a short
	// transfer can outrun: an already ended context fails up front.
	if err := ctx.Err(); err != nil {
		return res, err
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	if err := cfg.fill(); err != nil {
		so.Close()
		return res, err
	}
	c, stop := dialTFTP(ctx, so, srv, &cfg)
	defer c.so.Close()
	defer stop()
	if cfg.Mode == "netascii" {
		r = newNetasciiReader(r)
		size = -1 // the size on the wire is not known without reading twice
	}
	asked := cfg.options(opWRQ, size)
	if cfg.Progress != nil {
		c.progress = func(done int64) { cfg.Progress(done, size) }
	}
	if err := c.send(appendRequest(nil, opWRQ, remote, cfg.Mode, asked)); err != nil {
		return res, err
	}
	err = c.exchange(func(op uint16, p []byte) (verdict, error) {
		switch op {
		case opACK:
			if len(p) >= 4 && binary.BigEndian.Uint16(p[2:]) == 0 {
				return accept, nil // no options: the defaults apply
			}
			return ignore, nil
		case opOACK:
			if len(asked) == 0 {
				return ignore, c.sendError(ErrOption, "OACK without options asked")
			}
			if err := c.applyOACK(p, &cfg, asked, &res.Tsize); err != nil {
				return ignore, err
			}
			return accept, nil
		}
		return ignore, c.sendError(ErrIllegalOp, "unexpected packet")
	})
	if err == nil {
		err = c.sendData(r)
	}
	res.Bytes, res.Blksize, res.Retransmits, res.Server = c.done, c.blksize, c.retransmits, c.peer
	if err != nil && ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, err
}
