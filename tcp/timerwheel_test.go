package tcp

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// TestTimerWheelExact: entries with deadlines from a fraction of a
// millisecond to a day, armed, re-armed and stopped at random while a
// manual clock moves in random steps, each fire exactly at their
// deadline (not at a tick boundary), in deadline order, once; stopped
// ones never; and one clock timer drives them all.
func TestTimerWheelExact(t *testing.T) {
	clk := clock.NewManual(epoch)
	base := clk.Now()
	now := func() time.Duration { return clk.Now().Sub(base) + time.Second }
	w := newTimerWheel(clk, now)
	const n = 3000
	ts := make([]wheelTimer, n)
	want := make([]time.Duration, n) // 0: not armed
	var fired []int
	idx := map[*wheelTimer]int{}
	for i := range ts {
		idx[&ts[i]] = i
	}
	w.testFire = func(x *wheelTimer) {
		i := idx[x]
		if want[i] == 0 {
			t.Fatalf("timer %d fired, not armed", i)
		}
		if got := now(); got != want[i] {
			t.Fatalf("timer %d fired at %v, deadline %v", i, got, want[i])
		}
		want[i] = 0
		fired = append(fired, i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	spans := []time.Duration{time.Millisecond, 300 * time.Millisecond, 20 * time.Second, 20 * time.Minute, 24 * time.Hour}
	arm := func(i int) {
		span := spans[rng.IntN(len(spans))]
		at := now() + time.Duration(rng.Int64N(int64(span))) + time.Microsecond
		want[i] = at
		w.arm(&ts[i], at)
	}
	for i := range ts {
		arm(i)
	}
	if clk.Pending() != 1 {
		t.Fatalf("%d clock timers for %d wheel timers, want 1", clk.Pending(), n)
	}
	for step := 0; step < 4000; step++ {
		switch r := rng.IntN(10); {
		case r < 2:
			i := rng.IntN(n)
			arm(i) // re-arm, earlier or later
		case r < 3:
			i := rng.IntN(n)
			w.stop(&ts[i])
			want[i] = 0
		}
		clk.Advance(time.Duration(rng.Int64N(int64(spans[rng.IntN(4)]))))
	}
	clk.Advance(25 * time.Hour)
	for i, at := range want {
		if at != 0 {
			t.Fatalf("timer %d (deadline %v) never fired; now %v", i, at, now())
		}
	}
	if len(fired) < n/2 {
		t.Fatalf("only %d fired", len(fired))
	}
	if w.count != [wheelLevels + 1]int{} {
		t.Fatalf("entries left: %v", w.count)
	}
}
