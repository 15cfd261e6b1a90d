package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/apps/tftp"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

func init() {
	extraCommands = append(extraCommands, tftpCmd)
}

// TFTP opcodes (RFC 1350) and the OACK of RFC 2347.
const (
	tftpRRQ   = 1
	tftpWRQ   = 2
	tftpDATA  = 3
	tftpACK   = 4
	tftpERROR = 5
	tftpOACK  = 6
)

type tftpOpts struct {
	port    int
	blksize int
	timeout time.Duration
	retries int
	quiet   bool
}

func tftpCmd() *cobra.Command {
	var f hostFlags
	var o tftpOpts
	c := &cobra.Command{
		Use:   "tftp get|put [flags] HOST REMOTE [LOCAL]",
		Short: "TFTP client (octet mode, blksize and tsize negotiation, progress bar)",
		Long: `tftp get HOST REMOTE [LOCAL] fetches REMOTE into LOCAL (default: its base name;
"-" for stdout). tftp put HOST LOCAL [REMOTE] sends LOCAL.`,
		Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			op := args[0]
			if op != "get" && op != "put" {
				return fmt.Errorf("tftp: want get or put, not %q", op)
			}
			dst, err := parseTarget(args[1])
			if err != nil {
				return err
			}
			e, err := f.open(cmd.ErrOrStderr(), dst)
			if err != nil {
				return err
			}
			defer e.Close()
			srv := netip.AddrPortFrom(dst, uint16(o.port))
			out := cmd.ErrOrStderr()
			if op == "get" {
				remote := args[2]
				local := filepath.Base(remote)
				if len(args) == 4 {
					local = args[3]
				}
				return tftpGetFile(out, e.api, srv, remote, local, o)
			}
			local := args[2]
			remote := filepath.Base(local)
			if len(args) == 4 {
				remote = args[3]
			}
			return tftpPutFile(out, e.api, srv, local, remote, o)
		},
	}
	f.register(c)
	c.Flags().IntVarP(&o.port, "port", "p", 69, "server port")
	c.Flags().IntVarP(&o.blksize, "blksize", "b", 1428, "block size to ask for (RFC 2348; 512 = no option)")
	c.Flags().DurationVar(&o.timeout, "timeout", time.Second, "retransmission timeout")
	c.Flags().IntVar(&o.retries, "retries", 5, "retransmissions before giving up")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar")
	return c
}

func tftpGetFile(log io.Writer, api sockapi.API, srv netip.AddrPort, remote, local string, o tftpOpts) error {
	var w io.Writer
	var fh *os.File
	if local == "-" {
		w = os.Stdout
	} else {
		var err error
		fh, err = os.Create(local)
		if err != nil {
			return err
		}
		w = fh
	}
	progress, finish := func(int64, int64) {}, func() {}
	if !o.quiet && isTerminal(log) {
		progress, finish = tftp.ProgressBar(log, "get "+remote)
	}
	start := time.Now()
	n, bs, err := tftpGet(api, srv, remote, w, o, progress)
	finish()
	if fh != nil {
		err = errors.Join(err, fh.Close())
		if err != nil {
			os.Remove(local)
		}
	}
	if err != nil {
		return err
	}
	report(log, "received", n, bs, time.Since(start))
	return nil
}

func tftpPutFile(log io.Writer, api sockapi.API, srv netip.AddrPort, local, remote string, o tftpOpts) error {
	fh, err := os.Open(local)
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	progress, finish := func(int64, int64) {}, func() {}
	if !o.quiet && isTerminal(log) {
		progress, finish = tftp.ProgressBar(log, "put "+remote)
	}
	start := time.Now()
	n, bs, err := tftpPut(api, srv, remote, fh, fi.Size(), o, progress)
	finish()
	if err != nil {
		return err
	}
	report(log, "sent", n, bs, time.Since(start))
	return nil
}

// isTerminal tells whether w is a terminal (a progress bar redrawn with
// carriage returns only makes sense there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func report(w io.Writer, verb string, n int64, bs int, d time.Duration) {
	fmt.Fprintf(w, "tftp: %s %d bytes in %v (%.1f Mbit/s, blksize %d)\n", verb, n, d.Round(time.Millisecond),
		float64(n)*8/max(d.Seconds(), 1e-9)/1e6, bs)
}

// tftpRequest builds an RRQ or WRQ with options.
func tftpRequest(op int, file string, opts [][2]string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(op))
	b = append(append(b, file...), 0)
	b = append(append(b, "octet"...), 0)
	for _, kv := range opts {
		b = append(append(b, kv[0]...), 0)
		b = append(append(b, kv[1]...), 0)
	}
	return b
}

func tftpErrorPacket(code int, msg string) []byte {
	b := binary.BigEndian.AppendUint16(nil, tftpERROR)
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(append(b, msg...), 0)
}

// parseOACK reads option names and values.
func parseOACK(b []byte) map[string]string {
	m := map[string]string{}
	parts := bytes.Split(b, []byte{0})
	for i := 0; i+1 < len(parts); i += 2 {
		m[strings.ToLower(string(parts[i]))] = string(parts[i+1])
	}
	return m
}

func tftpErr(b []byte) error {
	code := 0
	msg := ""
	if len(b) >= 4 {
		code = int(binary.BigEndian.Uint16(b[2:4]))
		msg = string(bytes.TrimRight(b[4:], "\x00"))
	}
	return fmt.Errorf("tftp: server error %d: %s", code, msg)
}

// tftpSession is one transfer's socket: requests go to the server port,
// and the first answer fixes the server's transfer ID (its port).
type tftpSession struct {
	s    sockapi.Sock
	srv  netip.AddrPort
	peer netip.AddrPort // zero until the first answer
	o    tftpOpts
	buf  []byte
}

func newTFTPSession(api sockapi.API, srv netip.AddrPort, o tftpOpts) (*tftpSession, error) {
	s, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	if err := s.Bind(socket.Inet("0.0.0.0", 0)); err != nil {
		s.Close()
		return nil, err
	}
	s.SetTimeout(o.timeout)
	return &tftpSession{s: s, srv: srv, o: o, buf: make([]byte, 65536+4)}, nil
}

func (t *tftpSession) send(b []byte) error {
	to := t.peer
	if !to.IsValid() {
		to = t.srv
	}
	_, err := t.s.SendTo(b, 0, socket.InetAddr(to))
	return err
}

// exchange sends pkt and waits for an answer that accept takes (it
// returns false to keep waiting: duplicates, strays); it resends on
// timeout up to the retry limit.
func (t *tftpSession) exchange(pkt []byte, accept func([]byte) (bool, error)) error {
	for try := 0; try <= t.o.retries; try++ {
		if err := t.send(pkt); err != nil {
			return err
		}
		deadline := time.Now().Add(t.o.timeout)
		for time.Now().Before(deadline) {
			n, from, err := t.s.RecvFrom(t.buf, 0)
			if err != nil {
				if errors.Is(err, syscall.EAGAIN) {
					break
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("tftp: %v: connection refused (no TFTP server)", t.srv)
				}
				return err
			}
			fa, ok := from.(*socket.SockaddrInet)
			if !ok || fa.AddrPort.Addr() != t.srv.Addr() {
				continue
			}
			if t.peer.IsValid() && fa.AddrPort != t.peer {
				// Another transfer ID: tell it off (RFC 1350 error 5).
				t.s.SendTo(tftpErrorPacket(5, "Unknown transfer ID"), 0, from)
				continue
			}
			if n < 4 {
				continue
			}
			if !t.peer.IsValid() {
				t.peer = fa.AddrPort
			}
			pk := t.buf[:n]
			if binary.BigEndian.Uint16(pk) == tftpERROR {
				return tftpErr(pk)
			}
			done, err := accept(pk)
			if err != nil {
				t.send(tftpErrorPacket(0, err.Error()))
				return err
			}
			if done {
				return nil
			}
		}
	}
	return fmt.Errorf("tftp: no answer from %v after %d tries", t.srv, t.o.retries+1)
}

func (o tftpOpts) options(tsize int64) [][2]string {
	var opts [][2]string
	if o.blksize != 512 {
		opts = append(opts, [2]string{"blksize", strconv.Itoa(o.blksize)})
	}
	opts = append(opts, [2]string{"tsize", strconv.FormatInt(tsize, 10)})
	return opts
}

// tftpGet fetches file into w; it returns the bytes and the block size
// used.
func tftpGet(api sockapi.API, srv netip.AddrPort, file string, w io.Writer, o tftpOpts, progress func(done, total int64)) (int64, int, error) {
	if o.blksize < 8 || o.blksize > 65464 {
		return 0, 0, fmt.Errorf("tftp: blksize %d out of range 8..65464", o.blksize)
	}
	t, err := newTFTPSession(api, srv, o)
	if err != nil {
		return 0, 0, err
	}
	defer t.s.Close()
	blksize, total := 512, int64(-1)
	var got int64
	block := uint16(1)
	last := false
	var pending []byte // a data block accepted but not written yet
	handleData := func(p []byte) (bool, error) {
		if binary.BigEndian.Uint16(p) != tftpDATA {
			return false, nil
		}
		if binary.BigEndian.Uint16(p[2:4]) != block {
			return false, nil // a duplicate of an earlier block
		}
		data := p[4:]
		if len(data) > blksize {
			return false, fmt.Errorf("block %d has %d bytes, more than blksize %d", block, len(data), blksize)
		}
		pending = append(pending[:0], data...)
		last = len(data) < blksize
		return true, nil
	}
	// The request is answered by OACK (options taken) or by block 1.
	req := tftpRequest(tftpRRQ, file, o.options(0))
	err = t.exchange(req, func(p []byte) (bool, error) {
		if binary.BigEndian.Uint16(p) == tftpOACK {
			opts := parseOACK(p[2:])
			if v, ok := opts["blksize"]; ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 8 || n > o.blksize {
					return false, fmt.Errorf("server chose a bad blksize %q", v)
				}
				blksize = n
			}
			if v, ok := opts["tsize"]; ok {
				total, _ = strconv.ParseInt(v, 10, 64)
			}
			pending = nil
			block = 0 // the OACK is acknowledged as block 0
			return true, nil
		}
		return handleData(p)
	})
	if err != nil {
		return 0, 0, err
	}
	for {
		if pending != nil {
			if _, err := w.Write(pending); err != nil {
				t.send(tftpErrorPacket(3, "write failed"))
				return got, blksize, err
			}
			got += int64(len(pending))
			progress(got, total)
		}
		ack := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tftpACK), block)
		if last && pending != nil {
			// The final ACK is not answered; a lost one makes the
			// server resend the last block, which nobody reads. That is
			// RFC 1350's known wrinkle; it costs the server a timeout.
			t.send(ack)
			return got, blksize, nil
		}
		pending = nil
		block++
		if err := t.exchange(ack, handleData); err != nil {
			return got, blksize, err
		}
	}
}

// tftpPut sends size bytes from r as file.
func tftpPut(api sockapi.API, srv netip.AddrPort, file string, r io.Reader, size int64, o tftpOpts, progress func(done, total int64)) (int64, int, error) {
	if o.blksize < 8 || o.blksize > 65464 {
		return 0, 0, fmt.Errorf("tftp: blksize %d out of range 8..65464", o.blksize)
	}
	t, err := newTFTPSession(api, srv, o)
	if err != nil {
		return 0, 0, err
	}
	defer t.s.Close()
	blksize := 512
	var block uint16
	wantAck := func(p []byte) (bool, error) {
		switch binary.BigEndian.Uint16(p) {
		case tftpACK:
			return binary.BigEndian.Uint16(p[2:4]) == block, nil
		case tftpOACK:
			if block != 0 {
				return false, nil
			}
			opts := parseOACK(p[2:])
			if v, ok := opts["blksize"]; ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 8 || n > o.blksize {
					return false, fmt.Errorf("server chose a bad blksize %q", v)
				}
				blksize = n
			}
			return true, nil
		}
		return false, nil
	}
	if err := t.exchange(tftpRequest(tftpWRQ, file, o.options(size)), wantAck); err != nil {
		return 0, 0, err
	}
	var sent int64
	data := make([]byte, 4+blksize)
	for {
		n, rerr := io.ReadFull(r, data[4:])
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			t.send(tftpErrorPacket(0, "read failed"))
			return sent, blksize, rerr
		}
		block++
		binary.BigEndian.PutUint16(data[0:], tftpDATA)
		binary.BigEndian.PutUint16(data[2:], block)
		if err := t.exchange(data[:4+n], wantAck); err != nil {
			return sent, blksize, err
		}
		sent += int64(n)
		progress(sent, size)
		if n < blksize {
			return sent, blksize, nil
		}
	}
}
