package perf

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// sockstack6 is Sockstack over IPv6: fd00::1 (A) and fd00::2 (B) on the
// same pipe (DAD off: the addresses are usable at once).
func sockstack6(mtu int) *Env {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, mtu)
	opts := stack.Options{DADTransmits: -1}
	sa, sb := stack.New(opts), stack.New(opts)
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("fd00::1/64"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("fd00::2/64"))
	return stackEnv("sockstack ipv6", "fd00::2", sa, sb)
}

// The IPv6 figures next to IPv4's (BENCHMARKS.md): the same
// measurements, the same pipe, the other network protocol.

func BenchmarkBulk1500IPv6(b *testing.B) { benchBulkEnv(b, sockstack6(1500)) }
func BenchmarkRRIPv6(b *testing.B)       { benchRR(b, sockstack6(1500)) }
func BenchmarkConnIPv6(b *testing.B)     { benchConn(b, sockstack6(1500)) }

// TestFiguresSmokeIPv6: every measurement runs over IPv6.
func TestFiguresSmokeIPv6(t *testing.T) {
	env := sockstack6(1500)
	defer env.Close()
	if r, err := Bulk(env, 8<<20); err != nil || r.Bytes != 8<<20 {
		t.Fatalf("bulk: %v", err)
	}
	if _, err := RR(env, 10, 100); err != nil {
		t.Fatalf("rr: %v", err)
	}
	if r, err := Conn(env, 100*time.Millisecond); err != nil || r == 0 {
		t.Fatalf("conn: %v %v", r, err)
	}
	if r, err := UDP(env, 2000); err != nil || r.Received == 0 {
		t.Fatalf("udp: %+v %v", r, err)
	}
}
