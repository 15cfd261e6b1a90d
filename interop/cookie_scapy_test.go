package interop

import (
	"fmt"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// pyCookieClient is a genuine kernel client: connect, send, read the echo.
const pyCookieClient = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"cookie-episode hello")
got = b""
while len(got) < 20:
    b = s.recv(100)
    if not b:
        break
    got += b
print("ECHO", got.decode())
s.close()
`

// pyIdleListener listens (backlog 4) and never accepts.
const pyIdleListener = `
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print("listening", flush=True)
time.sleep(120)
`

// cookieListener listens on sockstack's port with a backlog of 4 and
// echoes what each accepted connection sends, until the test ends.
func cookieListener(t *testing.T, h *host, port int) {
	t.Helper()
	ln, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := ln.Bind(socket.Inet(stackIP.String(), port)); err != nil {
		t.Fatal(err)
	}
	if err := ln.Listen(4); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, _, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			go func() {
				defer c.Close()
				c.SetTimeout(10 * time.Second)
				buf := make([]byte, 256)
				for {
					n, err := c.Recv(buf, 0)
					if n > 0 {
						c.SendAll(buf[:n], 0)
					}
					if err != nil || n == 0 {
						return
					}
				}
			}()
		}
	}()
}

// badACKs are n ACKs from the kernel's address to dst:dport on fresh
// source ports from sport: no SYN was ever sent on them, so as the third
// segment of a cookie handshake their acknowledgment number is a cookie
// that cannot check.
func badACKs(src string, sport, dport, n int) []probeSeg {
	var s []probeSeg
	for i := 0; i < n; i++ {
		s = append(s, probeSeg{Src: src, Sport: sport + i, Dport: dport, Flags: "A", Seq: 0x10000000 + uint32(i)*1000, Ack: 0x0badc0de + uint32(i)})
	}
	return s
}

// countRST counts the RSTs among the replies (and fails on any other
// answer: a listener answers a stray ACK with a RST or nothing).
func countRST(t *testing.T, what string, r probeResult) int {
	t.Helper()
	n := 0
	for _, p := range r.Replies {
		if p.Flags != "R" {
			t.Errorf("%s: answer %+v, want only RSTs", what, p)
			continue
		}
		n++
	}
	return n
}

// TestInteropSynCookieFailDrops: docs/DECISIONS.md, "A failed SYN-cookie
// check drops, not resets", from the wire. sockstack listens on two
// ports with a backlog of 4; scapy in the namespace floods one of them
// (A) with 200 SYNs from 50 spoofed addresses of the lab's subnet
// (nobody answers ARP for them, so their SYN_RCVD children stay) until
// it answers with SYN cookies. Then:
//   - three ACKs with a wrong cookie on fresh 4-tuples to A draw no
//     answer at all, and SynCookiesFailed rises by exactly 3;
//   - the same three ACKs to B, a listener that sent no cookie, draw
//     three RSTs, before the flood and during it (so the probe can fail
//     both ways, and the absence on A is not a lost path);
//   - a genuine kernel client completes a cookie handshake with A
//     (SynCookiesRecv) and gets its data echoed, during the episode.
//
// The same probe against a Linux listener (net.ipv4.tcp_syncookies=2,
// every SYN answered with a cookie) is logged: Linux resets.
func TestInteropSynCookieFailDrops(t *testing.T) {
	l := newLab(t)
	needScapy(t)
	needTools(t, "ping", "nstat", "sysctl")
	h := l.startStack("")
	const portA, portB = 8080, 8081
	cookieListener(t, h, portA)
	cookieListener(t, h, portB)
	mac := h.nic.HardwareAddr().String()
	// Both sides know each other's MAC before any probe: a RST that
	// waited for ARP would still come, but later.
	l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", stackIP.String())
	tcpst := h.st.TCP.Stats

	// probe sends the three bad ACKs to port and waits for the marker:
	// the stack handles frames in order and sends its answers in order,
	// so once the echo reply sent after them is seen, any RST for them
	// has been seen too. The 10 s timeout only bounds a lost marker.
	probe := func(what string, port, sport int) probeResult {
		t.Helper()
		r := l.scapyProbe(t, probeSpec{Iface: tapName, DMAC: mac, Dst: stackIP.String(), Src: kernelIP.String(),
			Segs: badACKs(kernelIP.String(), sport, port, 3), Marker: 0x4c00 + sport%256, Timeout: 10})
		if !r.Marker {
			t.Fatalf("%s: the echo reply sent after the ACKs never came: %s\n%s", what, r, r.Out)
		}
		t.Logf("%s: %s", what, r)
		return r
	}

	// B before any flood: a stray ACK is reset.
	f0 := tcpst().SynCookiesFailed
	if n := countRST(t, "B before the flood", probe("B before the flood", portB, 40000)); n != 3 {
		t.Fatalf("listener B (no cookies sent) answered %d of 3 stray ACKs with a RST, want 3", n)
	}
	if d := tcpst().SynCookiesFailed - f0; d != 0 {
		t.Fatalf("SynCookiesFailed rose by %d for ACKs to a listener that sent no cookie", d)
	}

	// The flood: A's SYN queue (4) fills with children whose SYN-ACKs
	// wait for ARP; the later SYNs are answered with cookies.
	s0 := tcpst()
	var syns [][2]any
	for i := 0; i < 200; i++ {
		syns = append(syns, [2]any{fmt.Sprintf("10.77.0.%d", 100+i%50), 20000 + i})
	}
	out := l.scapyProbe(t, probeSpec{Iface: tapName, DMAC: mac, Dst: stackIP.String(), Dport: portA, Syns: syns, Timeout: 1}).Out
	wantContains(t, "flood", out, "SYNS 200")
	l.waitUntil(t, "sockstack answers A's SYNs with cookies", func() bool { return tcpst().SynCookiesSent > s0.SynCookiesSent })

	t.Run("genuine_client_completes_during_the_episode", func(t *testing.T) {
		r0 := tcpst().SynCookiesRecv
		out := l.run(t, 20*time.Second, nil, scapyPython, "-c", pyCookieClient, stackIP.String(), fmt.Sprint(portA))
		wantContains(t, "kernel client", out, "ECHO cookie-episode hello")
		if d := tcpst().SynCookiesRecv - r0; d != 1 {
			t.Errorf("SynCookiesRecv rose by %d, want 1: the client's handshake did not go by cookie", d)
		}
	})

	t.Run("bad_cookie_ACKs_dropped_not_reset", func(t *testing.T) {
		before := tcpst()
		r := probe("A during the episode", portA, 41000)
		after := tcpst()
		if len(r.Replies) != 0 {
			t.Errorf("listener A answered ACKs with a failing cookie: %s (want no answer)", r)
		}
		if d := after.SynCookiesFailed - before.SynCookiesFailed; d != 3 {
			t.Errorf("SynCookiesFailed rose by %d, want 3", d)
		}
		if d := after.OutRsts - before.OutRsts; d != 0 {
			t.Errorf("OutRsts rose by %d while probing A", d)
		}
	})

	t.Run("other_listener_still_resets_during_the_episode", func(t *testing.T) {
		f := tcpst().SynCookiesFailed
		if n := countRST(t, "B during the episode", probe("B during the episode", portB, 42000)); n != 3 {
			t.Errorf("listener B answered %d of 3 stray ACKs with a RST, want 3", n)
		}
		if d := tcpst().SynCookiesFailed - f; d != 0 {
			t.Errorf("SynCookiesFailed rose by %d for B", d)
		}
	})
	st := tcpst()
	t.Logf("sockstack: SynCookiesSent %d (of 200 SYNs, backlog 4), SynCookiesRecv %d, SynCookiesFailed %d, ListenDrops %d",
		st.SynCookiesSent-s0.SynCookiesSent, st.SynCookiesRecv-s0.SynCookiesRecv, st.SynCookiesFailed-s0.SynCookiesFailed, st.ListenDrops-s0.ListenDrops)

	t.Run("linux_listener_for_comparison", func(t *testing.T) {
		p := l.newLinuxPeer(t)
		p.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=2")
		p.background(t, scapyPython, "-c", pyIdleListener, peerAddr4, fmt.Sprint(portA))
		p.waitListen(t, "tcp", portA)
		l.run(t, 10*time.Second, nil, "ping", "-c", "1", "-W", "5", peerAddr4)
		names := []string{"TcpExtSyncookiesSent", "TcpExtSyncookiesFailed", "TcpOutRsts"}
		c0 := p.nstat(t, names...)
		// One SYN first: with tcp_syncookies=2 its SYN-ACK carries a
		// cookie, so the listener is in a cookie episode too.
		r := l.scapyProbe(t, probeSpec{Iface: peerIface, DMAC: p.mac, Dst: peerAddr4, Src: peerLab4, Dport: portA,
			Syns: [][2]any{{peerLab4, 43999}}, Segs: badACKs(peerLab4, 44000, portA, 3), Marker: 0x4cff, Timeout: 10})
		c1 := p.nstat(t, names...)
		if !r.Marker {
			t.Fatalf("Linux: the echo reply sent after the ACKs never came: %s\n%s", r, r.Out)
		}
		t.Logf("Linux (tcp_syncookies=2) answered the 3 bad-cookie ACKs with: %s; SyncookiesSent +%d, SyncookiesFailed +%d, OutRsts +%d (sockstack: no answer, by design)",
			r, c1[names[0]]-c0[names[0]], c1[names[1]]-c0[names[1]], c1[names[2]]-c0[names[2]])
	})
}
