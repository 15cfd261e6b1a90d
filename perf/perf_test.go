package perf

import (
	"sync/atomic"
	"testing"
	"time"
)

// These benchmarks give BENCH.md's figures; `sockstack bench` prints the
// same as a table next to the kernel's.

func BenchmarkBulk1500(b *testing.B)  { benchBulk(b, 1500) }
func BenchmarkBulk65000(b *testing.B) { benchBulk(b, 65000) }

func benchBulk(b *testing.B, mtu int) { benchBulkEnv(b, Sockstack(mtu)) }

func BenchmarkRR(b *testing.B)   { benchRR(b, Sockstack(1500)) }
func BenchmarkConn(b *testing.B) { benchConn(b, Sockstack(1500)) }

// benchBulkEnv, benchRR and benchConn measure env and close it.
func benchBulkEnv(b *testing.B, env *Env) {
	defer env.Close()
	b.SetBytes(64 << 20)
	for i := 0; i < b.N; i++ {
		r, err := Bulk(env, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Gbps(), "Gbit/s")
		b.ReportMetric(r.Cores(), "cores")
	}
}

func benchRR(b *testing.B, env *Env) {
	defer env.Close()
	r, err := RR(env, 1000, max(b.N, 1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.P50.Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(r.P99.Nanoseconds())/1000, "p99-µs")
}

func benchConn(b *testing.B, env *Env) {
	defer env.Close()
	r, err := Conn(env, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r, "conn/s")
}

func BenchmarkUDP(b *testing.B) {
	env := Sockstack(1500)
	defer env.Close()
	r, err := UDP(env, max(b.N, 100000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.Rate(), "dgrams/s")
	b.ReportMetric(r.Loss(), "loss%")
}

// TestFiguresSmoke runs every measurement once at a small size so a
// broken harness fails the test suite, not only the benchmark run.
func TestFiguresSmoke(t *testing.T) {
	env := Sockstack(1500)
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
	if _, err := Mem(env, 50); err != nil {
		t.Fatalf("mem: %v", err)
	}
	if r, err := UDP(env, 2000); err != nil || r.Received == 0 {
		t.Fatalf("udp: %+v %v", r, err)
	}
}

// The udp receiver's wait for stragglers ends only when it has gone
// quiet: a receiver that delivers is not stopped; one that is silent is.
func TestWaitQuiet(t *testing.T) {
	var progress atomic.Int64
	got := make(chan int, 1)
	got <- 7
	if r := waitQuiet(got, &progress, time.Millisecond, func() { t.Fatal("stopped a receiver that had delivered") }); r != 7 {
		t.Fatalf("got %d, want 7", r)
	}
	stops := 0
	r := waitQuiet(got, &progress, time.Millisecond, func() { stops++; got <- 3 })
	if r != 3 || stops != 1 {
		t.Fatalf("got %d after %d stops, want 3 after 1", r, stops)
	}
}
