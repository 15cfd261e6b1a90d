package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// IPv4 options on the segments TCP sends without a connection: the RST
// answering a connect to a closed port carries the SYN's options echoed
// (Linux's tcp_v4_send_reset with ip_options_echo), and so does the ACK
// a TIME_WAIT end sends for a stray segment (tcp_v4_timewait_ack), the
// stray one crafted by an IPPROTO_RAW socket. A raw IPPROTO_TCP socket
// on 127.0.0.1 reads the segments as the receive path left them (Record
// Route filled on receipt too); only the IP options and the TCP flags
// of the segments of the case's own port pair are logged.

func ipoptReplyCases() []Case {
	rst := func(name, opts string) Case {
		return Case{Name: "ipoptions/reply RST to a connect, " + name, Root: true, Run: func(t *T) {
			raw := t.Socket(AF_INET, RAW, socket.IPPROTO_TCP)
			raw.SetTimeout(2 * time.Second)
			// A bound socket that does not listen: its port is closed.
			closed := t.TCP()
			ca := t.BindLocal(closed, "X")
			c := t.TCP()
			c.SetTimeout(5 * time.Second)
			cla := t.BindLocal(c, "C")
			t.Check("IP_OPTIONS", c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, opts))
			t.Check("connect", c.Connect(ca))
			t.rawTCP(raw, uint16(port(cla)), uint16(port(ca)), 2)
		}}
	}
	tw := func(name, opts string, n int) Case {
		return Case{Name: "ipoptions/reply TIME_WAIT ACK, " + name, Root: true, Run: func(t *T) {
			raw := t.Socket(AF_INET, RAW, socket.IPPROTO_TCP)
			raw.SetTimeout(2 * time.Second)
			c, s := t.Pair()
			cp, sp := uint16(port(t.Name(c))), uint16(port(t.Name(s)))
			t.Check("server close", s.Close())
			t.Recv("client EOF", c, 16, 0)
			t.Check("client close", c.Close())
			t.Quiesce() // sockstack: the server's end took the FIN's ACK
			// Data far outside the window from the client's port: the
			// server's TIME_WAIT answers with an ACK, the closed client
			// port that ACK with a RST, which ends TIME_WAIT.
			t.injectTCP(cp, sp, 0x80000000, wire.TCPFlagACK|wire.TCPFlagPSH, []byte("stale"), opts)
			t.rawTCPOpts(raw, cp, sp, n)
		}}
	}
	return []Case{
		tw("Record Route, four slots", "\x07\x13\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 3),
		tw("Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00\x00", 3),
		// Not echoed: the ACK and the RST carry no options.
		tw("Router Alert", "\x94\x04\x00\x00", 1),
		rst("Record Route, three slots", "\x07\x0f\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
		rst("Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00"),
		rst("Record Route, two slots, and NOPs", "\x01\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00"),
		rst("Router Alert", "\x94\x04\x00\x00"),
		rst("none", ""),
	}
}

// injectTCP sends, from an IPPROTO_RAW socket, a TCP segment from
// 127.0.0.1:sport to 127.0.0.1:dport with IPv4 options opts (a multiple
// of 4 bytes).
func (t *T) injectTCP(sport, dport uint16, seq uint32, flags uint8, data []byte, opts string) {
	r := t.Socket(AF_INET, RAW, socket.IPPROTO_RAW)
	th := wire.TCPHeader{SrcPort: sport, DstPort: dport, Seq: seq, Ack: 1, Flags: flags, Window: 1024}
	seg := make([]byte, th.Len()+len(data))
	th.Put(seg)
	copy(seg[th.Len():], data)
	lo := [4]byte{127, 0, 0, 1}
	wire.TCP(seg).FillChecksum(wire.PseudoHeaderSum(lo, lo, socket.IPPROTO_TCP, len(seg)))
	hl := 20 + len(opts)
	p := make([]byte, hl, hl+len(seg))
	p[0], p[8], p[9] = 0x40|byte(hl/4), 64, socket.IPPROTO_TCP
	copy(p[12:], lo[:])
	copy(p[16:], lo[:])
	copy(p[20:], opts)
	p = append(p, seg...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:hl]))
	t.Send("inject TCP", r, p, 0, socket.Inet("127.0.0.1", 0))
}

// rawTCPOpts is rawTCP for the segments with IP options only (the
// connection's own, without, are skipped: how many there are depends
// on ACK timing).
func (t *T) rawTCPOpts(raw sockapi.Sock, a, b uint16, n int) { t.rawTCPSegs(raw, a, b, n, true) }

// rawTCP logs the IP options and TCP flags of the next n segments
// between ports a and b that raw reads (other TCP traffic on the host
// skipped), then whether another follows.
func (t *T) rawTCP(raw sockapi.Sock, a, b uint16, n int) { t.rawTCPSegs(raw, a, b, n, false) }

// rawTCPSegs is rawTCP, skipping segments without IP options if optsOnly.
func (t *T) rawTCPSegs(raw sockapi.Sock, a, b uint16, n int, optsOnly bool) {
	buf := make([]byte, 65536)
	// line describes a segment read into buf, if it is one to log.
	line := func(k int) (string, bool) {
		if optsOnly && (k < 21 || buf[0]&0xf == 5) {
			return "", false
		}
		return rawTCPLine(buf[:k], a, b)
	}
	got := 0
	for tries := 0; got < n && tries < 10000; tries++ {
		k, err := raw.Recv(buf, 0)
		if err != nil {
			t.Logf("raw recv: %s", ErrName(err))
			return
		}
		if l, ok := line(k); ok {
			t.Logf("segment %d: %s", got+1, l)
			got++
		}
	}
	for tries := 0; tries < 10000; tries++ {
		k, err := raw.Recv(buf, syscall.MSG_DONTWAIT)
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Logf("raw recv: %s", ErrName(err))
			}
			return
		}
		if l, ok := line(k); ok {
			t.Logf("another segment: %s", l)
			return
		}
	}
}

// rawTCPLine describes p (an IPv4 header and TCP) when it is between
// ports a and b: direction (a->b: from port a), flags, IP options.
func rawTCPLine(p []byte, a, b uint16) (string, bool) {
	if len(p) < 20 {
		return "", false
	}
	hl := int(p[0]&0xf) * 4
	if hl < 20 || len(p) < hl+20 {
		return "", false
	}
	sp, dp := binary.BigEndian.Uint16(p[hl:]), binary.BigEndian.Uint16(p[hl+2:])
	dir := ""
	switch {
	case sp == a && dp == b:
		dir = "a->b"
	case sp == b && dp == a:
		dir = "b->a"
	default:
		return "", false
	}
	return fmt.Sprintf("%s flags %#02x IP options %x", dir, p[hl+13], p[20:hl]), true
}
