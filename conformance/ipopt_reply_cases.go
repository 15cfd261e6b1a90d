package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// IPv4 options on the segments TCP sends without a connection: the RST
// answering a connect to a closed port carries the SYN's options echoed
// (Linux's tcp_v4_send_reset with ip_options_echo). A raw IPPROTO_TCP
// socket on 127.0.0.1 reads both segments as the receive path left them
// (Record Route filled on receipt too); only the IP options and the TCP
// flags of the segments of the case's own port pair are logged.

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
	return []Case{
		rst("Record Route, three slots", "\x07\x0f\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
		rst("Record Route, one slot", "\x07\x07\x04\x00\x00\x00\x00"),
		rst("Record Route, two slots, and NOPs", "\x01\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00"),
		rst("Router Alert", "\x94\x04\x00\x00"),
		rst("none", ""),
	}
}

// rawTCP logs the IP options and TCP flags of the next n segments
// between ports a and b that raw reads (other TCP traffic on the host
// skipped), then whether another follows.
func (t *T) rawTCP(raw sockapi.Sock, a, b uint16, n int) {
	buf := make([]byte, 65536)
	got := 0
	for tries := 0; got < n && tries < 10000; tries++ {
		k, err := raw.Recv(buf, 0)
		if err != nil {
			t.Logf("raw recv: %s", ErrName(err))
			return
		}
		if line, ok := rawTCPLine(buf[:k], a, b); ok {
			t.Logf("segment %d: %s", got+1, line)
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
		if line, ok := rawTCPLine(buf[:k], a, b); ok {
			t.Logf("another segment: %s", line)
			return
		}
	}
}

// rawTCPLine describes p (an IPv4 header and TCP) when it is between
// ports a and b: direction, flags, IP options.
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
		dir = "C->X"
	case sp == b && dp == a:
		dir = "X->C"
	default:
		return "", false
	}
	return fmt.Sprintf("%s flags %#02x IP options %x", dir, p[hl+13], p[20:hl]), true
}
