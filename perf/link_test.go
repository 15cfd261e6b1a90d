package perf

import (
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// A dropping link loses what finds the queue full, reports it as sent
// (a wire does not push back) and counts it as a link drop.
func TestDropLinkCounts(t *testing.T) {
	pa, pb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	defer pa.Close()
	defer pb.Close()
	d := &dropLink{PipeEnd: pa}
	f := make([]byte, 100)
	// pb is not attached: its queue fills at DefaultQueueLen frames.
	for i := 0; i < link.DefaultQueueLen+10; i++ {
		if n, err := d.WriteFrames([][]byte{f}); n != 1 || err != nil {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	if got := d.dropped.Load(); got != 10 {
		t.Fatalf("dropped %d, want 10", got)
	}
	if _, ok := link.Endpoint(d).(link.Waiter); !ok {
		t.Fatal("dropLink must override WaitRoom")
	}
}

// Both link semantics carry a bulk transfer and a UDP run; the drop
// counters are reported.
func TestLinkModesSmoke(t *testing.T) {
	for _, m := range []LinkMode{PushBack, Drop} {
		env := SockstackLink(1500, m)
		if _, err := Bulk(env, 16<<20); err != nil {
			t.Fatalf("%v bulk: %v", m, err)
		}
		r, err := UDP(env, 2000)
		if err != nil || r.Received == 0 {
			t.Fatalf("%v udp: %+v %v", m, r, err)
		}
		dr := env.Drops()
		t.Logf("%v: link drops %d, stack drops %d, retransmits %d; udp %d of %d", m, dr.Link, dr.Stack, dr.Retrans, r.Received, r.Sent)
		env.Close()
	}
}
