package conformance

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
	"golang.org/x/sys/unix"
)

// Software transmit timestamps on datagram sockets (socket/txstamp.go;
// Linux's __skb_tstamp_tx, sock_recv_errqueue, ip_recv_error,
// ipv6_recv_error): what SO_TIMESTAMPING's TX_SOFTWARE and TX_SCHED, the
// per-send SO_TIMESTAMPING and SCM_TS_OPT_ID messages, OPT_ID, OPT_TSONLY
// and OPT_CMSG queue on the error queue, and what a recvmsg(MSG_ERRQUEUE)
// of each entry gives: the length of the looped packet and its last
// bytes (the data sent; the headers before it hold an IP ID and checksum
// that differ), whether a sender address came, and each control message:
// a timestamp's time checked against the send, sock_extended_err decoded.

const txSW = socket.SOF_TIMESTAMPING_TX_SOFTWARE | socket.SOF_TIMESTAMPING_SOFTWARE

// eeText decodes an IP_RECVERR / IPV6_RECVERR / PACKET_TX_TIMESTAMP
// message: the sock_extended_err and its offender's family and address.
func eeText(b []byte) (string, bool) {
	ne := binary.NativeEndian
	clen, level, typ := int(ne.Uint64(b)), int32(ne.Uint32(b[8:])), int32(ne.Uint32(b[12:]))
	var name string
	switch {
	case level == unix.IPPROTO_IP && typ == unix.IP_RECVERR:
		name = "IP_RECVERR"
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_RECVERR:
		name = "IPV6_RECVERR"
	case level == unix.SOL_PACKET && typ == unix.PACKET_TX_TIMESTAMP:
		name = "PACKET_TX_TIMESTAMP"
	default:
		return "", false
	}
	d := b[16:min(clen, len(b))]
	if len(d) < 16 {
		return fmt.Sprintf("%s len %d (cut)", name, clen), true
	}
	txt := fmt.Sprintf("%s len %d: errno %d origin %d type %d code %d info %d data %d", name, clen,
		ne.Uint32(d), d[4], d[5], d[6], ne.Uint32(d[8:]), ne.Uint32(d[12:]))
	o := d[16:]
	switch {
	case len(o) >= 16 && ne.Uint16(o) == unix.AF_INET:
		txt += fmt.Sprintf(", offender AF_INET %v", netip.AddrFrom4([4]byte(o[4:8])))
	case len(o) >= 28 && ne.Uint16(o) == unix.AF_INET6:
		txt += fmt.Sprintf(", offender AF_INET6 %v scope %d", netip.AddrFrom16([16]byte(o[8:24])), ne.Uint32(o[24:]))
	case len(o) > 0:
		zero := true
		for _, c := range o {
			zero = zero && c == 0
		}
		txt += fmt.Sprintf(", offender %d bytes, zero %v", len(o), zero)
	}
	return txt, true
}

// txErrRead logs one recvmsg(MSG_ERRQUEUE) (waiting for the error queue
// first, up to 5 s) with a bufSize-byte buffer and an oobSize-byte
// control buffer; tail is how many of the payload's last bytes to show.
func (t *T) txErrRead(step string, s sockapi.Sock, bufSize, oobSize, tail int, lo time.Time) {
	t.WaitErr(s)
	buf := make([]byte, bufSize)
	oob := make([]byte, oobSize)
	var n, oobn, rflags int
	var from any
	var err error
	flags := socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
	switch v := s.(type) {
	case sockapi.StackSock:
		var f socket.Sockaddr
		n, oobn, rflags, f, err = v.RecvMsgControl(buf, oob, flags)
		if f != nil {
			from = f
		}
	case sockapi.HostSock:
		var f unix.Sockaddr
		n, oobn, rflags, f, err = unix.Recvmsg(v.Fileno(), buf, oob, flags)
		if f != nil {
			from = f
		}
	}
	hi := time.Now()
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	end := buf[max(0, min(n, len(buf))-tail):min(n, len(buf))]
	t.Logf("%s: %d bytes ending %q, flags %s, sender %v", step, n, end, recvFlagsText(rflags), from != nil)
	parts := t.errCmsgTexts(oob[:oobn], lo, hi)
	if len(parts) == 0 {
		parts = append(parts, "no control")
	}
	t.Logf("%s: %s", step, strings.Join(parts, "; "))
}

// errCmsgTexts describes each control message of an error-queue read:
// timestamps between lo and hi, the extended error, IP messages.
func (t *T) errCmsgTexts(b []byte, lo, hi time.Time) []string {
	var parts []string
	for len(b) >= 16 {
		clen := int(binary.NativeEndian.Uint64(b))
		if clen < 16 {
			break
		}
		space := min((clen+7)&^7, len(b))
		if txt, ok := stampCmsgText(b[:space], lo, hi); ok {
			parts = append(parts, txt)
		} else if txt, ok := eeText(b[:space]); ok {
			parts = append(parts, txt)
		} else {
			parts = append(parts, t.ipCmsgText(b[:space]))
		}
		b = b[space:]
	}
	return parts
}

// txErrDrain logs the reads of the rest of the error queue until it is
// empty (at most max).
func (t *T) txErrDrain(step string, s sockapi.Sock, max, tail int, lo time.Time) {
	for i := 0; i < max; i++ {
		if !t.errQueued(s) {
			t.Logf("%s: queue empty after %d", step, i)
			return
		}
		t.txErrRead(fmt.Sprintf("%s %d", step, i), s, 256, 256, tail, lo)
	}
	t.Logf("%s: still queued after %d", step, max)
}

// errQueued reports whether s is in error (POLLERR: an error queued,
// or a pending error, which these cases never leave).
func (t *T) errQueued(s sockapi.Sock) bool {
	switch v := s.(type) {
	case sockapi.StackSock:
		return v.Readiness(waiter.EventIn)&waiter.EventErr != 0
	case sockapi.HostSock:
		fds := []unix.PollFd{{Fd: int32(v.Fileno()), Events: unix.POLLIN}}
		unix.Poll(fds, 0)
		return fds[0].Revents&unix.POLLERR != 0
	}
	return false
}

// pollInPri is poll(2) of s now for POLLIN and POLLPRI: what it gives
// of those and POLLERR.
func pollInPri(s sockapi.Sock) (in, pri, er bool) {
	switch v := s.(type) {
	case sockapi.StackSock:
		r := v.Readiness(waiter.EventIn | waiter.EventPri)
		return r&waiter.EventIn != 0, r&waiter.EventPri != 0, r&waiter.EventErr != 0
	case sockapi.HostSock:
		fds := []unix.PollFd{{Fd: int32(v.Fileno()), Events: unix.POLLIN | unix.POLLPRI}}
		unix.Poll(fds, 0)
		r := fds[0].Revents
		return r&unix.POLLIN != 0, r&unix.POLLPRI != 0, r&unix.POLLERR != 0
	}
	return false, false, false
}

// pollPri shows POLLPRI and POLLERR of s now (POLLIN and POLLPRI asked).
func (t *T) pollPri(s sockapi.Sock) string {
	_, pri, er := pollInPri(s)
	return fmt.Sprintf("PRI %v, ERR %v", pri, er)
}

// tsCmsg is an SO_TIMESTAMPING (typ) control message of flags v.
func tsCmsg(typ, v int) []byte { return cmsgInt(socket.SOL_SOCKET, typ, v) }

// txPair is a sender (IPv6 when v6) and a bound receiver's address.
func (t *T) txPair(v6 bool) (w sockapi.Sock, to socket.Sockaddr) {
	r, w, to := t.rxStampReceiver(v6)
	_ = r
	return w, to
}

func txStampCases() []Case {
	var cs []Case
	fams := []struct {
		name string
		v6   bool
	}{{"udp", false}, {"udp6", true}}
	for _, f := range fams {
		pktinfo := func(t *T, s sockapi.Sock) {
			if f.v6 {
				t.Check("IPV6_RECVPKTINFO", s.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1))
			} else {
				t.Check("IP_PKTINFO", s.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1))
			}
		}
		for _, c := range []struct {
			name  string
			flags int
			setup func(t *T, s sockapi.Sock)
		}{
			{"TX_SOFTWARE|SOFTWARE", txSW, nil},
			{"TX_SOFTWARE without SOFTWARE", socket.SOF_TIMESTAMPING_TX_SOFTWARE, nil},
			{"TX_SCHED|TX_SOFTWARE|SOFTWARE|OPT_ID", txSW | socket.SOF_TIMESTAMPING_TX_SCHED | socket.SOF_TIMESTAMPING_OPT_ID, nil},
			{"OPT_TSONLY|OPT_ID", txSW | socket.SOF_TIMESTAMPING_OPT_TSONLY | socket.SOF_TIMESTAMPING_OPT_ID, nil},
			{"OPT_CMSG with PKTINFO", txSW | socket.SOF_TIMESTAMPING_OPT_CMSG, pktinfo},
			{"PKTINFO without OPT_CMSG", txSW, pktinfo},
			{"OPT_CMSG|OPT_TSONLY with PKTINFO", txSW | socket.SOF_TIMESTAMPING_OPT_CMSG | socket.SOF_TIMESTAMPING_OPT_TSONLY, pktinfo},
			{"with SO_TIMESTAMPNS", txSW, func(t *T, s sockapi.Sock) {
				t.Check("SO_TIMESTAMPNS", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPNS, 1))
			}},
			{"SO_TIMESTAMP only", socket.SOF_TIMESTAMPING_TX_SOFTWARE, func(t *T, s sockapi.Sock) {
				t.Check("SO_TIMESTAMP", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 1))
			}},
			{"OPT_RX_FILTER", txSW | socket.SOF_TIMESTAMPING_OPT_RX_FILTER, nil},
			{"SO_TIMESTAMPING_NEW", txSW, func(t *T, s sockapi.Sock) {
				t.Check("SO_TIMESTAMPING_NEW", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_NEW, txSW))
			}},
		} {
			cs = append(cs, Case{"txstamp/" + f.name + " " + c.name, false, func(t *T) {
				w, to := t.txPair(f.v6)
				if c.setup != nil {
					c.setup(t, w)
				}
				if c.name != "SO_TIMESTAMPING_NEW" {
					t.Check("SO_TIMESTAMPING", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, c.flags))
				}
				lo := time.Now()
				t.Send("send", w, []byte("first"), 0, to)
				t.Send("send", w, []byte("second"), 0, to)
				t.txErrRead("recvmsg MSG_ERRQUEUE", w, 256, 512, 5, lo)
				t.txErrRead("recvmsg MSG_ERRQUEUE, 10-byte buffer", w, 10, 512, 5, lo)
				t.txErrDrain("rest", w, 4, 5, lo)
				t.GetInt("SO_ERROR", w, socket.SOL_SOCKET, socket.SO_ERROR)
			}})
		}
		cs = append(cs, Case{"txstamp/" + f.name + " per-send control messages", false, func(t *T) {
			w, to := t.txPair(f.v6)
			lo := time.Now()
			t.SendCtl("SO_TIMESTAMPING TX_SOFTWARE, socket without", w, []byte("a"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE), to)
			t.txErrRead("recvmsg MSG_ERRQUEUE", w, 256, 256, 1, lo)
			t.SendCtl("SCM_TS_OPT_ID without OPT_ID", w, []byte("b"), tsCmsg(socket.SCM_TS_OPT_ID, 7), to)
			t.Check("SO_TIMESTAMPING SOFTWARE|OPT_ID", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
				socket.SOF_TIMESTAMPING_SOFTWARE|socket.SOF_TIMESTAMPING_OPT_ID))
			t.Send("plain send", w, []byte("c"), 0, to)
			t.Logf("queued after a plain send: %v", t.errQueued(w))
			t.SendCtl("SO_TIMESTAMPING TX_SOFTWARE", w, []byte("d"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE), to)
			t.SendCtl("SO_TIMESTAMPING_NEW TX_SCHED", w, []byte("e"), tsCmsg(socket.SO_TIMESTAMPING_NEW, socket.SOF_TIMESTAMPING_TX_SCHED), to)
			oob := append(tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE), tsCmsg(socket.SCM_TS_OPT_ID, 1000)...)
			t.SendCtl("TX_SOFTWARE and SCM_TS_OPT_ID 1000", w, []byte("f"), oob, to)
			t.SendCtl("SO_TIMESTAMPING TX_SOFTWARE again", w, []byte("g"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE), to)
			t.SendCtl("SCM_TS_OPT_ID alone", w, []byte("h"), tsCmsg(socket.SCM_TS_OPT_ID, 5), to)
			t.SendCtl("SO_TIMESTAMPING RX_SOFTWARE", w, []byte("i"), tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_RX_SOFTWARE), to)
			t.SendCtl("SO_TIMESTAMPING 2 bytes", w, []byte("j"), cmsgBytes(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, []byte{2, 0}), to)
			t.SendCtl("SCM_TS_OPT_ID 2 bytes", w, []byte("k"), cmsgBytes(socket.SOL_SOCKET, socket.SCM_TS_OPT_ID, []byte{2, 0}), to)
			t.SendCtl("SO_TIMESTAMPING TX_ACK|TX_COMPLETION", w, []byte("l"), tsCmsg(socket.SO_TIMESTAMPING_OLD,
				socket.SOF_TIMESTAMPING_TX_ACK|socket.SOF_TIMESTAMPING_TX_COMPLETION), to)
			t.txErrDrain("errqueue", w, 8, 1, lo)
		}})
		cs = append(cs, Case{"txstamp/" + f.name + " OPT_ID restarts", false, func(t *T) {
			w, to := t.txPair(f.v6)
			fl := txSW | socket.SOF_TIMESTAMPING_OPT_ID | socket.SOF_TIMESTAMPING_OPT_TSONLY
			t.Check("SO_TIMESTAMPING with OPT_ID", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, fl))
			lo := time.Now()
			for _, m := range []string{"1", "2", "3"} {
				t.Send("send", w, []byte(m), 0, to)
			}
			t.Check("SO_TIMESTAMPING again with OPT_ID", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, fl|socket.SOF_TIMESTAMPING_TX_SCHED))
			t.Send("send", w, []byte("4"), 0, to)
			t.Send("send, too big", w, make([]byte, 70000), 0, to)
			t.Check("SO_TIMESTAMPING without OPT_ID", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, txSW|socket.SOF_TIMESTAMPING_OPT_TSONLY))
			t.Send("send", w, []byte("5"), 0, to)
			t.Check("SO_TIMESTAMPING with OPT_ID once more", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, fl))
			t.Send("send", w, []byte("6"), 0, to)
			t.txErrDrain("errqueue", w, 10, 1, lo)
		}})
		cs = append(cs, Case{"txstamp/" + f.name + " poll and RECVERR off", false, func(t *T) {
			w, to := t.txPair(f.v6)
			t.PollEvents("fresh", w)
			t.Check("SO_TIMESTAMPING", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, txSW))
			t.Send("send", w, []byte("x"), 0, to)
			t.WaitErr(w)
			t.PollEvents("after the send", w)
			t.Recv("recv (data)", w, 64, socket.MSG_DONTWAIT)
			t.GetInt("SO_ERROR", w, socket.SOL_SOCKET, socket.SO_ERROR)
			lvl, opt := socket.SOL_IP, socket.IP_RECVERR
			if f.v6 {
				lvl, opt = socket.IPPROTO_IPV6, socket.IPV6_RECVERR
			}
			t.Check("RECVERR 1", w.SetSockOptInt(lvl, opt, 1))
			t.Logf("queued with RECVERR on: %v", t.errQueued(w))
			t.Check("RECVERR 0", w.SetSockOptInt(lvl, opt, 0))
			t.Logf("queued after RECVERR off: %v", t.errQueued(w))
			t.PollEvents("after the purge", w)
		}})
		cs = append(cs, Case{"txstamp/" + f.name + " error queue bounded by SO_RCVBUF", false, func(t *T) {
			w, to := t.txPair(f.v6)
			t.Check("SO_RCVBUF 1", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1))
			t.Check("SO_TIMESTAMPING", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
				txSW|socket.SOF_TIMESTAMPING_OPT_ID|socket.SOF_TIMESTAMPING_OPT_TSONLY))
			lo := time.Now()
			for i := 0; i < 8; i++ {
				t.Send("send", w, []byte("x"), 0, to)
			}
			t.txErrDrain("errqueue", w, 10, 1, lo)
		}})
	}
	cs = append(cs, Case{"txstamp/SO_SELECT_ERR_QUEUE", false, func(t *T) {
		w, to := t.txPair(false)
		t.GetInt("SO_SELECT_ERR_QUEUE fresh", w, socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE)
		t.Check("SO_TIMESTAMPING", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, txSW))
		t.Send("send", w, []byte("x"), 0, to)
		t.WaitErr(w)
		t.Logf("without: %s", t.pollPri(w))
		t.Check("SO_SELECT_ERR_QUEUE 5", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE, 5))
		t.GetInt("SO_SELECT_ERR_QUEUE", w, socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE)
		t.Logf("with: %s", t.pollPri(w))
		t.txErrRead("recvmsg MSG_ERRQUEUE", w, 256, 256, 1, time.Time{}.Add(1))
		t.Logf("read: %s", t.pollPri(w))
		t.Check("SO_SELECT_ERR_QUEUE 0", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE, 0))
		t.GetInt("SO_SELECT_ERR_QUEUE off", w, socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE)
		c := t.TCP()
		t.Check("TCP SO_SELECT_ERR_QUEUE", c.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE, 1))
		t.GetInt("TCP SO_SELECT_ERR_QUEUE", c, socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE)
	}})
	cs = append(cs, Case{"txstamp/udp6 to a v4-mapped peer", false, func(t *T) {
		_, r, _, ba := t.UDPPair()
		_ = r
		w := t.Socket6(DGRAM)
		t.Check("IPV6_RECVPKTINFO", w.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1))
		t.Check("IP_PKTINFO", w.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1))
		t.Check("SO_TIMESTAMPING", w.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, txSW|socket.SOF_TIMESTAMPING_OPT_CMSG))
		to := &socket.SockaddrInet{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), ba.AddrPort.Port())}
		lo := time.Now()
		t.Send("send", w, []byte("mapped"), 0, to)
		t.txErrRead("recvmsg MSG_ERRQUEUE", w, 256, 512, 5, lo)
	}})
	for _, k := range []struct {
		name string
		fam  int
		to   socket.Sockaddr
	}{{"raw", AF_INET, nil}, {"raw6", AF_INET6, nil}} {
		cs = append(cs, Case{"txstamp/" + k.name, true, func(t *T) {
			s := t.Socket(k.fam, RAW, 253)
			to := socket.Sockaddr(t.Loop(0))
			if k.fam == AF_INET6 {
				to = lo6(0)
			}
			t.Check("SO_TIMESTAMPING", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
				txSW|socket.SOF_TIMESTAMPING_TX_SCHED|socket.SOF_TIMESTAMPING_OPT_ID))
			lo := time.Now()
			t.Send("send", s, []byte("raw data"), 0, to)
			t.txErrRead("recvmsg MSG_ERRQUEUE", s, 256, 512, 8, lo)
			t.txErrRead("recvmsg MSG_ERRQUEUE", s, 256, 512, 8, lo)
			t.txErrDrain("rest", s, 4, 8, lo)
		}})
	}
	cs = append(cs, Case{"txstamp/raw icmp echo", true, func(t *T) {
		s := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
		t.Check("SO_TIMESTAMPING", s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
			txSW|socket.SOF_TIMESTAMPING_OPT_TSONLY))
		echo := []byte{8, 0, 0, 0, 0x12, 0x37, 0, 1, 't', 'x'}
		sum := wire.Checksum(echo)
		echo[2], echo[3] = byte(sum>>8), byte(sum)
		lo := time.Now()
		t.Send("send echo", s, echo, 0, t.Loop(0))
		t.txErrRead("recvmsg MSG_ERRQUEUE", s, 256, 512, 2, lo)
	}})
	for _, ty := range []struct {
		name string
		typ  int
	}{{"packet dgram", DGRAM}, {"packet raw", RAW}} {
		cs = append(cs, Case{"txstamp/" + ty.name, true, func(t *T) {
			const proto = 0x88b5 // IEEE local experimental: no protocol takes it
			p := t.Socket(socket.AF_PACKET, ty.typ, socket.Htons(proto))
			t.Check("bind lo", p.Bind(&socket.SockaddrPacket{Ifindex: 1, Protocol: proto}))
			t.Logf("fresh: errqueue %v", t.errQueued(p))
			t.Check("SO_TIMESTAMPING", p.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD,
				txSW|socket.SOF_TIMESTAMPING_TX_SCHED|socket.SOF_TIMESTAMPING_OPT_ID))
			data := []byte("packet stamp")
			if ty.typ == RAW {
				f := make([]byte, 14, 14+len(data))
				f[12], f[13] = proto>>8, proto&0xff
				data = append(f, data...)
			}
			to := &socket.SockaddrPacket{Ifindex: 1, Protocol: proto, HWAddr: [6]byte{}}
			lo := time.Now()
			t.Send("send", p, data, 0, to)
			t.Logf("after the send: errqueue %v", t.errQueued(p))
			t.Check("SO_SELECT_ERR_QUEUE", p.SetSockOptInt(socket.SOL_SOCKET, socket.SO_SELECT_ERR_QUEUE, 1))
			t.Logf("with SO_SELECT_ERR_QUEUE: %s", t.pollPri(p))
			t.txErrRead("recvmsg MSG_ERRQUEUE", p, 256, 512, 5, lo)
			t.txErrRead("recvmsg MSG_ERRQUEUE, 8-byte buffer", p, 8, 512, 5, lo)
			if ty.typ == RAW {
				// sendmsg to the bound interface (no address: the
				// harness passes no sockaddr_ll to the kernel).
				oob := append(tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_TX_SOFTWARE), tsCmsg(socket.SCM_TS_OPT_ID, 77)...)
				t.SendCtl("sendmsg with SO_TIMESTAMPING and SCM_TS_OPT_ID 77", p, data, oob, nil)
				t.SendCtl("sendmsg with SOL_IP IP_TTL", p, data, cmsgInt(socket.SOL_IP, socket.IP_TTL, 3), nil)
				t.SendCtl("sendmsg with SO_TIMESTAMPING RX_SOFTWARE", p, data, tsCmsg(socket.SO_TIMESTAMPING_OLD, socket.SOF_TIMESTAMPING_RX_SOFTWARE), nil)
			}
			t.txErrDrain("rest", p, 4, 5, lo)
		}})
	}
	return cs
}

// cmsgBytes is a control message of level and typ carrying d.
func cmsgBytes(level, typ int, d []byte) []byte {
	b := make([]byte, (16+len(d)+7)&^7)
	binary.NativeEndian.PutUint64(b, uint64(16+len(d)))
	binary.NativeEndian.PutUint32(b[8:], uint32(level))
	binary.NativeEndian.PutUint32(b[12:], uint32(typ))
	copy(b[16:], d)
	return b
}
