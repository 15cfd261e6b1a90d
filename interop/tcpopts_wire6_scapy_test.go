package interop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// The IPv6 twin of TestInteropTCPOptionsWire: the same probes over IPv6
// (tcpOptionsWireProbes), scapy at a made-up address of each link's
// prefix answering Neighbor Solicitations for it, and the observations
// only IPv6 has: the MSS on a 1280-byte path and a Packet Too Big that
// lowers the segment size of an established connection.

// ptb has scapy send a Packet Too Big for the host's segment to port
// with sequence number seq, quoted with sequence number as[0] if given.
func (s *wireScapy) ptb(t *testing.T, port int, seq uint32, mtu int, as ...uint32) {
	t.Helper()
	var r struct{ OK bool }
	cmd := map[string]any{"op": "ptb", "port": port, "seq": seq, "mtu": mtu}
	if len(as) > 0 {
		cmd["as"] = as[0]
	}
	s.do(t, cmd, &r)
	if !r.OK {
		t.Fatalf("no segment to port %d with seq %d to quote", port, seq)
	}
}

// The crafted SYN's options over IPv6: MSS 1440, as an IPv6 host on a
// 1500-byte link offers.
var wireSynOpts6 = [][]any{{"MSS", 1440}, {"SAckOK", ""}, {"NOP", nil}, {"WScale", 7}}

// TestInteropTCPOptionsWire6 is TestInteropTCPOptionsWire over IPv6:
// sockstack at fd00:77::2 on the lab's TAP, Linux at fd88::2 in a second
// namespace, scapy at fd00:77::50 and fd88::50 in front of them.
func TestInteropTCPOptionsWire6(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "nstat", "ethtool", "ping")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	p := l.newLinuxPeer(t)
	p.run(t, 5*time.Second, nil, "ethtool", "-K", "vx1", "tso", "off", "gso", "off")
	l.run(t, 10*time.Second, nil, "ping", "-6", "-c", "1", "-W", "5", stack6.String())
	l.run(t, 10*time.Second, nil, "ping", "-6", "-c", "1", "-W", "5", peerAddr6)

	const fakeStack, fakeLinux = "fd00:77::50", "fd88::50"
	app := p.startWireApp(t)
	app.addr = peerAddr6
	stk := &wireSide{name: "sockstack", app: &stackApp{h: h, v6: true}, host: stack6.String(), fake: fakeStack, nextPort: 41000,
		sc:         l.startWireScapy(t, tapName, h.nic.HardwareAddr().String(), fakeStack, stack6.String()),
		deferDrops: func(*testing.T) int64 { return int64(h.st.TCP.Stats().DeferAcceptDrops) },
		synOpts:    wireSynOpts6, mss: 1440}
	linux := &wireSide{name: "Linux", app: app, host: peerAddr6, fake: fakeLinux, nextPort: 41000,
		sc: l.startWireScapy(t, peerIface, p.mac, fakeLinux, peerAddr6),
		deferDrops: func(t *testing.T) int64 {
			return p.nstat(t, "TcpExtTCPDeferAcceptDrop")["TcpExtTCPDeferAcceptDrop"]
		},
		synOpts: wireSynOpts6, mss: 1440}
	sides := []*wireSide{stk, linux}
	t.Logf("Linux %s", strings.TrimSpace(l.run(t, 5*time.Second, nil, "uname", "-r")))

	tcpOptionsWireProbes(t, sides)

	// The MSS without the peer's option, which IPv6 makes 1220 (RFC 9293
	// 3.7.1; IPv4's is 536), and TCP_MAXSEG's bounds on an IPv6 socket.
	t.Run("IPv6_MSS", func(t *testing.T) {
		noMSS := [][]any{{"SAckOK", ""}, {"NOP", nil}, {"WScale", 7}}
		compareWire(t, sides, nil, func(t *testing.T, s *wireSide, o *wireObs) {
			lid := s.app.listen(t, 7190)
			o.set("TCP_MAXSEG read on a listener", "%d", s.app.getopt(t, lid, socket.SOL_TCP, socket.TCP_MAXSEG))
			c := s.dialWith(t, 7190, noMSS)
			o.set("client offering no MSS: SYN-ACK MSS option", "%d", c.synAck.MSS)
			c.ack(t)
			id := s.app.accept(t, lid, 5*time.Second)
			if id == 0 {
				t.Fatalf("%s: not accepted", s.name)
			}
			o.set("client offering no MSS: TCP_MAXSEG read on the accepted socket", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			s.app.send(t, id, make([]byte, 3000))
			_, fresh := c.waitBytes(t, 3000, 2*time.Second)
			o.set("client offering no MSS: sizes of 3000 bytes sent", "%s", segSizes(fresh))

			// A connecting socket whose SYN-ACK carries no MSS option.
			const sport = 7191
			id = s.app.connect(t, s.fake, sport)
			cc, _ := s.synFrom(t, sport)
			s.sc.send(t, optSeg{Sport: cc.sport, Dport: cc.dport, Flags: "SA", Seq: cc.snd, Ack: cc.rcv, Win: 64240, Opts: noMSS})
			cc.snd++
			if ps := cc.waitAck(t, 2*time.Second); len(ps) == 0 {
				t.Fatalf("%s: the SYN-ACK was not acknowledged", s.name)
			}
			o.set("SYN-ACK without MSS: TCP_MAXSEG read once connected", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			s.app.send(t, id, make([]byte, 3000))
			_, fresh = cc.waitBytes(t, 3000, 2*time.Second)
			o.set("SYN-ACK without MSS: sizes of 3000 bytes sent", "%s", segSizes(fresh))

			// TCP_MAXSEG's smallest value, and one below it.
			for _, v := range []int{87, 88} {
				lid := s.app.listen(t, 7192+v)
				o.set(fmt.Sprintf("setsockopt TCP_MAXSEG %d", v), "errno %d", trySetopt(t, s.app, lid, socket.SOL_TCP, socket.TCP_MAXSEG, v))
			}
			id = s.app.connect(t, s.fake, sport+1, [3]int{socket.SOL_TCP, socket.TCP_MAXSEG, 88})
			cc, syn := s.synFrom(t, sport+1)
			o.set("client with TCP_MAXSEG 88: SYN MSS option", "%d", syn.MSS)
			cc.sendSynAck(t)
			if ps := cc.waitAck(t, 2*time.Second); len(ps) == 0 {
				t.Fatalf("%s: the SYN-ACK was not acknowledged", s.name)
			}
			s.app.send(t, id, make([]byte, 300))
			_, fresh = cc.waitBytes(t, 300, 2*time.Second)
			o.set("client with TCP_MAXSEG 88: sizes of 300 bytes sent", "%s", segSizes(fresh))
		})
	})

	// A 1280-byte path (IPv6's minimum MTU, a route's MTU on both
	// hosts): the MSS offered is 1220, in a SYN-ACK and in a SYN, and
	// segments are cut to it. The routes go at the end of the subtest.
	t.Run("MTU_1280", func(t *testing.T) {
		r := stack.Route{Prefix: netip.PrefixFrom(netip.MustParseAddr(fakeStack), 128), NIC: h.nic, MTU: 1280}
		h.st.AddRoute(r)
		t.Cleanup(func() { h.st.DelRoute(r) })
		p.run(t, 5*time.Second, nil, "ip", "-6", "route", "add", fakeLinux+"/128", "dev", "vx1", "mtu", "1280")
		t.Cleanup(func() { p.try(5*time.Second, nil, "ip", "-6", "route", "del", fakeLinux+"/128", "dev", "vx1") })
		compareWire(t, sides, nil, func(t *testing.T, s *wireSide, o *wireObs) {
			lid := s.app.listen(t, 7180)
			c := s.dial(t, 7180)
			o.set("SYN-ACK MSS option", "%d", c.synAck.MSS)
			c.ack(t)
			id := s.app.accept(t, lid, 5*time.Second)
			if id == 0 {
				t.Fatalf("%s: not accepted", s.name)
			}
			o.set("TCP_MAXSEG read on the accepted socket", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			s.app.send(t, id, make([]byte, 3000))
			_, fresh := c.waitBytes(t, 3000, 2*time.Second)
			o.set("sizes of 3000 bytes sent", "%s", segSizes(fresh))

			const sport = 7181
			s.app.connect(t, s.fake, sport)
			_, syn := s.synFrom(t, sport)
			o.set("connecting socket: SYN MSS option", "%d", syn.MSS)
		})
	})

	// A Packet Too Big for an unacknowledged segment of an established
	// connection: the host resends what is outstanding in segments that
	// fit the new MTU (1400: 1340 bytes of payload) and sends new data
	// in them too; a new connection to the address starts from it. Last,
	// a report below IPv6's minimum MTU. Run last: the learnt MTU stays.
	t.Run("Packet_Too_Big", func(t *testing.T) {
		compareWire(t, sides, ptbByDesign, func(t *testing.T, s *wireSide, o *wireObs) {
			lid := s.app.listen(t, 7170)
			c := s.dial(t, 7170)
			c.ack(t)
			id := s.app.accept(t, lid, 5*time.Second)
			if id == 0 {
				t.Fatalf("%s: not accepted", s.name)
			}
			s.app.send(t, id, make([]byte, 3000))
			_, fresh := c.waitBytes(t, 3000, 2*time.Second)
			o.set("sizes of 3000 bytes sent", "%s", segSizes(fresh))
			if len(fresh) == 0 {
				t.Fatalf("%s: no data segment seen", s.name)
			}
			o.set("TCP_MAXSEG read before", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			// The ICMP quotes the first segment, none of it acknowledged.
			// Both resend at once, in the ICMP's handling: everything up
			// to the answer to an echo request sent after it.
			s.sc.ptb(t, c.sport, fresh[0].Seq, 1400)
			var sizes []string
			for _, p := range s.sc.taken(t, c.sport) {
				if p.Len > 0 {
					sizes = append(sizes, fmt.Sprintf("%d:%d", p.Seq-fresh[0].Seq, p.Len))
				}
			}
			o.set("resent after the Packet Too Big (offset:size)", "%s", strings.Join(sizes, " "))
			o.set("TCP_MAXSEG read after", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			c.ack(t)
			s.sc.taken(t, c.sport)
			s.app.send(t, id, make([]byte, 3000))
			_, fresh = c.waitBytes(t, 3000, 2*time.Second)
			o.set("sizes of the next 3000 bytes sent", "%s", segSizes(fresh))
			c.ack(t)

			// A new connection to the same address starts from the
			// learnt MTU: its SYN-ACK's MSS, and what it sends.
			c = s.dial(t, 7170)
			o.set("new connection: SYN-ACK MSS option", "%d", c.synAck.MSS)
			c.ack(t)
			if id = s.app.accept(t, lid, 5*time.Second); id == 0 {
				t.Fatalf("%s: not accepted", s.name)
			}
			s.app.send(t, id, make([]byte, 3000))
			_, fresh = c.waitBytes(t, 3000, 2*time.Second)
			o.set("new connection: sizes of 3000 bytes sent", "%s", segSizes(fresh))
			if len(fresh) == 0 {
				t.Fatalf("%s: no data segment seen", s.name)
			}

			// Below IPv6's minimum MTU. All is acknowledged first, so no
			// tail loss probe races the answer; the quote's sequence
			// number is SND.NXT, which both take as in flight.
			c.ack(t)
			s.sc.taken(t, c.sport)
			s.sc.ptb(t, c.sport, fresh[0].Seq, 1000, c.rcv)
			o.set("answer to a Packet Too Big with MTU 1000", "%s", describe(s.sc.taken(t, c.sport)))
			o.set("TCP_MAXSEG read after it", "%d", s.app.getopt(t, id, socket.SOL_TCP, socket.TCP_MAXSEG))
			s.app.send(t, id, make([]byte, 3000))
			_, fresh = c.waitBytes(t, 3000, 2*time.Second)
			o.set("sizes of 3000 bytes sent after it", "%s", segSizes(fresh))
		})
	})
}

// A Packet Too Big below 1280 (docs/DECISIONS.md, "Packet Too Big below
// 1280 for a TCP connection", as TestInteropIPv6Attack shows it).
const whyPTBBelowMin = "RFC 8201 4: sockstack takes a report below 1280 as 1280 (1220-byte " +
	"segments from then on); Linux's tcp_v6_err ignores it"

var ptbByDesign = map[string]string{
	"TCP_MAXSEG read after it":          whyPTBBelowMin,
	"sizes of 3000 bytes sent after it": whyPTBBelowMin,
}

// trySetopt is setsockopt on either side, returning its errno (0: set).
func trySetopt(t *testing.T, app wireApp, id, level, name, v int) int {
	t.Helper()
	switch a := app.(type) {
	case *stackApp:
		var en syscall.Errno
		if errors.As(a.get(id).SetSockOptInt(level, name, v), &en) {
			return int(en)
		}
		return 0
	case *linuxApp:
		a.mu.Lock()
		defer a.mu.Unlock()
		a.write(t, map[string]any{"op": "setopt", "id": id, "level": level, "name": name, "val": v})
		var r pyAppResult
		if err := json.Unmarshal([]byte(a.line(t)), &r); err != nil {
			t.Fatal(err)
		}
		return r.Err
	}
	t.Fatalf("unknown application %T", app)
	return 0
}
