package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// traceroute: UDP probes with growing TTL (hop limit), each hop's answer
// read from the error queue (IP_RECVERR / IPV6_RECVERR) as Linux
// traceroute does; with -e, IP_RECVERR_RFC4884 (IPV6_RECVERR_RFC4884)
// is on and the RFC 4884 extension objects of an answer are printed,
// MPLS label stacks (RFC 4950) as traceroute -e words them.

func init() { extraCommands = append(extraCommands, tracerouteCmd) }

type traceOpts struct {
	maxHops int
	wait    time.Duration
	port    int
	ext     bool
	size    int
}

func tracerouteCmd() *cobra.Command {
	var f hostFlags
	var o traceOpts
	c := &cobra.Command{
		Use:     "traceroute [flags] HOST",
		Short:   "Print the hops UDP probes take to HOST (one probe a hop), like Linux traceroute -q 1",
		Example: "  sockstack traceroute server\n  sockstack traceroute -e --kernel 127.0.0.1",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if o.maxHops < 1 || o.maxHops > 255 {
				return usageErr(cmd, "max hops cannot be more than 255")
			}
			if o.port < 1 || o.port+o.maxHops-1 > 65535 {
				return usageErr(cmd, "bad port %d", o.port)
			}
			if o.size < 0 || o.size > 65000 {
				return usageErr(cmd, "bad probe size %d", o.size)
			}
			return f.runTarget(cmd, args[0], func(ctx context.Context, e *env, dst netip.Addr) error {
				return runTraceroute(ctx, cmd.OutOrStdout(), e.api, dst, args[0], o)
			})
		},
	}
	f.register(c, clientTool)
	fl := c.Flags()
	o.wait = 5 * time.Second
	fl.IntVarP(&o.maxHops, "max-hops", "m", 30, "the largest TTL (hop limit) to try")
	fl.VarP((*seconds)(&o.wait), "wait", "w", "seconds to wait for each hop's answer")
	fl.IntVarP(&o.port, "port", "p", 33434, "destination port of the first probe (incremented by one a hop)")
	fl.BoolVarP(&o.ext, "extensions", "e", false, "show ICMP extensions (RFC 4884), MPLS label stacks as <MPLS:L=label,E=tc,S=bottom,T=ttl>")
	fl.IntVar(&o.size, "size", 32, "data bytes per probe")
	return c
}

// traceErr is one error-queue entry as traceroute needs it.
type traceErr struct {
	from              netip.Addr // the ICMP's source (invalid for a local error)
	port              int        // the probe's destination port (msg_name)
	origin, typ, code uint8
	errno             syscall.Errno
	rfcLen            int // ee_rfc4884.len: where the extension starts in payload; 0 for none
	rfcInvalid        bool
	payload           []byte
}

// readTraceErr reads one entry of s's error queue without waiting.
func readTraceErr(s sockapi.Sock, buf []byte) (traceErr, bool) {
	var q traceErr
	switch v := s.(type) {
	case sockapi.StackSock:
		n, _, from, ee, err := v.RecvErr(buf, 0)
		if err != nil {
			return q, false
		}
		q = traceErr{origin: ee.Origin, typ: ee.Type, code: ee.Code, errno: ee.Errno, payload: buf[:n],
			rfcLen: int(ee.RFC4884Len), rfcInvalid: ee.RFC4884Flags&socket.SO_EE_RFC4884_FLAG_INVALID != 0}
		if ee.Offender != nil {
			q.from = ee.Offender.AddrPort.Addr().Unmap()
		}
		if fa, ok := from.(*socket.SockaddrInet); ok {
			q.port = int(fa.AddrPort.Port())
		}
		return q, true
	case sockapi.HostSock:
		var oob [256]byte
		n, oobn, _, sa, err := unix.Recvmsg(v.Fileno(), buf, oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return q, false
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			q.port = a.Port
		case *unix.SockaddrInet6:
			q.port = a.Port
		}
		cms, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, cm := range cms {
			d := cm.Data
			if !(cm.Header.Level == unix.IPPROTO_IP && cm.Header.Type == unix.IP_RECVERR ||
				cm.Header.Level == unix.IPPROTO_IPV6 && cm.Header.Type == unix.IPV6_RECVERR) || len(d) < 32 {
				continue
			}
			ne := binary.NativeEndian
			q.errno, q.origin, q.typ, q.code = syscall.Errno(ne.Uint32(d)), d[4], d[5], d[6]
			q.rfcLen, q.rfcInvalid = int(ne.Uint16(d[12:])), d[14]&unix.SO_EE_RFC4884_FLAG_INVALID != 0
			switch ne.Uint16(d[16:]) {
			case unix.AF_INET:
				q.from = netip.AddrFrom4([4]byte(d[20:24]))
			case unix.AF_INET6:
				if len(d) >= 16+24 {
					q.from = netip.AddrFrom16([16]byte(d[24:40])).Unmap()
				}
			}
		}
		q.payload = buf[:n]
		return q, true
	}
	return q, false
}

// final reports whether q ends the trace (the destination, or a hop
// that says it cannot be reached), with traceroute's annotation.
func (q traceErr) final() (bool, string) {
	switch q.origin {
	case socket.SO_EE_ORIGIN_ICMP:
		if q.typ == 11 {
			return false, ""
		}
		if q.typ != 3 {
			return true, ""
		}
		return true, unreachNote(unreach4, q.code)
	case socket.SO_EE_ORIGIN_ICMP6:
		if q.typ == 3 {
			return false, ""
		}
		if q.typ != 1 {
			return true, ""
		}
		return true, unreachNote(unreach6, q.code)
	}
	return true, " !" + q.errno.Error()
}

// traceroute's annotations of Destination Unreachable codes, ICMP's and
// ICMPv6's: "" for the port's (the destination answered).
var (
	unreach4 = map[uint8]string{3: "", 0: " !N", 1: " !H", 2: " !P", 4: " !F", 13: " !X"}
	unreach6 = map[uint8]string{4: "", 0: " !N", 1: " !X", 3: " !H"}
)

// unreachNote is the annotation of code, " !<code>" for one without its own.
func unreachNote(notes map[uint8]string, code uint8) string {
	if n, ok := notes[code]; ok {
		return n
	}
	return fmt.Sprintf(" !<%d>", code)
}

// extText words an RFC 4884 extension structure as traceroute -e does:
// each MPLS label stack (class 1, c-type 1) as
// <MPLS:L=label,E=tc,S=bottom,T=ttl/...>, any other object as
// <class/ctype:hex>. A structure that is too short or whose objects
// run past it shows what could be read.
func extText(ext []byte) string {
	if len(ext) < 4 {
		return ""
	}
	var b strings.Builder
	for off := 4; off+4 <= len(ext); {
		olen := int(binary.BigEndian.Uint16(ext[off:]))
		if olen < 4 || off+olen > len(ext) {
			break
		}
		class, ctype, data := ext[off+2], ext[off+3], ext[off+4:off+olen]
		off += olen
		if class == 1 && ctype == 1 {
			b.WriteString(" <MPLS:")
			for i := 0; i+4 <= len(data); i += 4 {
				e := binary.BigEndian.Uint32(data[i:])
				if i > 0 {
					b.WriteByte('/')
				}
				fmt.Fprintf(&b, "L=%d,E=%d,S=%d,T=%d", e>>12, e>>9&7, e>>8&1, e&0xff)
			}
			b.WriteByte('>')
			continue
		}
		fmt.Fprintf(&b, " <%d/%d:%x>", class, ctype, data)
	}
	return b.String()
}

// hopText is one answer: the address (name) and, with ext, the
// extension objects the error carried.
func (q traceErr) hopText(ext bool) string {
	s := fmt.Sprintf("%s (%s)", q.from, q.from)
	if ext && q.rfcLen > 0 && !q.rfcInvalid && q.rfcLen <= len(q.payload) {
		s += extText(q.payload[q.rfcLen:])
	}
	return s
}

func runTraceroute(ctx context.Context, w io.Writer, api sockapi.API, dst netip.Addr, name string, o traceOpts) error {
	v6 := dst.Is6() && !dst.Is4In6()
	fam, level, recverr, rfc, hops, hdr := socket.AF_INET, socket.SOL_IP, socket.IP_RECVERR, socket.IP_RECVERR_RFC4884, socket.IP_TTL, 28
	if v6 {
		fam, level, recverr, rfc, hops, hdr = socket.AF_INET6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR, socket.IPV6_RECVERR_RFC4884, socket.IPV6_UNICAST_HOPS, 48
	}
	s, err := api.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("traceroute: socket: %w", err)
	}
	defer s.Close()
	if err := s.SetSockOptInt(level, recverr, 1); err != nil {
		return fmt.Errorf("traceroute: IP_RECVERR: %w", err)
	}
	if o.ext {
		if err := s.SetSockOptInt(level, rfc, 1); err != nil {
			return fmt.Errorf("traceroute: RFC 4884: %w", err)
		}
	}
	s.SetTimeout(o.wait)
	fmt.Fprintf(w, "traceroute to %s (%s), %d hops max, %d byte packets\n", name, dst, o.maxHops, o.size+hdr)
	probe := make([]byte, o.size)
	buf, ebuf := make([]byte, 2048), make([]byte, 2048)
	for ttl := 1; ttl <= o.maxHops; ttl++ {
		if ctx.Err() != nil {
			return nil
		}
		if err := s.SetSockOptInt(level, hops, ttl); err != nil {
			return fmt.Errorf("traceroute: TTL %d: %w", ttl, err)
		}
		port := o.port + ttl - 1
		sent := time.Now()
		if _, err := s.SendTo(probe, 0, socket.InetAddr(netip.AddrPortFrom(dst, uint16(port)))); err != nil {
			fmt.Fprintf(w, "%2d  send: %v\n", ttl, err)
			return nil
		}
		q, ok := awaitHop(ctx, s, port, buf, ebuf)
		if !ok {
			fmt.Fprintf(w, "%2d  *\n", ttl)
			continue
		}
		last, note := q.final()
		if !q.from.IsValid() {
			fmt.Fprintf(w, "%2d  %s\n", ttl, strings.TrimPrefix(note, " "))
			return nil
		}
		fmt.Fprintf(w, "%2d  %s  %.3f ms%s\n", ttl, q.hopText(o.ext), float64(time.Since(sent).Microseconds())/1000, note)
		if last {
			return nil
		}
	}
	return nil
}

// awaitHop waits (up to the socket's timeout) for the answer to the
// probe sent to port: the error the probe raised becomes the socket's
// pending error, which a receive returns; the queue then says who sent
// it. Answers to earlier probes are skipped.
func awaitHop(ctx context.Context, s sockapi.Sock, port int, buf, ebuf []byte) (traceErr, bool) {
	for ctx.Err() == nil {
		_, err := s.Recv(buf, 0)
		if err == nil {
			continue // a datagram: no probe's answer
		}
		for {
			q, ok := readTraceErr(s, ebuf)
			if !ok {
				break
			}
			if q.port == port {
				return q, true
			}
		}
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EBADF) {
			return traceErr{}, false
		}
	}
	return traceErr{}, false
}
