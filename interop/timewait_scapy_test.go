package interop

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// pySinkServer accepts connections on [::]:port (IPv4 too), reads each
// to its end and closes it: the peer that closes second, so the client
// that closed first enters TIME_WAIT.
const pySinkServer = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.settimeout(10)
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
`

// pyHopsClient is the Linux counterpart of the sockstack client: hop
// limit 7 and TOS / traffic class 0x28, connect, send, close first. It
// prints its port.
const pyHopsClient = `
import socket, sys
dst, port = sys.argv[1], int(sys.argv[2])
if ":" in dst:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 7)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
s.settimeout(10)
s.connect((dst, port))
print("PORT", s.getsockname()[1], flush=True)
s.sendall(b"bye")
s.close()
`

const (
	twPort = 9090
	twHops = 7
	twTOS  = 0x28 // DSCP AF11, ECN bits clear
)

// twOOW is an out-of-window data segment for a TIME_WAIT 4-tuple: its
// sequence number is half the space away from anything sent on it.
// A TIME_WAIT end answers such a segment with an ACK (rate-limited).
func twOOW(src string, sport, dport int) []probeSeg {
	return []probeSeg{{Src: src, Sport: sport, Dport: dport, Flags: "PA", Seq: 0x80000000, Ack: 1, Load: "stale"}}
}

// inTimeWait reports whether sockstack holds a TIME_WAIT record for
// local-remote.
func inTimeWait(h *host, local, remote netip.AddrPort) bool {
	for _, c := range h.st.TCP.Table() {
		if c.State == tcp.StateTimeWait && c.Local == local && c.Remote == remote {
			return true
		}
	}
	return false
}

// TestInteropTimeWaitKeepsHops: docs/DECISIONS.md, "TIME_WAIT answers
// keep the connection's TTL / hop limit", from the wire. A sockstack
// socket with IP_TTL 7 and IP_TOS 0x28 (IPv6: IPV6_UNICAST_HOPS 7,
// IPV6_TCLASS 0x28) connects to a kernel server in the namespace,
// sends, and closes first; once the kernel has closed too, sockstack
// holds the 4-tuple in TIME_WAIT. scapy sends an out-of-window data
// segment on it and captures the ACK sockstack's TIME_WAIT record
// answers with: its TTL / hop limit must be 7 and its TOS / traffic
// class 0x28. The same probe to a Linux socket in TIME_WAIT in a second
// namespace is logged (Linux answers with 64, the default, and keeps
// the TOS).
func TestInteropTimeWaitKeepsHops(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "ss", "ping")
	l.enable6(t)
	h := l.startStack6(t, stack.Options{})
	l.background(t, scapyPython, "-c", pySinkServer, strconv.Itoa(twPort))
	l.waitListen(t, "tcp", twPort)
	mac := h.nic.HardwareAddr().String()

	for _, c := range []struct {
		name           string
		family         int
		kernel, stack  netip.Addr
		level, ttl, tc int
	}{
		{"ipv4", socket.AF_INET, kernelIP, stackIP, socket.SOL_IP, socket.IP_TTL, socket.IP_TOS},
		{"ipv6", socket.AF_INET6, kernel6, stack6, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, socket.IPV6_TCLASS},
	} {
		t.Run("sockstack_"+c.name, func(t *testing.T) {
			s, err := h.net.Socket(c.family, socket.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SetSockOptInt(c.level, c.ttl, twHops); err != nil {
				t.Fatal(err)
			}
			if err := s.SetSockOptInt(c.level, c.tc, twTOS); err != nil {
				t.Fatal(err)
			}
			s.SetTimeout(10 * time.Second)
			remote := netip.AddrPortFrom(c.kernel, twPort)
			if err := s.Connect(socket.InetAddr(remote)); err != nil {
				t.Fatal(err)
			}
			sa, err := s.GetSockName()
			if err != nil {
				t.Fatal(err)
			}
			local := sa.(*socket.SockaddrInet).AddrPort
			local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
			if err := s.SendAll([]byte("bye"), 0); err != nil {
				t.Fatal(err)
			}
			s.Close() // sockstack's FIN goes first
			l.waitUntil(t, "sockstack's end is in TIME_WAIT", func() bool { return inTimeWait(h, local, remote) })

			r := l.scapyProbe(t, probeSpec{Iface: tapName, DMAC: mac, Dst: c.stack.String(),
				Segs: twOOW(c.kernel.String(), twPort, int(local.Port())), First: true, Timeout: 10})
			t.Logf("sockstack TIME_WAIT (%s) answered: %s", c.name, r)
			if len(r.Replies) != 1 {
				t.Fatalf("want one ACK from the TIME_WAIT record, got %s\n%s", r, r.Out)
			}
			a := r.Replies[0]
			if a.Flags != "A" {
				t.Errorf("answer flags %q, want a bare ACK", a.Flags)
			}
			if a.TTL != twHops {
				t.Errorf("TIME_WAIT ACK left with TTL / hop limit %d, want the socket's %d", a.TTL, twHops)
			}
			if a.TOS != twTOS {
				t.Errorf("TIME_WAIT ACK left with TOS / traffic class %#x, want the socket's %#x", a.TOS, twTOS)
			}
		})
	}

	t.Run("linux_for_comparison", func(t *testing.T) {
		p := l.newLinuxPeer(t)
		l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", peerAddr4)
		for _, c := range []struct{ name, server, client string }{
			{"ipv4", peerLab4, peerAddr4},
			{"ipv6", peerLab6, peerAddr6},
		} {
			out := p.run(t, 15*time.Second, nil, scapyPython, "-c", pyHopsClient, c.server, strconv.Itoa(twPort))
			var port int
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "PORT" {
					port, _ = strconv.Atoi(f[1])
				}
			}
			if port == 0 {
				t.Fatalf("Linux client printed no port:\n%s", out)
			}
			p.waitUntil(t, "the Linux client's socket is in TIME_WAIT", func() bool {
				o, _ := p.try(5*time.Second, nil, "ss", "-Htan", "state", "time-wait", "sport", "= :"+strconv.Itoa(port))
				return strings.TrimSpace(o) != ""
			})
			r := l.scapyProbe(t, probeSpec{Iface: peerIface, DMAC: p.mac, Dst: c.client,
				Segs: twOOW(c.server, twPort, port), First: true, Timeout: 10})
			if len(r.Replies) == 0 {
				t.Logf("Linux TIME_WAIT (%s, IP_TTL/IPV6_UNICAST_HOPS %d, TOS %#x) did not answer\n%s", c.name, twHops, twTOS, r.Out)
				continue
			}
			a := r.Replies[0]
			t.Logf("Linux TIME_WAIT (%s, socket TTL/hops %d, TOS %#x) answered %s with TTL/hops %d, TOS %#x (sockstack keeps %d)",
				c.name, twHops, twTOS, a.Flags, a.TTL, a.TOS, twHops)
		}
	})
}
