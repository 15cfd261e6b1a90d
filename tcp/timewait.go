package tcp

import (
	"container/heap"
	"net/netip"
	"sync"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// twRecord is a connection in TIME_WAIT: only what answering the peer
// for 2*MSL needs (re-ACK a retransmitted FIN, RSTs, PAWS, reuse by a
// newer SYN or by a connect with timestamps), instead of the endpoint
// with its buffers and timers (Linux's inet_timewait_sock). All records
// share one timer.
type twRecord struct {
	key        connKey
	sndNxt     uint32
	rcvNxt     uint32
	tsRecent   uint32
	tsOffset   uint32
	mark       uint32 // SO_MARK of the connection, for its replies (Linux's tw_mark)
	dev        int32  // its bound device (tw_bound_dev_if): replies leave by it, only its segments match
	tsRecentAt time.Duration
	expire     time.Duration
	lastOOW    time.Duration
	idx        int
	win        uint16 // window field of our ACKs (already scaled)
	tos, ttl   uint8
	hopZero    bool // ttl 0 is meant (IPV6_UNICAST_HOPS 0), not the default
	tsOK       bool
	port       twPortKey
}

// twPortKey is a record's hold on its local port, for bind conflicts.
type twPortKey struct {
	addr      netip.Addr
	reusePort bool
	connect   bool  // bound by connect: the port stays shareable by connects
	dev       int32 // the bound device: no conflict with a socket bound to another
}

// twTable holds the records. Lock order: Protocol.mu, then twTable.mu.
type twTable struct {
	mu      sync.Mutex
	m       map[connKey]*twRecord
	h       twHeap // by expiry
	timer   clock.Timer
	timerAt time.Duration
}

type twHeap []*twRecord

func (h twHeap) Len() int           { return len(h) }
func (h twHeap) Less(i, j int) bool { return h[i].expire < h[j].expire }
func (h twHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *twHeap) Push(x any) {
	r := x.(*twRecord)
	r.idx = len(*h)
	*h = append(*h, r)
}
func (h *twHeap) Pop() any {
	o := *h
	r := o[len(o)-1]
	o[len(o)-1] = nil
	*h = o[:len(o)-1]
	return r
}

// enterTimeWait ends the connection and leaves a TIME_WAIT record for
// its 4-tuple (e.mu held). With MaxTimeWait records already, the
// connection just closes, counted (Linux: "time wait bucket table
// overflow").
func (e *Endpoint) enterTimeWait(now time.Duration) {
	p := e.p
	if e.ackNow {
		e.sendAck(now) // the ACK of the peer's FIN
	}
	k := connKey{e.local, e.remote}
	p.mu.Lock()
	p.tw.mu.Lock()
	if p.tw.m == nil {
		p.tw.m = make(map[connKey]*twRecord)
	}
	if closed := p.closed; len(p.tw.m) >= p.cfg.MaxTimeWait || closed {
		p.tw.mu.Unlock()
		p.mu.Unlock()
		if !closed {
			p.st.TimeWaitOverflow.Add(1)
		}
		e.setClosed()
		return
	}
	ws := min(e.rcvWindow()>>e.rcvWScale, 65535)
	r := &twRecord{
		key: k, sndNxt: e.sndMax, rcvNxt: e.rcvNxt,
		tsRecent: e.tsRecent, tsRecentAt: e.tsRecentAt, tsOffset: e.tsOffset, tsOK: e.tsOK,
		expire: now + 2*p.cfg.MSL, lastOOW: e.lastOOWAck,
		win: uint16(ws), tos: e.tos, ttl: e.ttl, hopZero: e.hopZero, mark: e.mark, dev: e.dev,
		port: twPortKey{e.local.Addr(), e.reusePort, e.connectBound, e.dev},
	}
	pe := p.ports[e.local.Port()]
	if pe == nil {
		pe = &portEntry{}
		p.ports[e.local.Port()] = pe
	}
	pe.twAdd(r.port)
	p.tw.m[k] = r
	heap.Push(&p.tw.h, r)
	p.st.TimeWaitRecords.Add(1)
	p.armTW(r.expire, now)
	p.tw.mu.Unlock()
	p.mu.Unlock()
	e.setClosed()
}

// armTW makes the shared timer fire by at (tw.mu held).
func (p *Protocol) armTW(at, now time.Duration) {
	t := &p.tw
	if t.timerAt != 0 && t.timerAt <= at {
		return
	}
	t.timerAt = at
	d := max(at-now, 0)
	if t.timer == nil {
		t.timer = p.clk.AfterFunc(d, p.twReap)
	} else {
		t.timer.Reset(d)
	}
}

// twReap ends the records whose 2*MSL has passed.
func (p *Protocol) twReap() {
	var done []*twRecord
	p.tw.mu.Lock()
	now := p.now()
	p.tw.timerAt = 0
	for len(p.tw.h) > 0 && p.tw.h[0].expire <= now {
		r := heap.Pop(&p.tw.h).(*twRecord)
		delete(p.tw.m, r.key)
		done = append(done, r)
	}
	if len(p.tw.h) > 0 {
		p.armTW(p.tw.h[0].expire, now)
	}
	p.tw.mu.Unlock()
	if len(done) == 0 {
		return
	}
	p.mu.Lock()
	for _, r := range done {
		p.twReleasePortLocked(r)
	}
	p.mu.Unlock()
}

// twRemoveLocked drops r from the table (tw.mu held); the caller then
// releases its port with p.mu.
func (p *Protocol) twRemoveLocked(r *twRecord) {
	delete(p.tw.m, r.key)
	if r.idx >= 0 && r.idx < len(p.tw.h) && p.tw.h[r.idx] == r {
		heap.Remove(&p.tw.h, r.idx)
	}
	r.idx = -1
}

// twReleasePortLocked drops r's hold on its port (p.mu held).
func (p *Protocol) twReleasePortLocked(r *twRecord) {
	p.st.TimeWaitRecords.Add(^uint64(0))
	port := r.key.local.Port()
	pe := p.ports[port]
	if pe == nil {
		return
	}
	pe.twDel(r.port)
	if pe.empty() {
		delete(p.ports, port)
	}
}

// twPortCount counts the records of one kind on a port; a port has
// few kinds, so a slice is smaller than a map (one per TIME_WAIT port).
type twPortCount struct {
	key twPortKey
	n   int
}

func (pe *portEntry) twAdd(k twPortKey) {
	for i := range pe.tw {
		if pe.tw[i].key == k {
			pe.tw[i].n++
			return
		}
	}
	pe.tw = append(pe.tw, twPortCount{k, 1})
}

func (pe *portEntry) twDel(k twPortKey) {
	for i := range pe.tw {
		if pe.tw[i].key == k {
			if pe.tw[i].n--; pe.tw[i].n <= 0 {
				pe.tw = append(pe.tw[:i], pe.tw[i+1:]...)
				if len(pe.tw) == 0 {
					pe.tw = nil
				}
			}
			return
		}
	}
}

func (pe *portEntry) empty() bool {
	return len(pe.users) == 0 && len(pe.children) == 0 && len(pe.tw) == 0
}

// twConflict applies the bind rules to the port's TIME_WAIT records:
// they are in the way unless SO_REUSEADDR (or SO_REUSEPORT on both), or
// the record and the socket are bound to different devices
// (inet_bind_conflict checks tw_bound_dev_if too).
func (pe *portEntry) twConflict(e *Endpoint, addr netip.Addr) bool {
	for _, c := range pe.tw {
		k := c.key
		if !addrOverlap(addr, k.addr) || devsApart(e.devOpt(), k.dev) || e.reuseAddr || (e.reusePort && k.reusePort) {
			continue
		}
		return true
	}
	return false
}

// twBlocksConnect reports whether records bound by bind (not connect)
// keep connects from src off the port.
func (pe *portEntry) twBlocksConnect(src netip.Addr) bool {
	for _, c := range pe.tw {
		if k := c.key; !k.connect && addrOverlap(k.addr, src) {
			return true
		}
	}
	return false
}

// twTakeLocked lets a connect take a 4-tuple (p.mu held): ok is false
// when a record holds it and may not be reused; a reusable record (with
// timestamps, at least 125 ms since its last segment, as tcp_tw_reuse)
// is ended.
func (p *Protocol) twTakeLocked(k connKey, now time.Duration) (ok bool) {
	p.tw.mu.Lock()
	r := p.tw.m[k]
	if r == nil {
		p.tw.mu.Unlock()
		return true
	}
	if p.cfg.NoTimeWaitReuse || !r.tsOK || now-r.tsRecentAt < time.Second/8 {
		p.tw.mu.Unlock()
		return false
	}
	p.twRemoveLocked(r)
	p.tw.mu.Unlock()
	p.twReleasePortLocked(r)
	p.st.TimeWaitReused.Add(1)
	return true
}

// twInput answers a segment for a TIME_WAIT record (RFC 9293 3.10.7.4,
// RFC 6191). It returns false when there is no record, or when a new SYN
// takes the 4-tuple over (the caller then hands it to a listener).
func (p *Protocol) twInput(k connKey, s *segment) bool {
	t := &p.tw
	t.mu.Lock()
	r := t.m[k]
	if r == nil || !p.devOK(s, r.dev, k.local.Addr()) {
		// A record bound to a device matches segments from it only, as
		// the connection did (bindtodev.go).
		t.mu.Unlock()
		return false
	}
	now := p.now()
	hasTS := r.tsOK && s.opts.HasTS
	switch {
	case s.has(wire.TCPFlagSYN) && !s.has(wire.TCPFlagACK|wire.TCPFlagRST):
		newer := seqGT(s.seq, r.rcvNxt)
		if hasTS {
			newer = seqGT(s.opts.TSVal, r.tsRecent)
		}
		if newer {
			p.twRemoveLocked(r)
			t.mu.Unlock()
			p.mu.Lock()
			p.twReleasePortLocked(r)
			p.mu.Unlock()
			p.st.TimeWaitReused.Add(1)
			return false
		}
		p.twAck(r, s, now, true)
	case hasTS && seqLT(s.opts.TSVal, r.tsRecent) && !s.has(wire.TCPFlagRST):
		p.st.PAWSDrops.Add(1)
		p.twAck(r, s, now, true)
	case s.has(wire.TCPFlagRST):
		// An exact RST ends TIME_WAIT, as Linux (tcp_rfc1337=0) does.
		if s.seq == r.rcvNxt {
			p.twRemoveLocked(r)
			t.mu.Unlock()
			p.mu.Lock()
			p.twReleasePortLocked(r)
			p.mu.Unlock()
			return true
		}
	case s.has(wire.TCPFlagFIN) && s.seq+s.seqLen() == r.rcvNxt:
		// The peer did not get our last ACK: answer and wait 2*MSL again.
		if hasTS {
			r.tsRecent, r.tsRecentAt = s.opts.TSVal, now
		}
		r.expire = now + 2*p.cfg.MSL
		heap.Fix(&t.h, r.idx)
		p.twAck(r, s, now, false)
	case s.has(wire.TCPFlagFIN) || len(s.payload) > 0:
		p.twAck(r, s, now, true)
	}
	t.mu.Unlock()
	return true
}

// twAck sends the record's ACK for s (tw.mu held); limited ones obey the
// per-connection rate limit. It carries s's IP options echoed, as
// Linux's tcp_v4_timewait_ack (ipopts_reply.go).
func (p *Protocol) twAck(r *twRecord, s *segment, now time.Duration, limited bool) {
	if limited && !p.oowAllowed(&r.lastOOW, now, oowTimeWait) {
		return
	}
	h := wire.TCPHeader{Seq: r.sndNxt, Ack: r.rcvNxt, Flags: wire.TCPFlagACK, Window: r.win}
	if r.tsOK {
		h.Options.HasTS, h.Options.TSVal, h.Options.TSEcr = true, uint32(now/time.Millisecond)+1+r.tsOffset, r.tsRecent
	}
	if o, ok := s.replyOpts(); ok {
		p.sendReply(r.key, &h, r.tos, r.ttl, r.hopZero, o, r.mark, r.dev)
	}
}

// twClose drops every record (Protocol.Close).
func (p *Protocol) twClose() {
	p.tw.mu.Lock()
	if p.tw.timer != nil {
		p.tw.timer.Stop()
	}
	p.tw.m = nil
	p.tw.h = nil
	p.tw.mu.Unlock()
}

// twTable lists the records for the socket table.
func (p *Protocol) twRows(out []ConnInfo) []ConnInfo {
	p.tw.mu.Lock()
	for _, r := range p.tw.h {
		out = append(out, ConnInfo{Local: r.key.local, Remote: r.key.remote, State: StateTimeWait})
	}
	p.tw.mu.Unlock()
	return out
}

// hasTimeWait reports whether a record holds the 4-tuple (for tests and
// introspection).
func (p *Protocol) hasTimeWait(local, remote netip.AddrPort) bool {
	p.tw.mu.Lock()
	defer p.tw.mu.Unlock()
	return p.tw.m[connKey{local, remote}] != nil
}
