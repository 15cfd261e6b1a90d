package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// IP_RECVERR / IPV6_RECVERR and recvmsg(MSG_ERRQUEUE): datagrams to a
// closed port on 127.0.0.1 and ::1 (the port unreachable comes from
// loopback), and local EMSGSIZE errors, which send nothing. The error
// queue's control message is compared byte for byte, from the kernel's
// msg_control and from socket.SockExtendedErr.Cmsg, a local error's
// ee_info (the loopback MTU, 65536 on both) included.

// stackOf is a sockstack socket of the case, to reach its stack.
func (t *T) stackOf() (sockapi.StackSock, bool) {
	for _, s := range t.socks {
		if v, ok := s.(sockapi.StackSock); ok {
			return v, true
		}
	}
	return sockapi.StackSock{}, false
}

// ClosedPort is a UDP port on addr (127.0.0.1 or ::1) that nothing
// holds: bound, labelled "closed", and closed again.
func (t *T) ClosedPort(fam int, addr string) *socket.SockaddrInet {
	s, err := t.Env.API.Socket(fam, DGRAM, 0)
	if err != nil {
		t.Must("socket", err)
	}
	var a socket.Sockaddr = socket.Inet(addr, 0)
	if fam == AF_INET6 {
		a = in6(addr, 0)
	}
	if err := s.Bind(a); err != nil {
		s.Close()
		t.Must("bind closed port", err)
	}
	n, _ := s.GetSockName()
	s.Close()
	in := n.(*socket.SockaddrInet)
	t.Label(in, "closed")
	if fam == AF_INET6 && strings.Contains(addr, ".") {
		return in6(addr, port(in))
	}
	return in
}

// WaitErr waits (sockstack: up to 5 s) for the loopback's ICMP error to
// reach s; the kernel has delivered it before send returned.
func (t *T) WaitErr(s sockapi.Sock) {
	if v, ok := s.(sockapi.StackSock); ok {
		e := waiter.NewEntry()
		v.Waiter().Register(e, waiter.EventErr)
		defer v.Waiter().Unregister(e)
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		for v.Readiness(waiter.EventIn)&waiter.EventErr == 0 {
			select {
			case <-e.C:
			case <-timer.C:
				return
			}
		}
	}
}

// PollEvents logs the poll(2) events of s now.
func (t *T) PollEvents(step string, s sockapi.Sock) {
	var in, out, er, hup bool
	switch v := s.(type) {
	case sockapi.StackSock:
		r := v.Readiness(waiter.EventIn | waiter.EventOut)
		in, out, er, hup = r&waiter.EventIn != 0, r&waiter.EventOut != 0, r&waiter.EventErr != 0, r&waiter.EventHUp != 0
	case sockapi.HostSock:
		fds := []unix.PollFd{{Fd: int32(v.Fileno()), Events: unix.POLLIN | unix.POLLOUT}}
		unix.Poll(fds, 0)
		r := fds[0].Revents
		in, out, er, hup = r&unix.POLLIN != 0, r&unix.POLLOUT != 0, r&unix.POLLERR != 0, r&unix.POLLHUP != 0
	}
	var ev []string
	for _, x := range []struct {
		on   bool
		name string
	}{{in, "IN"}, {out, "OUT"}, {er, "ERR"}, {hup, "HUP"}} {
		if x.on {
			ev = append(ev, x.name)
		}
	}
	t.Logf("%s: %s", step, strings.Join(ev, "|"))
}

// RecvErr logs one recvmsg(MSG_ERRQUEUE) of at most size bytes: the
// payload, msg_name, msg_flags and the control message, decoded and as
// bytes.
func (t *T) RecvErr(step string, s sockapi.Sock, size int) { t.recvErr(step, s, size, 0) }

// recvErr is RecvErr showing the payload from byte hide on: the bytes
// before differ per side (a quoted UDP header's ports, an IP header's
// identification and checksum).
func (t *T) recvErr(step string, s sockapi.Sock, size int, hide int) {
	buf := make([]byte, size)
	var n, rflags int
	var from socket.Sockaddr
	var oob []byte
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		var ee socket.SockExtendedErr
		n, rflags, from, ee, err = v.RecvErr(buf, 0)
		if err == nil {
			oob = ee.Cmsg()
		}
	case sockapi.HostSock:
		ob := make([]byte, 256)
		var oobn int
		var sa unix.Sockaddr
		n, oobn, rflags, sa, err = unix.Recvmsg(v.Fileno(), buf, ob, unix.MSG_ERRQUEUE)
		oob = ob[:oobn]
		from = fromUnix(sa)
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	shown := buf[:min(n, size)]
	if hide > 0 && len(shown) >= hide {
		shown = append([]byte(fmt.Sprintf("<%d bytes>", hide)), shown[hide:]...)
	}
	t.Logf("%s: %d %q from %s flags %s", step, n, shown, t.Addr(from), recvFlagsText(rflags))
	t.Logf("%s: %s", step, t.cmsgText(oob))
}

// cmsgText decodes msg_control of an error-queue read, each control
// message on its own: the IP-level ones before IP_RECVERR (see
// recverr_cmsg_cases.go), then IP_RECVERR / IPV6_RECVERR.
func (t *T) cmsgText(b []byte) string {
	var parts []string
	for len(b) >= 16 {
		clen := int(binary.NativeEndian.Uint64(b))
		space := (clen + 7) &^ 7
		if clen < 16 || space > len(b) {
			break
		}
		level, typ := int32(binary.NativeEndian.Uint32(b[8:])), int32(binary.NativeEndian.Uint32(b[12:]))
		if level == unix.IPPROTO_IP && typ == unix.IP_RECVERR || level == unix.IPPROTO_IPV6 && typ == unix.IPV6_RECVERR {
			parts = append(parts, t.recverrText(b[:space]))
		} else {
			parts = append(parts, t.ipCmsgText(b[:space]))
		}
		b = b[space:]
	}
	if len(b) > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("control %d bytes: %x", len(b), b))
	}
	return strings.Join(parts, "; ")
}

// recverrText decodes an IP_RECVERR / IPV6_RECVERR control message and
// shows its bytes.
func (t *T) recverrText(b []byte) string {
	if len(b) < 16 {
		return fmt.Sprintf("control %d bytes: %x", len(b), b)
	}
	ne := binary.NativeEndian
	clen, level, typ := ne.Uint64(b), int32(ne.Uint32(b[8:])), int32(ne.Uint32(b[12:]))
	name := fmt.Sprintf("level %d type %d", level, typ)
	switch {
	case level == unix.IPPROTO_IP && typ == unix.IP_RECVERR:
		name = "SOL_IP/IP_RECVERR"
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_RECVERR:
		name = "SOL_IPV6/IPV6_RECVERR"
	}
	d := b[16:min(len(b), int(clen))]
	if len(d) < 16 {
		return fmt.Sprintf("%s len %d: %x", name, clen, b)
	}
	info := strconv.Itoa(int(ne.Uint32(d[8:])))
	off := "none"
	if o := d[16:]; len(o) >= 8 {
		switch ne.Uint16(o) {
		case unix.AF_INET:
			off = netip.AddrPortFrom(netip.AddrFrom4([4]byte(o[4:8])), binary.BigEndian.Uint16(o[2:])).String()
		case unix.AF_INET6:
			if len(o) >= 28 {
				off = fmt.Sprintf("%v scope %d", netip.AddrPortFrom(netip.AddrFrom16([16]byte(o[8:24])), binary.BigEndian.Uint16(o[2:])), ne.Uint32(o[24:]))
			}
		case 0:
		default:
			off = fmt.Sprintf("family %d", ne.Uint16(o))
		}
	}
	data := strconv.Itoa(int(ne.Uint32(d[12:])))
	if ne.Uint32(d[12:]) != 0 {
		data += fmt.Sprintf(" (rfc4884 len %d flags %d)", ne.Uint16(d[12:]), d[14])
	}
	return fmt.Sprintf("%s len %d (%d bytes) errno %s origin %d type %d code %d pad %d info %s data %s offender %s: %s",
		name, clen, len(b), ErrName(syscall.Errno(ne.Uint32(d))), d[4], d[5], d[6], d[7], info, data, off, hex.EncodeToString(b))
}

// fromUnix turns a kernel sockaddr into the socket package's.
func fromUnix(sa unix.Sockaddr) socket.Sockaddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return socket.InetAddr(netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))
	case *unix.SockaddrInet6:
		return socket.InetAddr(netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)))
	}
	return nil
}

func recverrCases() []Case {
	v4 := func(name string, run func(t *T, s sockapi.Sock, closed *socket.SockaddrInet)) Case {
		return Case{Name: "recverr/udp " + name, Run: func(t *T) {
			s := t.UDP()
			s.SetTimeout(5 * time.Second)
			run(t, s, t.ClosedPort(AF_INET, "127.0.0.1"))
		}}
	}
	v6 := func(name string, dst string, run func(t *T, s sockapi.Sock, closed *socket.SockaddrInet)) Case {
		return Case{Name: "recverr/udp6 " + name, Run: func(t *T) {
			s := t.Socket6(DGRAM)
			s.SetTimeout(5 * time.Second)
			fam := AF_INET6
			if strings.Contains(dst, ".") {
				fam = AF_INET
			}
			c := t.ClosedPort(fam, strings.TrimPrefix(dst, "::ffff:"))
			if fam == AF_INET {
				c = in6(dst, port(c))
			}
			run(t, s, c)
		}}
	}
	on := func(t *T, s sockapi.Sock) {
		t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
	}
	on6 := func(t *T, s sockapi.Sock) {
		t.Check("IPV6_RECVERR=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
	}
	cs := []Case{
		v4("closed port, IP_RECVERR", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.GetInt("getsockopt IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.Send("sendto closed", s, []byte("hello"), 0, c)
			t.WaitErr(s)
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.PollEvents("poll after", s)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.RecvErr("recvmsg MSG_ERRQUEUE empty", s, 64)
		}),
		v4("closed port, IP_RECVERR, SO_ERROR before the queue", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.WaitErr(s)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.PollEvents("poll", s)
			t.Send("sendto closed again", s, []byte("two"), 0, c)
			t.Quiesce()
			t.RecvErr("recvmsg MSG_ERRQUEUE 1", s, 64)
			t.GetInt("SO_ERROR between", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.RecvErr("recvmsg MSG_ERRQUEUE 2", s, 64)
			t.GetInt("SO_ERROR after", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}),
		v4("closed port, IP_RECVERR, the next send fails", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.WaitErr(s)
			t.Send("sendto again", s, []byte("two"), 0, c)
			t.Send("sendto third", s, []byte("three"), 0, c)
			t.Quiesce()
			t.RecvErr("recvmsg MSG_ERRQUEUE 1", s, 64)
			t.RecvErr("recvmsg MSG_ERRQUEUE 2", s, 64)
			t.RecvErr("recvmsg MSG_ERRQUEUE 3", s, 64)
		}),
		v4("closed port, IP_RECVERR, recv with the error pending", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.WaitErr(s)
			t.Recv("recv", s, 64, socket.MSG_DONTWAIT)
			t.Recv("recv again", s, 64, socket.MSG_DONTWAIT)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}),
		v4("closed port, IP_RECVERR, recv with the error pending and data queued", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			me := t.BindLocal(s, "S")
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.WaitErr(s)
			t.Send("other socket sendto", t.UDP(), []byte("data"), 0, me)
			t.Quiesce()
			t.Recv("recv", s, 64, socket.MSG_DONTWAIT)
			t.Recv("recv again", s, 64, socket.MSG_DONTWAIT)
			t.Recv("recv third", s, 64, socket.MSG_DONTWAIT)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}),
		v4("closed port, no IP_RECVERR, connected, recv with the error pending and data queued", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			me := t.BindLocal(s, "S")
			t.Check("connect", s.Connect(c))
			t.Send("send", s, []byte("one"), 0, nil)
			t.WaitErr(s)
			// The port comes to life and answers.
			o := t.UDP()
			t.Check("bind the closed port", o.Bind(c))
			t.Send("reply", o, []byte("data"), 0, me)
			t.Quiesce()
			t.Recv("recv", s, 64, socket.MSG_DONTWAIT)
			t.Recv("recv again", s, 64, socket.MSG_DONTWAIT)
		}),
		v4("closed port, truncated", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("0123456789abcdef"), 0, c)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE 4 bytes", s, 4)
		}),
		v4("closed port, IP_RECVERR turned off", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.WaitErr(s)
			t.Check("IP_RECVERR=0", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 0))
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.PollEvents("poll after", s)
		}),
		v4("closed port, no IP_RECVERR, unconnected", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			t.Send("sendto closed", s, []byte("one"), 0, c)
			t.Quiesce()
			t.PollEvents("poll", s)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.Send("sendto again", s, []byte("two"), 0, c)
		}),
		v4("closed port, no IP_RECVERR, connected", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			t.Check("connect", s.Connect(c))
			t.Send("send", s, []byte("one"), 0, nil)
			t.WaitErr(s)
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.Send("send again", s, []byte("two"), 0, nil)
			t.Send("send third", s, []byte("three"), 0, nil)
		}),
		v4("closed port, IP_RECVERR, connected", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Check("connect", s.Connect(c))
			t.Send("send", s, []byte("one"), 0, nil)
			t.WaitErr(s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.Recv("recv", s, 64, socket.MSG_DONTWAIT)
		}),
		v6("closed port ::1, IPV6_RECVERR", "::1", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on6(t, s)
			t.GetInt("getsockopt IPV6_RECVERR", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.Send("sendto closed", s, []byte("hello6"), 0, c)
			t.WaitErr(s)
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.RecvErr("recvmsg MSG_ERRQUEUE empty", s, 64)
		}),
		v6("closed port ::1, no IPV6_RECVERR, unconnected", "::1", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			t.Send("sendto closed", s, []byte("hello6"), 0, c)
			t.Quiesce()
			t.PollEvents("poll", s)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}),
		v6("closed port ::1, IP_RECVERR only", "::1", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("hello6"), 0, c)
			t.Quiesce()
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}),
		v6("closed v4-mapped port, IPV6_RECVERR only", "::ffff:127.0.0.1", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on6(t, s)
			t.Send("sendto closed", s, []byte("mapped"), 0, c)
			t.Quiesce()
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}),
		v6("closed v4-mapped port, IP_RECVERR", "::ffff:127.0.0.1", func(t *T, s sockapi.Sock, c *socket.SockaddrInet) {
			on(t, s)
			t.Send("sendto closed", s, []byte("mapped"), 0, c)
			t.WaitErr(s)
			t.PollEvents("poll", s)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}),
	}
	big6 := make([]byte, 65527)
	for _, how := range []string{"IPV6_DONTFRAG", "IPV6_MTU_DISCOVER=DO"} {
		cs = append(cs, Case{Name: "recverr/udp6 local EMSGSIZE, " + how, Run: func(t *T) {
			r := t.Socket6(DGRAM)
			ra, _ := t.Bind6("bind receiver", r, in6("::1", 0), "R")
			s := t.Socket6(DGRAM)
			t.Send("sendto 65527 bytes, default", s, big6, 0, ra)
			if how == "IPV6_DONTFRAG" {
				t.Check(how, s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1))
			} else {
				t.Check(how, s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_MTU_DISCOVER, socket.IP_PMTUDISC_DO))
			}
			t.Send("sendto 65527 bytes, no IPV6_RECVERR", s, big6, 0, ra)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			on6(t, s)
			t.Send("sendto 65527 bytes", s, big6, 0, ra)
			t.PollEvents("poll", s)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			t.Send("sendto 1000 bytes", s, big6[:1000], 0, ra)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}})
	}
	cs = append(cs,
		Case{Name: "recverr/options udp", Run: func(t *T) {
			s := t.UDP()
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.Check("IP_RECVERR=2", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 2))
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.GetInt("IP_MTU_DISCOVER", s, socket.SOL_IP, socket.IP_MTU_DISCOVER)
			for _, v := range []int{socket.IP_PMTUDISC_OMIT, 6, -1, socket.IP_PMTUDISC_DO} {
				t.Check(fmt.Sprintf("IP_MTU_DISCOVER=%d", v), s.SetSockOptInt(socket.SOL_IP, socket.IP_MTU_DISCOVER, v))
				t.GetInt("IP_MTU_DISCOVER", s, socket.SOL_IP, socket.IP_MTU_DISCOVER)
			}
			t.Check("IPV6_RECVERR on AF_INET", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			t.GetInt("IPV6_RECVERR on AF_INET", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.RecvErr("recvmsg MSG_ERRQUEUE unbound", s, 64)
		}},
		Case{Name: "recverr/options udp6", Run: func(t *T) {
			s := t.Socket6(DGRAM)
			t.GetInt("IPV6_RECVERR", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.GetInt("IPV6_MTU_DISCOVER", s, socket.IPPROTO_IPV6, socket.IPV6_MTU_DISCOVER)
			t.GetInt("IPV6_DONTFRAG", s, socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG)
			for _, v := range []int{socket.IP_PMTUDISC_OMIT, 6, -1} {
				t.Check(fmt.Sprintf("IPV6_MTU_DISCOVER=%d", v), s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_MTU_DISCOVER, v))
				t.GetInt("IPV6_MTU_DISCOVER", s, socket.IPPROTO_IPV6, socket.IPV6_MTU_DISCOVER)
			}
			t.Check("IPV6_DONTFRAG=7", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 7))
			t.GetInt("IPV6_DONTFRAG", s, socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG)
			t.Check("IPV6_RECVERR=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			t.GetInt("IPV6_RECVERR", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
		}},
		Case{Name: "recverr/options tcp", Run: func(t *T) {
			s := t.TCP()
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			t.GetInt("IP_RECVERR", s, socket.SOL_IP, socket.IP_RECVERR)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
			s6 := t.Socket6(STREAM)
			t.GetInt("IPV6_RECVERR", s6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.Check("IPV6_RECVERR=1", s6.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			t.GetInt("IPV6_RECVERR", s6, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.GetInt("IP_RECVERR on AF_INET6", s6, socket.SOL_IP, socket.IP_RECVERR)
		}},
		Case{Name: "recverr/raw hdrincl udp closed port", Root: true, Run: func(t *T) {
			s := t.Socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			t.Check("IP_HDRINCL=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_HDRINCL, 1))
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			p := make([]byte, 20+8+4)
			p[0], p[8], p[9] = 0x45, 64, socket.IPPROTO_UDP
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			copy(p[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
			binary.BigEndian.PutUint16(p[20:], 7)
			binary.BigEndian.PutUint16(p[22:], uint16(port(c)))
			binary.BigEndian.PutUint16(p[24:], 12)
			copy(p[28:], "hdr!")
			t.Send("sendto closed", s, p, 0, socket.Inet("127.0.0.1", 0))
			t.WaitErr(s)
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 64, 24)
		}},
		Case{Name: "recverr/options raw6", Root: true, Run: func(t *T) {
			s := t.Socket(AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
			t.Check("IP_RECVERR", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			t.Check("IPV6_RECVERR", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			t.GetInt("IPV6_RECVERR", s, socket.IPPROTO_IPV6, socket.IPV6_RECVERR)
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}},
		Case{Name: "recverr/raw6 icmpv6 local EMSGSIZE", Root: true, Run: func(t *T) {
			// The local error's port is the flow's: for ICMPv6 the type
			// and code overlay it (fl6_icmp_type), 128 0 reads 32768.
			s := t.Socket(AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
			t.Check("IPV6_RECVERR=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVERR, 1))
			t.Check("IPV6_DONTFRAG=1", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1))
			echo := make([]byte, 65535)
			echo[0] = 128
			t.Send("sendto ::1 65535 bytes", s, echo, 0, in6("::1", 0))
			t.Label(in6("::1", 128<<8), "type 128 code 0")
			t.RecvErr("recvmsg MSG_ERRQUEUE", s, 64)
		}},
		Case{Name: "recverr/raw udp closed port", Root: true, Run: func(t *T) {
			s := t.Socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
			c := t.ClosedPort(AF_INET, "127.0.0.1")
			t.Check("IP_RECVERR=1", s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1))
			t.sendRawUDP(s, port(c))
			t.WaitErr(s)
			t.recvErr("recvmsg MSG_ERRQUEUE", s, 64, 4)
			t.GetInt("SO_ERROR", s, socket.SOL_SOCKET, socket.SO_ERROR)
		}},
	)
	cs = append(cs, recverrCmsgCases()...) // recverr_cmsg_cases.go
	return append(cs, rfc4884Cases()...)   // recverr_rfc4884_cases.go
}

// recvFlagsText names the msg_flags a recvmsg returned (MSG_ERRQUEUE,
// MSG_TRUNC, MSG_CTRUNC; any other bits in hex), joined by "|".
func recvFlagsText(rflags int) string {
	var fl []string
	for _, f := range []struct {
		bit  int
		name string
	}{{socket.MSG_ERRQUEUE, "MSG_ERRQUEUE"}, {socket.MSG_TRUNC, "MSG_TRUNC"}, {socket.MSG_CTRUNC, "MSG_CTRUNC"}} {
		if rflags&f.bit != 0 {
			fl = append(fl, f.name)
			rflags &^= f.bit
		}
	}
	if rflags != 0 {
		fl = append(fl, fmt.Sprintf("%#x", rflags))
	}
	return strings.Join(fl, "|")
}

// sendRawUDP sends, from raw IPv4 UDP socket s, a UDP datagram from port
// 7 to 127.0.0.1:dport carrying "raw!" (checksum 0).
func (t *T) sendRawUDP(s sockapi.Sock, dport int) {
	u := make([]byte, 8+4)
	binary.BigEndian.PutUint16(u[0:], 7)
	binary.BigEndian.PutUint16(u[2:], uint16(dport))
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], "raw!")
	t.Send("sendto closed", s, u, 0, socket.Inet("127.0.0.1", 0))
}
