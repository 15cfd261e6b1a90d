package conformance

import (
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// SO_BINDTODEVICE and SO_BINDTOIFINDEX on TCP (tcp/bindtodev.go) and
// UDP (stack/options.go) against Linux, on loopback only (both sides have "lo" at index 1):
// bind conflicts with and without a device, an unknown name and index,
// what getsockopt reads back, a listener and a client bound to lo, the
// child's device, and binding after listen and after connect. Linux
// wants CAP_NET_RAW to bind a socket to a device. The routing through a
// device, and the demultiplexing by incoming interface, need a second
// interface: socket's TestBindToDevice* cases test them.
func bindDevCases() []Case {
	sol := socket.SOL_SOCKET
	var cs []Case
	for _, fam := range []int{AF_INET, AF_INET6} {
		fam := fam
		fname, loop := "inet", netip.MustParseAddr("127.0.0.1")
		if fam == AF_INET6 {
			fname, loop = "inet6", netip.IPv6Loopback()
		}
		pre := "bindtodev/" + fname + "/tcp/"
		at := func(port int) *socket.SockaddrInet {
			return socket.InetAddr(netip.AddrPortFrom(loop, uint16(port)))
		}
		// bound binds a TCP socket, bound to dev when not "", to the
		// loopback address and port.
		bound := func(t *T, step, dev string, port int, reuse bool) {
			x := t.Socket(fam, STREAM, 0)
			if reuse {
				t.Check(step+" SO_REUSEADDR", x.SetSockOptInt(sol, socket.SO_REUSEADDR, 1))
			}
			if dev != "" {
				t.Check(step+" SO_BINDTODEVICE "+dev, x.SetSockOpt(sol, socket.SO_BINDTODEVICE, dev))
			}
			t.Check(step+" bind", x.Bind(at(port)))
		}
		for _, c := range []struct {
			name          string
			first, second string
			reuse         bool
		}{
			{"bind lo then unbound", "lo", "", false},
			{"bind unbound then lo", "", "lo", false},
			{"bind lo twice", "lo", "lo", false},
			{"bind lo then unbound, SO_REUSEADDR", "lo", "", true},
		} {
			c := c
			cs = append(cs, Case{pre + c.name, true, func(t *T) {
				a := t.Socket(fam, STREAM, 0)
				if c.reuse {
					t.Check("first SO_REUSEADDR", a.SetSockOptInt(sol, socket.SO_REUSEADDR, 1))
				}
				if c.first != "" {
					t.Check("first SO_BINDTODEVICE", a.SetSockOpt(sol, socket.SO_BINDTODEVICE, c.first))
				}
				t.Must("first bind", a.Bind(at(0)))
				port := int(t.Name(a).AddrPort.Port())
				t.Label(t.Name(a), "P")
				bound(t, "second", c.second, port, c.reuse)
			}})
		}
		cs = append(cs, Case{pre + "unknown name and index", true, func(t *T) {
			s := t.Socket(fam, STREAM, 0)
			t.Check("SO_BINDTODEVICE nosuchdev0", s.SetSockOpt(sol, socket.SO_BINDTODEVICE, "nosuchdev0"))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.GetInt("index", s, sol, socket.SO_BINDTOIFINDEX)
			t.Check("SO_BINDTOIFINDEX -1", s.SetSockOptInt(sol, socket.SO_BINDTOIFINDEX, -1))
			t.Check("SO_BINDTOIFINDEX 999", s.SetSockOptInt(sol, socket.SO_BINDTOIFINDEX, 999))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.GetInt("index", s, sol, socket.SO_BINDTOIFINDEX)
			t.Check("connect", s.Connect(at(9)))
		}})
		cs = append(cs, Case{pre + "SO_BINDTOIFINDEX 1 and back to 0", true, func(t *T) {
			s := t.Socket(fam, STREAM, 0)
			t.Check("SO_BINDTOIFINDEX 1", s.SetSockOptInt(sol, socket.SO_BINDTOIFINDEX, 1))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.GetInt("index", s, sol, socket.SO_BINDTOIFINDEX)
			t.Check("SO_BINDTODEVICE \"\"", s.SetSockOpt(sol, socket.SO_BINDTODEVICE, ""))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.GetInt("index", s, sol, socket.SO_BINDTOIFINDEX)
		}})
		cs = append(cs, Case{pre + "listener and client bound to lo", true, func(t *T) {
			l := t.Socket(fam, STREAM, 0)
			t.Check("listener SO_BINDTODEVICE lo", l.SetSockOpt(sol, socket.SO_BINDTODEVICE, "lo"))
			t.Must("bind", l.Bind(at(0)))
			a := t.Name(l)
			t.Label(a, "L")
			t.Must("listen", l.Listen(4))
			for _, dev := range []string{"", "lo"} {
				c := t.Socket(fam, STREAM, 0)
				c.SetTimeout(5 * time.Second)
				if dev != "" {
					t.Check("client SO_BINDTODEVICE lo", c.SetSockOpt(sol, socket.SO_BINDTODEVICE, dev))
				}
				t.Must("connect", c.Connect(a))
				l.SetTimeout(5 * time.Second)
				srv, _, err := l.Accept()
				t.Must("accept", err)
				t.Track(srv)
				t.GetOpt("  child name", srv, sol, socket.SO_BINDTODEVICE)
				t.GetInt("  child index", srv, sol, socket.SO_BINDTOIFINDEX)
				t.GetOpt("  client name", c, sol, socket.SO_BINDTODEVICE)
				t.Check("  client unbinds while connected", c.SetSockOpt(sol, socket.SO_BINDTODEVICE, ""))
				t.GetOpt("  client name", c, sol, socket.SO_BINDTODEVICE)
			}
		}})
		cs = append(cs, Case{pre + "listener bound to lo after listen", true, func(t *T) {
			l := t.Socket(fam, STREAM, 0)
			t.Must("bind", l.Bind(at(0)))
			a := t.Name(l)
			t.Label(a, "L")
			t.Must("listen", l.Listen(4))
			t.Check("SO_BINDTODEVICE lo", l.SetSockOpt(sol, socket.SO_BINDTODEVICE, "lo"))
			t.GetOpt("name", l, sol, socket.SO_BINDTODEVICE)
			c := t.Socket(fam, STREAM, 0)
			c.SetTimeout(5 * time.Second)
			t.Must("connect", c.Connect(a))
			l.SetTimeout(5 * time.Second)
			srv, _, err := l.Accept()
			t.Must("accept", err)
			t.Track(srv)
			t.GetOpt("child name", srv, sol, socket.SO_BINDTODEVICE)
		}})
		// Datagram sockets (stack/options.go): bind conflicts with devices,
		// an unknown index kept (sends and connect then ENODEV), and a
		// socket bound to lo hearing what lo carries (IPv4: IP_PKTINFO
		// naming it).
		upre := "bindtodev/" + fname + "/udp/"
		for _, c := range []struct {
			name          string
			first, second string
			reuse         bool
		}{
			{"bind lo then unbound", "lo", "", false},
			{"bind unbound then lo", "", "lo", false},
			{"bind lo twice", "lo", "lo", false},
			{"bind lo twice, SO_REUSEADDR", "lo", "lo", true},
		} {
			c := c
			cs = append(cs, Case{upre + c.name, true, func(t *T) {
				mk := func(step, dev string) sockapi.Sock {
					x := t.Socket(fam, DGRAM, 0)
					if c.reuse {
						t.Check(step+" SO_REUSEADDR", x.SetSockOptInt(sol, socket.SO_REUSEADDR, 1))
					}
					if dev != "" {
						t.Check(step+" SO_BINDTODEVICE "+dev, x.SetSockOpt(sol, socket.SO_BINDTODEVICE, dev))
					}
					return x
				}
				a := mk("first", c.first)
				t.Must("first bind", a.Bind(at(0)))
				port := int(t.Name(a).AddrPort.Port())
				t.Label(t.Name(a), "P")
				t.Check("second bind", mk("second", c.second).Bind(at(port)))
			}})
		}
		cs = append(cs, Case{upre + "unknown index", true, func(t *T) {
			s := t.Socket(fam, DGRAM, 0)
			t.Check("SO_BINDTOIFINDEX 999", s.SetSockOptInt(sol, socket.SO_BINDTOIFINDEX, 999))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.GetInt("index", s, sol, socket.SO_BINDTOIFINDEX)
			t.Send("sendto", s, []byte("x"), 0, at(9))
			t.Check("connect", s.Connect(at(9)))
			t.Check("SO_BINDTOIFINDEX 1", s.SetSockOptInt(sol, socket.SO_BINDTOIFINDEX, 1))
			t.GetOpt("name", s, sol, socket.SO_BINDTODEVICE)
			t.Check("connect", s.Connect(at(9)))
		}})
		cs = append(cs, Case{upre + "bound to lo receives from lo", true, func(t *T) {
			r := t.Socket(fam, DGRAM, 0)
			r.SetTimeout(5 * time.Second)
			t.Check("SO_BINDTODEVICE lo", r.SetSockOpt(sol, socket.SO_BINDTODEVICE, "lo"))
			if fam == AF_INET {
				t.Check("IP_PKTINFO", r.SetSockOptInt(socket.SOL_IP, socket.IP_PKTINFO, 1))
			}
			t.Must("bind", r.Bind(at(0)))
			ra := t.Name(r)
			t.Label(ra, "R")
			s := t.Socket(fam, DGRAM, 0)
			t.Check("sender SO_BINDTODEVICE lo", s.SetSockOpt(sol, socket.SO_BINDTODEVICE, "lo"))
			t.Send("send", s, []byte("hello"), 0, ra)
			if fam == AF_INET {
				t.RecvPktinfo("recvmsg", r)
			} else {
				t.RecvFrom("recvfrom", r, 64, 0)
			}
		}})
	}
	return cs
}
