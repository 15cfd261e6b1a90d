package perf

import (
	"net/netip"
	"slices"
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

// BenchmarkIPv6VsIPv4 alternates the two families in one process: each
// of ipv6Rounds rounds measures bulk, rr and conn on fresh hosts of
// both, the family that goes first swapping every round, so load from
// elsewhere on a shared machine falls on both alike. Next to the wall-
// clock figures it gives the CPU each costs (process CPU time per GB of
// bulk and per connection), which the machine's load moves far less.
// It reports the medians and the IPv6/IPv4 ratios of the medians; -v
// logs every round and the ranges. Run it with -benchtime 1x.
func BenchmarkIPv6VsIPv4(b *testing.B) {
	const ipv6Rounds = 9
	names := []string{"bulk-Gbit/s", "bulk-cpu-s/GB", "rr-p50-µs", "conn/s", "conn-cpu-µs"}
	short := []string{"bulk", "bulk-cpu", "rr", "conn", "conn-cpu"}
	var fig [2][5][]float64 // family (0 IPv4, 1 IPv6) × names
	for i := 0; i < ipv6Rounds; i++ {
		for k := 0; k < 2; k++ {
			fam := (i + k) % 2
			mk := func() *Env {
				if fam == 1 {
					return sockstack6(1500)
				}
				return Sockstack(1500)
			}
			env := mk()
			r, err := Bulk(env, 64<<20)
			env.Close()
			if err != nil {
				b.Fatal(err)
			}
			env = mk()
			rr, err := RR(env, 1000, 5000)
			env.Close()
			if err != nil {
				b.Fatal(err)
			}
			env = mk()
			c0 := cpuTime()
			c, err := Conn(env, 500*time.Millisecond)
			ccpu := cpuTime() - c0
			env.Close()
			if err != nil {
				b.Fatal(err)
			}
			v := []float64{r.Gbps(), r.CPU.Seconds() / (float64(r.Bytes) / 1e9), float64(rr.P50.Nanoseconds()) / 1000,
				c, float64(ccpu.Nanoseconds()) / 1000 / (c * 0.5)}
			for j := range v {
				fig[fam][j] = append(fig[fam][j], v[j])
			}
			b.Logf("round %d %s: bulk %.2f Gbit/s (%.3f CPU s/GB), rr p50 %.2f µs, conn %.0f/s (%.1f CPU µs each)",
				i, [2]string{"IPv4", "IPv6"}[fam], v[0], v[1], v[2], v[3], v[4])
		}
	}
	for j, name := range names {
		m4, lo4, hi4 := medianRange(fig[0][j])
		m6, lo6, hi6 := medianRange(fig[1][j])
		b.Logf("%s: IPv4 %.4g [%.4g–%.4g], IPv6 %.4g [%.4g–%.4g], IPv6/IPv4 %.3f", name, m4, lo4, hi4, m6, lo6, hi6, m6/m4)
		b.ReportMetric(m4, "v4-"+name)
		b.ReportMetric(m6, "v6-"+name)
		b.ReportMetric(m6/m4, "ratio-"+short[j])
	}
}

// medianRange is the median, minimum and maximum of v.
func medianRange(v []float64) (med, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}
