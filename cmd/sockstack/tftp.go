package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/apps/tftp"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

func init() {
	extraCommands = append(extraCommands, tftpCmd)
}

type tftpOpts struct {
	port    int
	blksize int
	timeout time.Duration
	retries int
	quiet   bool
}

func (o tftpOpts) config() tftp.ClientConfig {
	cfg := tftp.ClientConfig{Tsize: true, Timeout: o.timeout, Retries: o.retries}
	if o.blksize != tftp.DefaultBlksize {
		cfg.Blksize = o.blksize
	}
	return cfg
}

func tftpCmd() *cobra.Command {
	var f hostFlags
	var o tftpOpts
	c := &cobra.Command{
		Use:   "tftp get|put [flags] HOST REMOTE [LOCAL]",
		Short: "TFTP client (octet mode, blksize and tsize negotiation, progress bar)",
		Long: `tftp get HOST REMOTE [LOCAL] fetches REMOTE into LOCAL (default: its base name;
"-" for stdout). tftp put HOST LOCAL [REMOTE] sends LOCAL.`,
		Example: "  sockstack tftp get server hello.txt\n  sockstack tftp put --blksize 1428 10.0.0.2 ./local.bin remote.bin",
		Args:    usageArgs(cobra.RangeArgs(3, 4)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			op := args[0]
			if op != "get" && op != "put" {
				return usageErr(cmd, "want get or put, not %q", op)
			}
			if o.blksize < tftp.MinBlksize || o.blksize > tftp.MaxBlksize {
				return usageErr(cmd, "--blksize %d outside %d..%d", o.blksize, tftp.MinBlksize, tftp.MaxBlksize)
			}
			if o.port < 1 || o.port > 65535 {
				return usageErr(cmd, "--port %d outside 1..65535", o.port)
			}
			return f.runTarget(cmd, args[1], func(ctx context.Context, e *env, dst netip.Addr) error {
				srv := netip.AddrPortFrom(dst, uint16(o.port))
				out := cmd.ErrOrStderr()
				if op == "get" {
					remote := args[2]
					local := filepath.Base(remote)
					if len(args) == 4 {
						local = args[3]
					}
					return tftpGetFile(ctx, out, e.api, srv, remote, local, o)
				}
				local := args[2]
				remote := filepath.Base(local)
				if len(args) == 4 {
					remote = args[3]
				}
				return tftpPutFile(ctx, out, e.api, srv, local, remote, o)
			})
		},
	}
	f.register(c, clientTool)
	c.Flags().IntVarP(&o.port, "port", "p", 69, "server port")
	c.Flags().IntVarP(&o.blksize, "blksize", "b", 1428, "block size to ask for (RFC 2348; 512 = no option)")
	c.Flags().DurationVar(&o.timeout, "timeout", time.Second, "retransmission timeout")
	c.Flags().IntVar(&o.retries, "retries", 5, "retransmissions before giving up")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar")
	return c
}

func tftpGetFile(ctx context.Context, log io.Writer, api sockapi.API, srv netip.AddrPort, remote, local string, o tftpOpts) error {
	var w io.Writer = os.Stdout
	var fh *os.File
	if local != "-" {
		var err error
		if fh, err = os.Create(local); err != nil {
			return err
		}
		w = fh
	}
	m := newMeter(log, "tftp get "+remote, -1, o.quiet)
	res, err := tftpGet(ctx, api, srv, remote, w, o, m.set)
	if fh != nil {
		err = errors.Join(err, fh.Close())
		if err != nil {
			os.Remove(local)
		}
	}
	if err != nil {
		m.fail()
		return tftpError(srv, err)
	}
	m.done("received", res.Bytes, fmt.Sprintf(", blksize %d", res.Blksize))
	return nil
}

func tftpPutFile(ctx context.Context, log io.Writer, api sockapi.API, srv netip.AddrPort, local, remote string, o tftpOpts) error {
	fh, err := os.Open(local)
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	m := newMeter(log, "tftp put "+remote, fi.Size(), o.quiet)
	res, err := tftpPut(ctx, api, srv, remote, fh, fi.Size(), o, m.set)
	if err != nil {
		m.fail()
		return tftpError(srv, err)
	}
	m.done("sent", res.Bytes, fmt.Sprintf(", blksize %d", res.Blksize))
	return nil
}

// tftpError words the client's errors for a user.
func tftpError(srv netip.AddrPort, err error) error {
	var te *tftp.Error
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("tftp: server %v: %s (error %d)", srv, te.Msg, te.Code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("tftp: %v: connection refused (no TFTP server)", srv)
	case errors.Is(err, tftp.ErrTimedOut):
		return fmt.Errorf("tftp: no answer from %v (no such host, or no TFTP server there)", srv)
	case errors.Is(err, context.Canceled):
		return errors.New("tftp: interrupted")
	}
	return fmt.Errorf("tftp: %v: %w", srv, err)
}

// tftpSocket is the transfer's UDP socket on an ephemeral port, of the
// server's family.
func tftpSocket(api sockapi.API, srv netip.Addr) (sockapi.Sock, error) {
	fam := sockFamily(srv)
	s, err := api.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	any := netip.IPv4Unspecified()
	if fam == socket.AF_INET6 {
		any = netip.IPv6Unspecified()
	}
	if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(any, 0))); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// tftpGet fetches file into w with apps/tftp's client.
func tftpGet(ctx context.Context, api sockapi.API, srv netip.AddrPort, file string, w io.Writer, o tftpOpts, progress func(done, total int64)) (tftp.Result, error) {
	s, err := tftpSocket(api, srv.Addr())
	if err != nil {
		return tftp.Result{}, err
	}
	cfg := o.config()
	cfg.Progress = progress
	return tftp.GetOn(ctx, s, srv, file, w, cfg)
}

// tftpPut sends size bytes from r as file.
func tftpPut(ctx context.Context, api sockapi.API, srv netip.AddrPort, file string, r io.Reader, size int64, o tftpOpts, progress func(done, total int64)) (tftp.Result, error) {
	s, err := tftpSocket(api, srv.Addr())
	if err != nil {
		return tftp.Result{}, err
	}
	cfg := o.config()
	cfg.Progress = progress
	return tftp.PutOn(ctx, s, srv, file, r, size, cfg)
}
