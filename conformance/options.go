package conformance

import (
	"fmt"
	"time"

	"github.com/sockstack/sockstack/socket"
)

type optDef struct {
	name       string
	level, opt int
	tcp, udp   bool  // which socket types the option is tried on
	values     []any // set, then read back
	getOnly    bool
	noReadBack bool
}

var (
	both    = [2]bool{true, true}
	tcpOnly = [2]bool{true, false}
	udpOnly = [2]bool{false, true}
)

func ints(v ...int) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = x
	}
	return out
}

func od(name string, level, opt int, on [2]bool, values ...any) optDef {
	return optDef{name: name, level: level, opt: opt, tcp: on[0], udp: on[1], values: values}
}

func optionTable() []optDef {
	SOL, IP, TCP := socket.SOL_SOCKET, socket.SOL_IP, socket.SOL_TCP
	return []optDef{
		od("SO_REUSEADDR", SOL, socket.SO_REUSEADDR, both, ints(1, 0, 2, -1)...),
		od("SO_REUSEPORT", SOL, socket.SO_REUSEPORT, both, ints(1, 0)...),
		od("SO_KEEPALIVE", SOL, socket.SO_KEEPALIVE, both, ints(1, 0)...),
		od("SO_BROADCAST", SOL, socket.SO_BROADCAST, both, ints(1, 0)...),
		od("SO_DEBUG", SOL, socket.SO_DEBUG, udpOnly, ints(1)...),
		od("SO_DONTROUTE", SOL, socket.SO_DONTROUTE, udpOnly, ints(1)...),
		od("SO_OOBINLINE", SOL, socket.SO_OOBINLINE, tcpOnly, ints(1)...),
		od("SO_RCVBUF", SOL, socket.SO_RCVBUF, both, ints(65536, 1, 0, -1)...),
		od("SO_SNDBUF", SOL, socket.SO_SNDBUF, both, ints(65536, 1, -1)...),
		od("SO_RCVLOWAT", SOL, socket.SO_RCVLOWAT, both, ints(10, 0, -1)...),
		od("SO_SNDLOWAT", SOL, socket.SO_SNDLOWAT, both, ints(10)...),
		od("SO_TYPE", SOL, socket.SO_TYPE, both, ints(1)...),
		od("SO_ERROR", SOL, socket.SO_ERROR, both, ints(0)...),
		od("SO_PROTOCOL", SOL, socket.SO_PROTOCOL, tcpOnly, ints(6)...),
		od("SO_LINGER", SOL, socket.SO_LINGER, both,
			socket.Linger{OnOff: true, Linger: 5}, socket.Linger{OnOff: false, Linger: 0}, socket.Linger{OnOff: true, Linger: -1}),
		od("SO_RCVTIMEO", SOL, socket.SO_RCVTIMEO, udpOnly, 2*time.Second, time.Duration(0), -time.Second),
		od("SO_SNDTIMEO", SOL, socket.SO_SNDTIMEO, tcpOnly, 3*time.Second),
		od("unknown 9999", SOL, 9999, both, ints(1)...),
		od("IP_TTL", IP, socket.IP_TTL, both, ints(1, 255, 0, 256, -1)...),
		od("IP_TOS", IP, socket.IP_TOS, both, ints(0x10, 0xb8, 0x100, -1)...),
		od("IP_MULTICAST_TTL", IP, socket.IP_MULTICAST_TTL, udpOnly, ints(0, 255, 256, -1)...),
		od("IP_MULTICAST_LOOP", IP, socket.IP_MULTICAST_LOOP, udpOnly, ints(0, 1, 2)...),
		od("IP_HDRINCL", IP, socket.IP_HDRINCL, udpOnly, ints(1)...),
		od("IP_PKTINFO", IP, socket.IP_PKTINFO, both, ints(1, 0, 2)...),
		od("unknown IP 60", IP, 60, both, ints(1)...),
		od("unknown level 999", 999, 1, both, ints(1)...),
		od("TCP_NODELAY", TCP, socket.TCP_NODELAY, tcpOnly, ints(1, 0, 5)...),
		od("TCP_CORK", TCP, socket.TCP_CORK, tcpOnly, ints(1, 0)...),
		od("TCP_MAXSEG", TCP, socket.TCP_MAXSEG, tcpOnly, ints(1000, 536, 88, 87, 0, 32767, 65536)...),
		od("TCP_KEEPIDLE", TCP, socket.TCP_KEEPIDLE, tcpOnly, ints(1, 32767, 0, 32768)...),
		od("TCP_KEEPINTVL", TCP, socket.TCP_KEEPINTVL, tcpOnly, ints(1, 32767, 0, 32768)...),
		od("TCP_KEEPCNT", TCP, socket.TCP_KEEPCNT, tcpOnly, ints(1, 127, 0, 128)...),
		od("TCP_CONGESTION", TCP, socket.TCP_CONGESTION, tcpOnly, "reno", "cubic", "nosuchcc"),
		od("unknown TCP 99", TCP, 99, tcpOnly, ints(1)...),
	}
}

func optionCases() []Case {
	var cs []Case
	for _, o := range optionTable() {
		o := o
		for _, ty := range []int{STREAM, DGRAM} {
			ty := ty
			if (ty == STREAM && !o.tcp) || (ty == DGRAM && !o.udp) {
				continue
			}
			base := "opt/" + typeNames[ty] + "/" + o.name
			cs = append(cs, Case{Name: base + " default", Run: func(t *T) {
				t.GetOpt("get", t.Socket(AF_INET, ty, 0), o.level, o.opt)
			}})
			for _, v := range o.values {
				v := v
				cs = append(cs, Case{Name: fmt.Sprintf("%s=%s", base, FormatValue(v)), Run: func(t *T) {
					s := t.Socket(AF_INET, ty, 0)
					t.Check("set", s.SetSockOpt(o.level, o.opt, v))
					t.GetOpt("get", s, o.level, o.opt)
				}})
			}
		}
	}
	return cs
}
