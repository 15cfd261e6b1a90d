// Package sim runs whole networks of sockstack hosts, routers and
// switches in virtual time. One event loop owns the clock: every host's
// clock.Clock is a view of it, timers are events, a link delivers a frame
// by scheduling an event, and the built-in workloads are event-driven
// agents. Nothing sleeps and nothing runs on another goroutine, so a run
// is a pure function of its scenario and seed.
package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Epoch is the wall-clock date virtual time zero maps to: fixed, so the
// pcap timestamps of a run do not depend on when it ran.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// actor is whatever an event calls: a timer, a link direction, a closure.
type actor interface {
	fire(arg uint64, p *packet)
}

// event is one entry of the queue; ties in time run in scheduling order.
type event struct {
	at  int64
	seq uint64
	a   actor
	arg uint64
	p   *packet
}

// Sim is the event loop and the virtual clock.
type Sim struct {
	mu   sync.Mutex
	now  int64 // ns since Epoch
	q    []event
	seq  uint64
	seed uint64

	// Events counts executed events.
	Events uint64
	// MaxWall bounds the wall time of Run (0: none); MaxEvents bounds its events.
	MaxWall   time.Duration
	MaxEvents uint64

	pat []byte // flow byte pattern
	buf []byte // read scratch (the loop is single-threaded)

	// DAD turns on IPv6 duplicate address detection in the stacks
	// created after it is set (scenario field dad).
	DAD bool
	// NeighSolicits, when set, is how many ARP requests and neighbour
	// solicitations (multicast, and unicast when probing) a stack created
	// after it is set sends before a neighbour counts as unreachable
	// (Linux's mcast_solicit and ucast_solicit; the stacks' default is 3).
	NeighSolicits int

	stopped bool
	kick    chan struct{} // set when the loop runs on real (synctest) time
	bubble  bool
	start   time.Time
}

// New makes an empty simulation seeded with seed.
func New(seed uint64) *Sim { return &Sim{seed: seed} }

// Seed is the run's seed.
func (s *Sim) Seed() uint64 { return s.seed }

// Now is the virtual time since Epoch.
func (s *Sim) Now() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	return time.Duration(s.now)
}

func (s *Sim) nowNS() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	return s.now
}

// refreshLocked follows the clock of a synctest bubble (time.Now there is
// virtual); in the pure event loop time moves only by events.
func (s *Sim) refreshLocked() {
	if s.bubble {
		s.now = max(s.now, int64(time.Since(s.start)))
	}
}

// Time is Now as a time.Time.
func (s *Sim) Time() time.Time { return Epoch.Add(s.Now()) }

// Rand returns a generator for one named part of the model: its stream
// depends only on the seed and the name, not on the order parts were made.
func (s *Sim) Rand(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(s.seed, h.Sum64()))
}

// SeedBytes derives per-host key material from the seed and a name.
func (s *Sim) SeedBytes(name string) []byte {
	return fmt.Appendf(nil, "sockstack-sim/%d/%s", s.seed, name)
}

// push queues an event d after now; s.mu is held.
func (s *Sim) pushLocked(at int64, a actor, arg uint64, p *packet) {
	s.refreshLocked()
	if at < s.now {
		at = s.now
	}
	s.seq++
	s.q = append(s.q, event{at: at, seq: s.seq, a: a, arg: arg, p: p})
	// sift up
	i := len(s.q) - 1
	for i > 0 {
		j := (i - 1) / 2
		if !less(&s.q[i], &s.q[j]) {
			break
		}
		s.q[i], s.q[j] = s.q[j], s.q[i]
		i = j
	}
	if s.kick != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func less(a, b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (s *Sim) popLocked() event {
	e := s.q[0]
	n := len(s.q) - 1
	s.q[0] = s.q[n]
	s.q[n] = event{}
	s.q = s.q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(&s.q[r], &s.q[l]) {
			m = r
		}
		if !less(&s.q[m], &s.q[i]) {
			break
		}
		s.q[i], s.q[m] = s.q[m], s.q[i]
		i = m
	}
	return e
}

func (s *Sim) schedule(d time.Duration, a actor, arg uint64, p *packet) {
	s.mu.Lock()
	s.pushLocked(s.now+int64(d), a, arg, p)
	s.mu.Unlock()
}

func (s *Sim) scheduleAt(at int64, a actor, arg uint64, p *packet) {
	s.mu.Lock()
	s.pushLocked(at, a, arg, p)
	s.mu.Unlock()
}

type funcActor func()

func (f funcActor) fire(uint64, *packet) { f() }

// At runs f at virtual time t (from Epoch); a time in the past means now.
func (s *Sim) At(t time.Duration, f func()) { s.scheduleAt(int64(t), funcActor(f), 0, nil) }

// After runs f d after now.
func (s *Sim) After(d time.Duration, f func()) { s.schedule(d, funcActor(f), 0, nil) }

// Stop ends Run after the current event.
func (s *Sim) Stop() {
	s.mu.Lock()
	s.stopped = true
	if s.kick != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// ErrWallBound and ErrEventBound report a run cut short by its bounds.
var (
	ErrWallBound  = errors.New("sim: wall-time bound exceeded")
	ErrEventBound = errors.New("sim: event bound exceeded")
)

// Run executes events in time order until the queue is empty, virtual
// time passes until, or Stop is called. Time is left at until (or at the
// last event when stopped).
func (s *Sim) Run(until time.Duration) error {
	end := int64(until)
	start := time.Now()
	var n uint64
	for {
		s.mu.Lock()
		if s.stopped || len(s.q) == 0 || s.q[0].at > end {
			if !s.stopped && s.now < end {
				s.now = end
			}
			s.stopped = false
			s.mu.Unlock()
			return nil
		}
		e := s.popLocked()
		s.now = e.at
		s.mu.Unlock()
		e.a.fire(e.arg, e.p)
		s.Events++
		n++
		if n&4095 == 0 {
			if s.MaxWall > 0 && time.Since(start) > s.MaxWall {
				return ErrWallBound
			}
		}
		if s.MaxEvents > 0 && s.Events > s.MaxEvents {
			return ErrEventBound
		}
	}
}

// UseBubble switches the simulation to the clock of the testing/synctest
// bubble it is called in: events run when the bubble's time reaches
// them, so goroutines of the bubble (net/http over netconn, say) and the
// simulated links share one virtual time. Call it before building hosts,
// inside the bubble, and drive the loop with RunBubble on a goroutine of
// the bubble.
func (s *Sim) UseBubble() {
	s.mu.Lock()
	s.bubble = true
	s.start = time.Now().Add(-time.Duration(s.now))
	s.kick = make(chan struct{}, 1)
	s.mu.Unlock()
}

// RunBubble is Run for a bubble: between events it sleeps on a timer of
// the bubble (which advances virtual time once every goroutine is
// blocked) or until a goroutine schedules an earlier event.
func (s *Sim) RunBubble(until time.Duration) error {
	end := int64(until)
	for {
		s.mu.Lock()
		s.refreshLocked()
		if s.stopped || s.now >= end {
			s.stopped = false
			s.mu.Unlock()
			return nil
		}
		if len(s.q) > 0 && s.q[0].at <= s.now {
			e := s.popLocked()
			s.mu.Unlock()
			e.a.fire(e.arg, e.p)
			s.mu.Lock()
			s.Events++
			s.mu.Unlock()
			continue
		}
		wait := end - s.now
		if len(s.q) > 0 {
			wait = min(wait, s.q[0].at-s.now)
		}
		s.mu.Unlock()
		t := time.NewTimer(time.Duration(wait))
		select {
		case <-t.C:
		case <-s.kick:
		}
		t.Stop()
	}
}

// Pending is the number of queued events (including cancelled timers).
func (s *Sim) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q)
}
