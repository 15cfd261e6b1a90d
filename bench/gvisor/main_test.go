package main

import (
	"runtime"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/sockstack/sockstack/perf"
)

func packets(n int) stack.PacketBufferList {
	var l stack.PacketBufferList
	for i := 0; i < n; i++ {
		l.PushBack(stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData([]byte{byte(i)})}))
	}
	return l
}

// Drop: what finds the queue full is lost, reported to gVisor as sent
// (a wire does not push back), and counted on the link.
func TestGvLinkDrop(t *testing.T) {
	l := newGvLink(channel.New(4, 1500, ""), 4, perf.Drop, false)
	defer l.close()
	pk := packets(6)
	defer pk.DecRef()
	n, err := l.WritePackets(pk)
	if n != 6 || err != nil {
		t.Fatalf("WritePackets = %d, %v; want 6, nil", n, err)
	}
	if got := l.full.Load(); got != 2 {
		t.Fatalf("link drops %d, want 2", got)
	}
	if got := l.NumQueued(); got != 4 {
		t.Fatalf("queued %d, want 4", got)
	}
}

// Push back: a writer that finds the queue full waits until the
// forwarder has drained it to half, loses nothing, and is counted once.
func TestGvLinkPushBack(t *testing.T) {
	l := newGvLink(channel.New(4, 1500, ""), 4, perf.PushBack, false)
	defer l.close()
	pk := packets(4)
	defer pk.DecRef()
	if n, err := l.WritePackets(pk); n != 4 || err != nil {
		t.Fatalf("WritePackets = %d, %v; want 4, nil", n, err)
	}
	one := packets(1)
	defer one.DecRef()
	done := make(chan int)
	go func() {
		n, _ := l.WritePackets(one)
		done <- n
	}()
	for l.full.Load() == 0 { // the writer found the queue full
		runtime.Gosched()
	}
	select {
	case n := <-done:
		t.Fatalf("write returned %d with the queue full", n)
	default:
	}
	l.take().DecRef()
	l.take().DecRef() // drained to half: the writer resumes
	if n := <-done; n != 1 {
		t.Fatalf("held-back write returned %d, want 1", n)
	}
	if got := l.NumQueued(); got != 3 {
		t.Fatalf("queued %d, want 3 (nothing lost)", got)
	}
	if got := l.full.Load(); got != 1 {
		t.Fatalf("held back %d times, want 1", got)
	}
}

// With -gvisor-gso gVisor's TCP hands the link super-segments (packets
// above the MTU), up to the 64 KB sockstack's link carries; without it,
// none. The transfer arrives whole either way.
func TestGvisorGSO(t *testing.T) {
	for _, gso := range []bool{true, false} {
		p, err := newGvPair(1500, perf.PushBack, gso)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := perf.Bulk(p.env, 8<<20); err != nil {
			p.env.Close()
			t.Fatalf("gso %v: bulk: %v", gso, err)
		}
		super := p.ea.super.Load()
		p.env.Close()
		if gso && super == 0 {
			t.Errorf("gso on: no super-segments crossed the link")
		}
		if !gso && super != 0 {
			t.Errorf("gso off: %d packets above the MTU", super)
		}
		if gso && p.ea.GSOMaxSize() != stack.GVisorGSOMaxSize {
			t.Errorf("GSOMaxSize %d, want %d", p.ea.GSOMaxSize(), stack.GVisorGSOMaxSize)
		}
	}
}

// Both semantics carry every figure's traffic for gVisor and report the
// counters (a small run of each measurement).
func TestGvisorFiguresSmoke(t *testing.T) {
	for _, m := range []perf.LinkMode{perf.PushBack, perf.Drop} {
		env, err := gvisorEnv(1500, m, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := perf.Bulk(env, 8<<20); err != nil {
			t.Fatalf("%v bulk: %v", m, err)
		}
		if _, err := perf.RR(env, 10, 100); err != nil {
			t.Fatalf("%v rr: %v", m, err)
		}
		r, err := perf.UDP(env, 5000)
		if err != nil || r.Received == 0 {
			t.Fatalf("%v udp: %+v %v", m, r, err)
		}
		d := env.Drops()
		t.Logf("%v: udp %d of %d; link %d, stack %d, retransmits %d", m, r.Received, r.Sent, d.Link, d.Stack, d.Retrans)
		env.Close()
	}
}
