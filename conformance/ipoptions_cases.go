package conformance

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// IP_OPTIONS: the IPv4 options of every datagram or segment a socket
// sends, as getsockopt reads them back and as a receiver on 127.0.0.1
// sees them (IP_RECVOPTS, IP_RETOPTS). Option bytes name 127.0.0.x, 10.1.2.3 and
// 198.51.100.7, but every datagram goes to 127.0.0.1: a loose source
// route through 127.0.0.2 goes there first (the kernel and sockstack
// drop a source-routed datagram on receipt).

// GetIPOptions logs getsockopt(IP_OPTIONS) as bytes; the kernel side
// reads up to 64 bytes (x/sys/unix's string read stops at a zero byte).
func (t *T) GetIPOptions(step string, s sockapi.Sock) {
	var b []byte
	var err error
	switch v := s.(type) {
	case sockapi.StackSock:
		var x any
		if x, err = v.GetSockOpt(socket.SOL_IP, socket.IP_OPTIONS); err == nil {
			str, _ := x.(string)
			b = []byte(str)
		}
	case sockapi.HostSock:
		// buf[:64] is the value, buf[64:68] its length (socklen_t).
		buf := make([]byte, 68)
		binary.NativeEndian.PutUint32(buf[64:], 64)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(v.Fileno()), unix.SOL_IP, unix.IP_OPTIONS,
			uintptr(unsafePointer(&buf[0])), uintptr(unsafePointer(&buf[64])), 0)
		l := binary.NativeEndian.Uint32(buf[64:])
		if e != 0 {
			err = e
		} else {
			b = buf[:l]
		}
	}
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %x", step, b)
}

func ipOptionsCases() []Case {
	var cs []Case
	values := []struct {
		name string
		v    string
	}{
		{"none", ""},
		{"one NOP", "\x01"},
		{"three NOPs", "\x01\x01\x01"},
		{"NOP, END, garbage", "\x01\x00\x55\x55"},
		{"Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00"},
		{"Record Route, two slots, one filled", "\x07\x0b\x08\x0a\x01\x02\x03\x09\x09\x09\x09"},
		{"Record Route, pointer 3", "\x07\x07\x03\x00\x00\x00\x00"},
		{"Record Route, full", "\x07\x07\x08\x0a\x01\x02\x03"},
		{"Record Route, slot cut", "\x07\x09\x08\x0a\x01\x02\x03\x00\x00"},
		{"two Record Routes", "\x07\x07\x04\x00\x00\x00\x00\x01\x07\x07\x04\x00\x00\x00\x00"},
		{"Timestamp only", "\x44\x0c\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"Timestamp and address", "\x44\x14\x05\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"Timestamp prespecified, another host", "\x44\x0c\x05\x03\xc6\x33\x64\x07\x00\x00\x00\x00"},
		{"Timestamp prespecified, this host", "\x44\x0c\x05\x03\x7f\x00\x00\x01\x00\x00\x00\x00"},
		{"Timestamp full, overflow 15", "\x44\x08\x09\xf0\x00\x00\x00\x00"},
		{"Timestamp full, overflow 2", "\x44\x08\x09\x20\x00\x00\x00\x00"},
		{"loose source route", "\x83\x0b\x04\x7f\x00\x00\x02\x7f\x00\x00\x03"},
		{"strict source route", "\x89\x07\x04\x7f\x00\x00\x02"},
		{"source route, pointer 8", "\x83\x0b\x08\x7f\x00\x00\x02\x7f\x00\x00\x03"},
		{"source route, odd length", "\x83\x09\x04\x7f\x00\x00\x02\x00\x00"},
		{"Router Alert", "\x94\x04\x00\x00"},
		{"Router Alert, length 3", "\x94\x03\x00\x00"},
		{"CIPSO", "\x86\x06\x00\x00\x00\x01"},
		{"unknown option", "\x82\x04\x00\x00"},
		{"length 1", "\x07\x01\x00\x00"},
		{"length past the end", "\x07\x08\x04\x00"},
		{"41 bytes", "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"},
		{"40 NOPs", "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"},
	}
	for _, k := range []struct {
		name    string
		fam, ty int
		pr      int
		root    bool
	}{{"udp", AF_INET, DGRAM, 0, false}, {"udp6", AF_INET6, DGRAM, 0, false}, {"raw", AF_INET, RAW, socket.IPPROTO_UDP, true}, {"raw6", AF_INET6, RAW, socket.IPPROTO_UDP, true}, {"tcp", AF_INET, STREAM, 0, false}, {"tcp6", AF_INET6, STREAM, 0, false}} {
		list := values
		if k.name != "udp" {
			list = values[4:5] // one value: the kind's answer
		}
		for _, v := range list {
			cs = append(cs, Case{Name: "ipoptions/opt/" + k.name + "/" + v.name, Root: k.root, Run: func(t *T) {
				s := t.Socket(k.fam, k.ty, k.pr)
				t.GetIPOptions("get default", s)
				t.Check("set", s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, v.v))
				t.GetIPOptions("get", s)
				t.Check("set none", s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, ""))
				t.GetIPOptions("get after none", s)
			}})
		}
	}
	// TCP: the options go on every segment; an accepted socket takes
	// the SYN's options echoed (its getsockopt reads them undone: a slot
	// left for its own address empty), a listener's own are not its
	// children's.
	tcpConn := func(name, opts string, fam int) Case {
		return Case{Name: "ipoptions/tcp " + name, Run: func(t *T) {
			l, la := t.Listener(4)
			t.Check("listener IP_OPTIONS", l.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x01\x01\x01\x01"))
			c := t.Socket(fam, STREAM, 0)
			c.SetTimeout(5 * time.Second)
			t.Check("IP_OPTIONS", c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, opts))
			to := socket.Sockaddr(la)
			if fam == AF_INET6 {
				to = in6("::ffff:127.0.0.1", port(la))
			}
			t.Must("connect", c.Connect(to))
			l.SetTimeout(5 * time.Second)
			s, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(s)
			s.SetTimeout(5 * time.Second)
			t.GetIPOptions("client", c)
			t.GetIPOptions("accepted", s)
			t.Send("send", c, []byte("with"), 0, nil)
			t.Recv("recv", s, 64, 0)
			t.Send("reply", s, []byte("echoed"), 0, nil)
			t.Recv("recv reply", c, 64, 0)
			// Changed on the connected socket: the next segments.
			t.Check("IP_OPTIONS connected", c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x94\x04\x00\x00"))
			t.GetIPOptions("client after", c)
			t.Send("send after", c, []byte("after"), 0, nil)
			t.Recv("recv after", s, 64, 0)
			t.Check("IP_OPTIONS bad on connected", c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x07\x01\x00\x00"))
			t.GetIPOptions("client after bad", c)
			t.Check("IP_OPTIONS none", c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, ""))
			t.GetIPOptions("client after none", c)
		}}
	}
	cs = append(cs,
		tcpConn("Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00", AF_INET),
		tcpConn("Record Route, three slots", "\x07\x0f\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", AF_INET),
		tcpConn("Timestamp prespecified, another host", "\x44\x0c\x05\x03\xc6\x33\x64\x07\x00\x00\x00\x00", AF_INET),
		tcpConn("NOPs", "\x01\x01\x01\x01\x01\x01\x01\x01", AF_INET),
		tcpConn("Record Route from a dual-stack socket", "\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00", AF_INET6),
		tcpConn("none", "", AF_INET),
		Case{Name: "ipoptions/tcp invalid values", Run: func(t *T) {
			s := t.TCP()
			for _, v := range []string{"\x07\x01\x00\x00", "\x07\x08\x04\x00", "\x86\x06\x00\x00\x00\x01", string(make([]byte, 41))} {
				t.Check(fmt.Sprintf("set %x", v), s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, v))
			}
			t.GetIPOptions("get", s)
		}},
	)
	// Sent: what the receiver sees.
	send := func(name string, opts string, fam int, dropped bool) Case {
		return Case{Name: "ipoptions/send " + name, Run: func(t *T) {
			r := t.UDP()
			r.SetTimeout(5 * time.Second)
			ra := t.BindLocal(r, "R")
			for _, o := range []int{socket.IP_RECVOPTS, socket.IP_RETOPTS, socket.IP_RECVTTL} {
				t.Check(fmt.Sprintf("receiver option %d", o), r.SetSockOptInt(socket.SOL_IP, o, 1))
			}
			s := t.Socket(fam, DGRAM, 0)
			to := ra
			if fam == AF_INET6 {
				to = in6("::ffff:127.0.0.1", port(ra))
			}
			t.Check("IP_OPTIONS", s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, opts))
			t.Send("send", s, []byte("with"), 0, to)
			t.Check("IP_OPTIONS none", s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, ""))
			t.Send("send", s, []byte("without"), 0, to)
			t.RecvCtl("recvmsg", r, 64, 256, 0)
			second := 0
			if dropped {
				// Loopback keeps order: the first was handled before.
				second = recvNoWait
			}
			t.RecvCtl("recvmsg", r, 64, 256, second)
		}}
	}
	cs = append(cs,
		send("Record Route, three slots", "\x01\x07\x0f\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", AF_INET, false),
		send("Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00", AF_INET, false),
		send("Record Route full", "\x07\x07\x08\x0a\x01\x02\x03", AF_INET, false),
		send("Record Route from a dual-stack socket", "\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00", AF_INET6, false),
		send("Timestamp prespecified, another host, and Record Route", "\x44\x0c\x05\x03\xc6\x33\x64\x07\x00\x00\x00\x00\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00", AF_INET, false),
		send("Router Alert and NOPs", "\x94\x04\x00\x00\x01\x01\x01\x01", AF_INET, false),
		// Dropped on receipt by both: the second datagram comes first.
		send("loose source route through 127.0.0.2", "\x83\x07\x04\x7f\x00\x00\x02", AF_INET, true),
		Case{Name: "ipoptions/send EMSGSIZE with 4 bytes of options", Run: func(t *T) {
			r := t.UDP()
			ra := t.BindLocal(r, "R")
			s := t.UDP()
			t.Check("IP_OPTIONS", s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x01\x01\x01\x01"))
			t.Send("send 65504", s, make([]byte, 65504), 0, ra)
			t.Send("send 65503", s, make([]byte, 65503), 0, ra)
		}},
	)
	return cs
}
