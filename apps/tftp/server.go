package tftp

import (
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/socket"
)

// ServerConfig configures Serve.
type ServerConfig struct {
	Root         string        // directory served; required
	ReadOnly     bool          // refuse write requests
	Overwrite    bool          // a write may replace an existing file (else error 6)
	MaxTransfers int           // concurrent transfers; default 32
	MaxFileSize  int64         // largest file accepted by a write; default 1 GiB
	MaxBlksize   int           // largest blksize granted; default 65464
	Timeout      time.Duration // retransmission timeout unless the client negotiates one; default 1s
	Retries      int           // retransmissions of one packet before giving up; default 5
	Logf         func(format string, args ...any)
}

// Server is a running TFTP server; Close stops it, aborting transfers.
type Server struct {
	*server.Server
	cfg  ServerConfig
	root *os.Root

	mu     sync.Mutex
	active map[netip.AddrPort]bool // client TIDs with a transfer going on

	// Counters.
	Transfers, Failed, Busy, BadRequests atomic.Uint64
}

// Serve starts a TFTP server on addr (usually 0.0.0.0:69). Every
// transfer runs on a new socket with an ephemeral port, its TID.
func Serve(n *socket.Net, addr netip.AddrPort, cfg ServerConfig) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("tftp: no root directory")
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 32
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = 1 << 30
	}
	if cfg.MaxBlksize <= 0 || cfg.MaxBlksize > MaxBlksize {
		cfg.MaxBlksize = MaxBlksize
	}
	if cfg.MaxBlksize < MinBlksize {
		cfg.MaxBlksize = MinBlksize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, err
	}
	// s.Server is set before the receive loop starts: the loop reads it
	// (s.Go, s.Track) as soon as a request arrives.
	s := &Server{cfg: cfg, root: root, active: map[netip.AddrPort]bool{}}
	s.Server = server.New("tftp", server.Config{NoTCP: true})
	if err := s.Server.ServeUDP(n, addr, func(so *socket.Socket) { s.loop(n, so) }); err != nil {
		s.Server.Close()
		root.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the server and waits for transfers to end.
func (s *Server) Close() error {
	err := s.Server.Close()
	s.root.Close()
	return err
}

func (s *Server) loop(n *socket.Net, so *socket.Socket) {
	buf := make([]byte, 1500)
	for {
		k, from, err := so.RecvFrom(buf, 0)
		if err != nil {
			if server.Closed(err) {
				return
			}
			continue
		}
		fa, ok := from.(*socket.SockaddrInet)
		if !ok {
			continue
		}
		req, err := parseRequest(buf[:k])
		if err != nil {
			s.BadRequests.Add(1)
			if k >= 2 && (buf[1] == opERROR) {
				continue // never answer an error with an error
			}
			so.SendTo(appendError(nil, ErrIllegalOp, err.Error()), 0, from)
			continue
		}
		peer := fa.AddrPort
		s.mu.Lock()
		dup := s.active[peer]
		full := len(s.active) >= s.cfg.MaxTransfers
		if !dup && !full {
			s.active[peer] = true
		}
		s.mu.Unlock()
		if dup {
			continue // a retransmitted request: the transfer already answers it
		}
		if full {
			s.Busy.Add(1)
			so.SendTo(appendError(nil, ErrUndefined, "server busy"), 0, from)
			continue
		}
		ok = s.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.active, peer)
				s.mu.Unlock()
			}()
			s.transfer(n, peer, req)
		})
		if !ok {
			return
		}
	}
}

// cleanName checks a requested file name: relative, no "..", not empty.
// Symbolic links out of the root are refused by os.Root itself.
func cleanName(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, '\\') || strings.ContainsRune(name, 0) {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", false
	}
	return c, true
}

func (s *Server) transfer(n *socket.Net, peer netip.AddrPort, req *request) {
	so, err := boundSocket(n, peer.Addr())
	if err != nil {
		s.Failed.Add(1)
		return
	}
	if !s.Track(so) {
		return
	}
	defer s.Release(so)
	s.Transfers.Add(1)
	c := newConn(so, s.cfg.Timeout, s.cfg.Retries)
	c.peer, c.locked = peer, true
	c.dallyFactor = 3
	if err := s.handle(c, req); err != nil {
		s.Failed.Add(1)
		s.cfg.Logf("tftp: %s %q from %v: %v", opName(req.op), req.filename, peer, err)
		return
	}
	s.cfg.Logf("tftp: %s %q from %v done: %v", opName(req.op), req.filename, peer, c)
}

func opName(op uint16) string {
	if op == opRRQ {
		return "RRQ"
	}
	return "WRQ"
}

func (s *Server) handle(c *conn, req *request) error {
	if req.mode != "octet" && req.mode != "netascii" {
		if req.mode == "mail" {
			return c.sendError(ErrIllegalOp, "mail mode not supported")
		}
		return c.sendError(ErrIllegalOp, "unknown mode")
	}
	name, ok := cleanName(req.filename)
	if !ok {
		return c.sendError(ErrAccess, "access violation")
	}
	if req.op == opRRQ {
		return s.read(c, req, name)
	}
	return s.write(c, req, name)
}

// negotiate picks the options to grant: unknown ones are left out of the
// OACK, as RFC 2347 asks; invalid values of known ones are ignored too.
func (s *Server) negotiate(c *conn, req *request, size int64) [][2]string {
	var oack [][2]string
	for _, name := range req.order {
		v := req.opts[name]
		switch name {
		case "blksize":
			x, ok := parseIntOpt(v, MinBlksize, MaxBlksize)
			if !ok {
				continue
			}
			if x > int64(s.cfg.MaxBlksize) {
				x = int64(s.cfg.MaxBlksize)
			}
			c.blksize = int(x)
			oack = append(oack, [2]string{"blksize", strconv.FormatInt(x, 10)})
		case "timeout":
			x, ok := parseIntOpt(v, MinTimeout, MaxTimeout)
			if !ok {
				continue
			}
			c.timeout = time.Duration(x) * time.Second
			oack = append(oack, [2]string{"timeout", v})
		case "tsize":
			x, ok := parseIntOpt(v, 0, 1<<62)
			if !ok {
				continue
			}
			if req.op == opRRQ {
				if size < 0 {
					continue
				}
				x = size
			}
			oack = append(oack, [2]string{"tsize", strconv.FormatInt(x, 10)})
		}
	}
	return oack
}

func fsError(c *conn, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.sendError(ErrNotFound, "file not found")
	case errors.Is(err, fs.ErrExist):
		return c.sendError(ErrExists, "file already exists")
	case errors.Is(err, fs.ErrPermission):
		return c.sendError(ErrAccess, "access violation")
	}
	// os.Root reports escapes ("path escapes from parent") and others here.
	return c.sendError(ErrAccess, "access violation")
}

func (s *Server) read(c *conn, req *request, name string) error {
	f, err := s.root.Open(name)
	if err != nil {
		return fsError(c, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return c.sendError(ErrAccess, "not a regular file")
	}
	size := st.Size()
	var r io.Reader = f
	if req.mode == "netascii" {
		if _, ok := req.opts["tsize"]; ok {
			if size, err = netasciiSize(f); err != nil {
				return c.sendError(ErrUndefined, "read error")
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return c.sendError(ErrUndefined, "read error")
			}
		}
		r = newNetasciiReader(f)
	}
	if oack := s.negotiate(c, req, size); len(oack) > 0 {
		if err := c.send(appendOACK(nil, oack)); err != nil {
			return err
		}
		err := c.exchange(func(op uint16, p []byte) (verdict, error) {
			if op == opACK && len(p) >= 4 && p[2] == 0 && p[3] == 0 {
				return accept, nil
			}
			return ignore, nil
		})
		if err != nil {
			return err
		}
	}
	return c.sendData(r)
}

func (s *Server) write(c *conn, req *request, name string) error {
	if s.cfg.ReadOnly {
		return c.sendError(ErrAccess, "server is read-only")
	}
	if v, ok := req.opts["tsize"]; ok {
		if x, ok := parseIntOpt(v, 0, 1<<62); ok && x > s.cfg.MaxFileSize {
			return c.sendError(ErrDiskFull, "file too large")
		}
	}
	if !s.cfg.Overwrite {
		if _, err := s.root.Lstat(name); err == nil {
			return c.sendError(ErrExists, "file already exists")
		}
	}
	// Write to a temporary name in the same directory and rename it into
	// place only when the transfer completes, so a failed upload leaves
	// nothing behind.
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tftp-"+strconv.FormatUint(uint64(c.peer.Port()), 10))
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fsError(c, err)
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			s.root.Remove(tmp)
		}
	}()
	var w io.Writer = f
	var na *netasciiWriter
	if req.mode == "netascii" {
		na = newNetasciiWriter(f)
		w = na
	}
	oack := s.negotiate(c, req, -1)
	if len(oack) > 0 {
		err = c.send(appendOACK(nil, oack))
	} else {
		err = c.send(appendACK(nil, 0))
	}
	if err != nil {
		return err
	}
	finish := func() error {
		if na != nil {
			if err := na.Flush(); err != nil {
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		if !s.cfg.Overwrite {
			if _, err := s.root.Lstat(name); err == nil {
				return errors.New("file appeared during the transfer")
			}
		}
		if err := s.root.Rename(tmp, name); err != nil {
			return err
		}
		ok = true
		return nil
	}
	if err := c.recvData(w, s.cfg.MaxFileSize, nil, finish); err != nil {
		return err
	}
	return nil
}
