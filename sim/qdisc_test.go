package sim

import (
	"encoding/binary"
	"testing"
	"time"
)

// ipFrame is an Ethernet + IPv4 + UDP frame from 10.0.0.src, carrying
// its send time (ns) in the payload.
func ipFrame(src byte, size int) []byte {
	f := make([]byte, size)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	ip[9] = 17
	copy(ip[12:], []byte{10, 0, 0, src})
	copy(ip[16:], []byte{10, 0, 1, 1})
	binary.BigEndian.PutUint16(ip[20:], 1000+uint16(src))
	binary.BigEndian.PutUint16(ip[22:], 53)
	return f
}

// delaySink records each flow's one-way delays.
type delaySink struct {
	s      *Sim
	delays map[byte][]time.Duration
}

func (d *delaySink) recvFrame(_ *Port, p *packet) {
	sent := time.Duration(binary.BigEndian.Uint64(p.buf[len(p.buf)-8:]))
	d.delays[p.buf[14+15]] = append(d.delays[p.buf[14+15]], d.s.Now()-sent)
	p.free()
}

// sendFlow offers a flow's frames at rate (bit/s) for dur.
func sendFlow(s *Sim, l *Link, src byte, size int, rate float64, dur time.Duration) {
	gap := time.Duration(float64(size*8) / rate * 1e9)
	for t := time.Duration(0); t < dur; t += gap {
		s.At(t, func() {
			p := newPacket(ipFrame(src, size))
			binary.BigEndian.PutUint64(p.buf[len(p.buf)-8:], uint64(s.Now()))
			l.Ends[0].send(p)
		})
	}
}

func maxDelay(v []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range v {
		m = max(m, d)
	}
	return m
}

// FQ-CoDel isolates a sparse flow from a flow that overloads the link;
// drop-tail makes it wait behind the standing queue.
func TestFQCoDelIsolation(t *testing.T) {
	run := func(q QueueConfig) (sparse, heavy []time.Duration, st *QdiscStats) {
		s := New(3)
		l, err := s.NewLink("l", LinkConfig{Bandwidth: 10e6, Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		d := &delaySink{s: s, delays: map[byte][]time.Duration{}}
		l.Ends[1].sink = d
		sendFlow(s, l, 1, 1500, 20e6, 2*time.Second) // twice the link
		sendFlow(s, l, 2, 200, 100e3, 2*time.Second) // a voice-like trickle
		if err := s.Run(time.Minute); err != nil {
			t.Fatal(err)
		}
		_, qd := l.Dir(0)
		return d.delays[2], d.delays[1], qd.Stats()
	}
	sp, hv, st := run(QueueConfig{Type: "fq_codel"})
	dsp, _, _ := run(QueueConfig{Limit: 1000})
	if len(sp) == 0 || len(hv) == 0 {
		t.Fatal("nothing delivered")
	}
	// The sparse flow waits at most for the frame on the wire (1.2 ms)
	// and a quantum of the heavy flow.
	if m := maxDelay(sp); m > 5*time.Millisecond {
		t.Errorf("fq_codel: sparse flow delayed up to %v", m)
	}
	if m := maxDelay(dsp); m < 100*time.Millisecond {
		t.Errorf("drop-tail: sparse flow delayed only %v; the heavy flow should build a queue", m)
	}
	if st.CoDelDrops == 0 || st.NewFlows < 2 {
		t.Errorf("fq_codel counters: %+v", *st)
	}
	// (An unresponsive flow at twice the rate outruns CoDel's control
	// law; its own queue grows, which is why FQ matters for the other.)
}

// RED drops early, between its thresholds, before the queue fills.
func TestREDEarlyDrop(t *testing.T) {
	s := New(4)
	l, err := s.NewLink("l", LinkConfig{Bandwidth: 10e6, Queue: QueueConfig{Type: "red", Limit: 400, MinTh: 20, MaxTh: 60, MaxP: 0.1, Weight: 0.02}})
	if err != nil {
		t.Fatal(err)
	}
	d := &delaySink{s: s, delays: map[byte][]time.Duration{}}
	l.Ends[1].sink = d
	sendFlow(s, l, 1, 1500, 12e6, 3*time.Second)
	if err := s.Run(time.Minute); err != nil {
		t.Fatal(err)
	}
	_, q := l.Dir(0)
	st := q.Stats()
	if st.EarlyDrops == 0 || st.Overlimit != 0 {
		t.Errorf("RED: early %d, overlimit %d; want early drops and no full queue", st.EarlyDrops, st.Overlimit)
	}
	if st.MaxPackets >= 400 || st.MaxPackets < 20 {
		t.Errorf("RED: queue peaked at %d packets, want between min_th and the limit", st.MaxPackets)
	}
}
