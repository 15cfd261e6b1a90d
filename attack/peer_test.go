package attack

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// rawPeer is a malicious TCP peer: the attacker's port speaking TCP by
// hand from 10.0.0.66, so it can acknowledge what it likes.
type rawPeer struct {
	t             *testing.T
	l             *lab
	local, remote netip.AddrPort
	iss, irs      uint32
}

// dialRaw does the handshake with the victim's port, advertising a
// window of wnd bytes (no window scaling, no timestamps, no SACK).
func dialRaw(t *testing.T, l *lab, port uint16, wnd uint16) *rawPeer {
	return dialRawFrom(t, l, 40000, port, wnd)
}

// dialRawFrom is dialRaw from the attacker's port sport.
func dialRawFrom(t *testing.T, l *lab, sport, port uint16, wnd uint16) *rawPeer {
	t.Helper()
	return dialRawOpts(t, l, sport, port, wnd, wire.TCPOptions{HasMSS: true, MSS: 1460})
}

// dialRawOpts is dialRawFrom with the given SYN options.
func dialRawOpts(t *testing.T, l *lab, sport, port uint16, wnd uint16, opts wire.TCPOptions) *rawPeer {
	t.Helper()
	p := &rawPeer{t: t, l: l, local: netip.AddrPortFrom(attackerIP, sport), remote: netip.AddrPortFrom(victimIP, port), iss: 1_000_000}
	l.A.record(true)
	p.send(wire.TCPHeader{Seq: p.iss, Flags: wire.TCPFlagSYN, Window: wnd, Options: opts}, nil)
	synctest.Wait()
	for _, s := range p.segs() {
		if s.Flags() == wire.TCPFlagSYN|wire.TCPFlagACK && s.Ack() == p.iss+1 {
			p.irs = s.Seq()
			p.send(wire.TCPHeader{Seq: p.iss + 1, Ack: p.irs + 1, Flags: wire.TCPFlagACK, Window: wnd}, nil)
			synctest.Wait()
			return p
		}
	}
	t.Fatal("no SYN-ACK from the victim")
	return nil
}

func (p *rawPeer) send(h wire.TCPHeader, data []byte) {
	p.l.A.send(tcpFrame(p.local, p.remote, h, data))
}

// segs returns the victim's segments to the peer received since the last call.
func (p *rawPeer) segs() []wire.TCP {
	var out []wire.TCP
	for _, f := range p.l.A.take() {
		ip, t, ok := parseTCP(f)
		if ok && ip.Dst() == p.local.Addr() && t.DstPort() == p.local.Port() {
			out = append(out, t)
		}
	}
	return out
}

// serveBulk accepts one connection on l and writes n bytes to it (as
// much as the peer takes); the accepted socket goes to acc.
// With n < 0 it queues -n bytes with one non-blocking send and returns.
func serveBulk(ln *socket.Socket, n int, acc chan<- *socket.Socket, done chan<- error) {
	c, _, err := ln.Accept()
	if err != nil {
		acc <- nil
		done <- err
		return
	}
	acc <- c
	c.SetTimeout(24 * time.Hour)
	if n < 0 {
		c.SetBlocking(false)
		_, err = c.Send(make([]byte, -n), 0)
		c.SetBlocking(true)
		c.SetTimeout(24 * time.Hour)
	} else {
		_, err = c.Send(make([]byte, n), 0)
	}
	done <- err
}

// TestOptimisticAckAndAckStorm: a peer acknowledges data the victim has
// not sent yet (an optimistic ACK far ahead, then a storm of ACKs just
// past SND.MAX) and then floods duplicate ACKs. The victim ignores ACKs
// for unsent data (RFC 9293 3.10.7.4, RFC 5961 5): its acknowledged
// bytes, cwnd and sending stay where the real exchange put them, it never
// sends beyond the peer's window, and its answers are rate-limited.
func TestOptimisticAckAndAckStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		ln := listenTCP(t, l.VNet, 80, 16)
		acc := make(chan *socket.Socket, 1)
		done := make(chan error, 1)
		go serveBulk(ln, 1<<20, acc, done)
		const wnd = 65535
		p := dialRaw(t, l, 80, wnd)
		v := <-acc
		if v == nil {
			t.Fatal(<-done)
		}
		defer v.Close()
		synctest.Wait()
		// The victim sent its initial window; the peer acknowledges none of it.
		sndMax := p.irs + 1
		for _, s := range p.segs() {
			if e := s.Seq() + uint32(len(s.Payload())); seqAfter(e, sndMax) {
				sndMax = e
			}
		}
		before := tcpInfo(t, v)
		t.Logf("victim sent %d bytes before any ACK: cwnd %d bytes, %d in flight", sndMax-p.irs-1, before.CwndBytes, before.BytesInFlight)

		n := scaled(10_000, 2)
		m := begin(t, "optimistic ACKs", l.V)
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			// Half far ahead, half just past what was sent.
			ack := sndMax + 1 + uint32(i%50)*1460
			if i%2 == 0 {
				ack = sndMax + 1<<20 + uint32(i)*1460
			}
			fs = append(fs, tcpFrame(p.local, p.remote, wire.TCPHeader{Seq: p.iss + 1, Ack: ack, Flags: wire.TCPFlagACK, Window: wnd}, nil))
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		after := tcpInfo(t, v)
		answers := p.segs()
		newData := 0
		for _, s := range answers {
			if e := s.Seq() + uint32(len(s.Payload())); seqAfter(e, sndMax) {
				newData++
			}
		}
		t.Logf("optimistic ACKs: %d ACKs for unsent data; victim answered %d segments (%d with new data); bytes acked %d -> %d, cwnd %d -> %d",
			n, len(answers), newData, before.BytesAcked, after.BytesAcked, before.CwndBytes, after.CwndBytes)
		if after.BytesAcked != before.BytesAcked || after.CwndBytes > before.CwndBytes || newData != 0 {
			t.Errorf("ACKs for unsent data were taken: bytes acked %d -> %d, cwnd %d -> %d, %d segments of new data",
				before.BytesAcked, after.BytesAcked, before.CwndBytes, after.CwndBytes, newData)
		}
		if bound := 2 + 2*int(m.elapse/(500*time.Millisecond)); len(answers) > bound {
			t.Errorf("the victim answered %d ACKs for unsent data with %d segments, bound %d (rate limit per connection)", n, len(answers), bound)
		}

		// ACK storm: duplicate ACKs of SND.UNA. One fast retransmit, and
		// never more in flight than the peer's window.
		m = begin(t, "duplicate ACK storm", l.V)
		for i := 0; i < n; i++ {
			fs = append(fs, tcpFrame(p.local, p.remote, wire.TCPHeader{Seq: p.iss + 1, Ack: p.irs + 1, Flags: wire.TCPFlagACK, Window: wnd}, nil))
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		answers = p.segs()
		high, retrans := sndMax, 0
		for _, s := range answers {
			if len(s.Payload()) == 0 {
				continue
			}
			if e := s.Seq() + uint32(len(s.Payload())); seqAfter(e, high) {
				high = e
			} else {
				retrans++
			}
		}
		t.Logf("ACK storm: %d duplicate ACKs drew %d segments (%d retransmissions); highest byte sent %d past SND.UNA (window %d)",
			n, len(answers), retrans, high-p.irs-1, wnd)
		if high-p.irs-1 > wnd {
			t.Errorf("the victim sent %d bytes past SND.UNA, beyond the peer's window of %d", high-p.irs-1, wnd)
		}
		if retrans > 4 {
			t.Errorf("%d duplicate ACKs drew %d retransmissions", n, retrans)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes", g)
		}
	})
}

func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// TestZeroWindowHold: a peer takes the victim's first window, then
// advertises a zero window for ever and never answers the persist
// probes. The victim gives up after the retries2 rule (15 unanswered
// probes, as Linux's tcp_probe_timer), a reader gets ETIMEDOUT, and the
// connection's memory is freed.
func TestZeroWindowHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		ln := listenTCP(t, l.VNet, 80, 16)
		acc := make(chan *socket.Socket, 1)
		done := make(chan error, 1)
		go serveBulk(ln, -(256 << 10), acc, done)
		m := begin(t, "zero-window hold", l.V)
		p := dialRaw(t, l, 80, 65535)
		v := <-acc
		if v == nil {
			t.Fatal(<-done)
		}
		defer v.Close()
		synctest.Wait()
		// Acknowledge everything that came, closing the window, until
		// nothing more is in flight.
		high := p.irs + 1
		for more := true; more; {
			more = false
			for _, s := range p.segs() {
				if e := s.Seq() + uint32(len(s.Payload())); seqAfter(e, high) {
					high, more = e, true
				}
			}
			p.send(wire.TCPHeader{Seq: p.iss + 1, Ack: high, Flags: wire.TCPFlagACK, Window: 0}, nil)
			synctest.Wait()
		}
		held := liveHeap()
		start := time.Now()
		// From now on the peer is silent. A reader learns when the
		// victim gives up (the peer never sends data, so Recv returns
		// only with the connection's error).
		dead := make(chan error, 1)
		go func() {
			_, err := v.Recv(make([]byte, 1), 0)
			dead <- err
		}()
		var err error
		select {
		case err = <-dead:
		case <-time.After(6 * time.Hour):
			t.Fatalf("the connection is still held after 6 h of unanswered zero-window probes: %+v", tcpInfo(t, v))
		}
		took := time.Since(start)
		if werr := <-done; werr != nil {
			t.Fatalf("queueing the data: %v", werr)
		}
		probes := 0
		for _, s := range p.segs() {
			if s.Flags()&wire.TCPFlagRST == 0 {
				probes++
			}
		}
		v.Close()
		l.A.record(false)
		synctest.Wait()
		m.end()
		t.Logf("zero-window hold: the victim gave up after %v and %d probes (error: %v); heap with the connection %s, after %s",
			took, probes, err, kib(held), kib(m.heap1))
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Errorf("the connection ended with %v, want ETIMEDOUT", err)
		}
		if took > time.Hour {
			t.Errorf("the victim held the connection %v", took)
		}
		for _, c := range l.V.TCP.Table() {
			if c.Remote == p.local {
				t.Errorf("connection still in the table: %+v", c)
			}
		}
		// Its buffers are released: TCP's own account is back to zero (the
		// heap bound only catches gross leaks; the links' buffers make
		// the heap noisy by up to about 1.5 MiB).
		if b := l.V.TCP.Stats().MemBytes; b != 0 {
			t.Errorf("TCP buffers still hold %d bytes after the connection ended", b)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes after the connection ended", g)
		}
	})
}

// TestTimeWaitFlood: many short connections that the victim closes first
// leave it in TIME_WAIT for each; the number held is capped
// (tcp_max_tw_buckets) and each is a small record, not a whole endpoint.
func TestTimeWaitFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{TCP: twConfig()})
		ln := listenTCP(t, l.VNet, 80, 128)
		n := scaled(4000, 2)
		go func() {
			for {
				c, _, err := ln.Accept()
				if err != nil {
					return
				}
				c.Send([]byte("bye"), 0)
				c.Close()
			}
		}()
		m := begin(t, "TIME_WAIT flood", l.V)
		b := make([]byte, 16)
		for i := 0; i < n; i++ {
			c, err := dialTCP(l.CNet, victimIP.String(), 80, time.Minute)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			// Wait for the victim's FIN, so the victim is the side that
			// closes first and holds the TIME_WAIT.
			for {
				if n, err := c.Recv(b, 0); n == 0 || err != nil {
					break
				}
			}
			c.Close()
		}
		synctest.Wait()
		tw := 0
		states := map[tcp.State]int{}
		for _, c := range l.V.TCP.Table() {
			states[c.State]++
			if c.State == tcp.StateTimeWait {
				tw++
			}
		}
		t.Logf("victim's sockets by state: %v", states)
		ln.Close()
		synctest.Wait()
		m.end()
		per := m.grew() / int64(max(tw, 1))
		t.Logf("TIME_WAIT flood: %d connections, %d in TIME_WAIT, %d bytes of heap each", n, tw, per)
		if tw == 0 {
			t.Fatalf("no TIME_WAIT entries: the victim did not close first")
		}
		checkTimeWaitCap(t, tw, n, m)
		// A whole endpoint in TIME_WAIT cost 3.2 KiB of heap here; a
		// record costs about 350 bytes (more under the race detector).
		if per > 768 {
			t.Errorf("a TIME_WAIT entry costs %d bytes of heap: a whole endpoint, not a small record", per)
		}
		// All gone after 2*MSL.
		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		for _, c := range l.V.TCP.Table() {
			if c.State == tcp.StateTimeWait {
				t.Fatalf("TIME_WAIT entry %v left after 2 MSL", c.Remote)
			}
		}
	})
}

// TestOrphanFlood: peers connect with a zero window; the server writes a
// response and closes each connection, which leaves it orphaned (closed
// by the application, its data not yet sent). Orphans are capped
// (tcp_max_orphans): beyond the cap a closing connection is reset and
// counted (AbortOnMemory), the memory they hold is bounded by the cap, and
// the orphans that remain end after the orphan retries.
func TestOrphanFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxOrphans = 100
		l := newLab(t, stack.Options{TCP: tcp.Config{MaxOrphans: maxOrphans}})
		ln := listenTCP(t, l.VNet, 80, 512)
		n := scaled(400, 1)
		const resp = 16 << 10
		go func() {
			for {
				c, _, err := ln.Accept()
				if err != nil {
					return
				}
				c.SetBlocking(false)
				c.Send(make([]byte, resp), 0)
				c.Close()
			}
		}()
		m := begin(t, "orphan flood", l.V)
		l.A.record(true)
		for i := 0; i < n; i++ {
			dialRawFrom(t, l, uint16(20000+i), 80, 0)
			l.A.take() // the peers never answer again
		}
		synctest.Wait()
		orphans := l.V.TCP.Stats().Orphans
		st := map[tcp.State]int{}
		for _, c := range l.V.TCP.Table() {
			st[c.State]++
		}
		t.Logf("states %v", st)
		m.end()
		l.A.record(false)
		t.Logf("orphan flood: %d connections closed with %d bytes unsent to a zero window: %d orphans held (cap %d), %d reset",
			n, resp, orphans, maxOrphans, m.moved.get("TCP.AbortOnMemory"))
		if orphans > maxOrphans {
			t.Errorf("%d orphans, cap %d", orphans, maxOrphans)
		}
		if got := m.moved.get("TCP.AbortOnMemory"); got+orphans < uint64(n) {
			t.Errorf("%d closed connections, %d orphans, %d reset: not all accounted for", n, orphans, got)
		}
		if g, bound := m.grew(), int64(maxOrphans)*(resp+16<<10)+1<<20; g > bound {
			t.Errorf("heap grew by %d bytes with %d orphans (bound %d)", g, orphans, bound)
		}
		// The orphans' zero-window probes go unanswered: they end.
		time.Sleep(time.Hour)
		synctest.Wait()
		if o := l.V.TCP.Stats().Orphans; o != 0 {
			t.Errorf("%d orphans left after an hour of unanswered probes", o)
		}
		for _, c := range l.V.TCP.Table() {
			if c.State != tcp.StateListen {
				t.Fatalf("connection left after an hour: %+v", c)
			}
		}
	})
}

// TestReceiveMemoryExhaustion: many peers each fill their connection's
// receive window with data the server never reads. The total of TCP
// buffer memory is bounded (tcp_mem: pressure, then a hard limit beyond
// which data needing more memory is dropped and counted), and what the
// connections held is freed when they end.
func TestReceiveMemoryExhaustion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const memLimit = 2 << 20
		l := newLab(t, stack.Options{TCP: tcp.Config{MemPressure: memLimit / 2, MemLimit: memLimit}})
		ln := listenTCP(t, l.VNet, 80, 512)
		var held []*socket.Socket
		var mu sync.Mutex
		go func() {
			for {
				c, _, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c) // never read
				mu.Unlock()
			}
		}()
		conns := scaled(64, 1)
		const perConn = 96 << 10
		m := begin(t, "receive memory exhaustion", l.V)
		l.A.record(true)
		peers := make([]*rawPeer, conns)
		for i := range peers {
			peers[i] = dialRawFrom(t, l, uint16(20000+i), 80, 65535)
			l.A.take()
		}
		chunk := make([]byte, 1460)
		fs := make([][]byte, 0, 64)
		for i, p := range peers {
			for off := 0; off < perConn; off += len(chunk) {
				fs = append(fs, tcpFrame(p.local, p.remote, wire.TCPHeader{Seq: p.iss + 1 + uint32(off), Ack: p.irs + 1,
					Flags: wire.TCPFlagACK, Window: 65535}, chunk))
				if len(fs) == cap(fs) {
					l.A.send(fs...)
					fs = fs[:0]
				}
			}
			if i%8 == 7 {
				l.A.take()
			}
		}
		l.A.send(fs...)
		synctest.Wait()
		l.A.record(false)
		st := l.V.TCP.Stats()
		m.end()
		t.Logf("receive memory exhaustion: %d connections x %d bytes unread: TCP buffer memory %d (limit %d), %d segments dropped at the limit",
			conns, perConn, st.MemBytes, memLimit, m.moved.get("TCP.RcvMemDrops"))
		if st.MemBytes > memLimit+64<<10 {
			t.Errorf("TCP buffers hold %d bytes, limit %d", st.MemBytes, memLimit)
		}
		if m.moved.get("TCP.RcvMemDrops") == 0 {
			t.Errorf("%d bytes sent into a %d-byte limit and nothing dropped", conns*perConn, memLimit)
		}
		if g := m.grew(); g > 2*memLimit+1<<20 {
			t.Errorf("heap grew by %d bytes under a TCP memory limit of %d", g, memLimit)
		}
		// The peers reset their connections: the memory comes back.
		for _, p := range peers {
			l.A.send(tcpFrame(p.local, p.remote, wire.TCPHeader{Seq: p.iss + 1 + perConn, Flags: wire.TCPFlagRST}, nil))
		}
		synctest.Wait()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		synctest.Wait()
		if b := l.V.TCP.Stats().MemBytes; b != 0 {
			t.Errorf("TCP buffers hold %d bytes after every connection ended", b)
		}
	})
}

// TestTinyMSSAndSACKStorm: a peer announces an MSS of 1 byte and SACK,
// then answers the victim's data with a storm of ACKs that never advance
// but carry SACK blocks cut into small pieces, inside and outside what was
// sent (the shape of CVE-2019-11477/11478/11479). The victim's MSS stays
// at its floor (64 bytes; Linux's tcp_min_snd_mss is 48), its memory stays
// bounded, it sends far fewer segments than it receives ACKs, and the
// connection survives.
func TestTinyMSSAndSACKStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		ln := listenTCP(t, l.VNet, 80, 16)
		acc := make(chan *socket.Socket, 1)
		done := make(chan error, 1)
		go serveBulk(ln, -(256 << 10), acc, done)
		const wnd = 65535
		p := dialRawOpts(t, l, 40000, 80, wnd, wire.TCPOptions{HasMSS: true, MSS: 1, SACKPermitted: true})
		v := <-acc
		if v == nil {
			t.Fatal(<-done)
		}
		defer v.Close()
		synctest.Wait()
		info := tcpInfo(t, v)
		sndMax := p.irs + 1
		segs := 0
		for _, s := range p.segs() {
			if len(s.Payload()) > 0 {
				segs++
			}
			if e := s.Seq() + uint32(len(s.Payload())); seqAfter(e, sndMax) {
				sndMax = e
			}
		}
		t.Logf("tiny MSS: the victim sends %d-byte segments (%d sent, %d bytes in flight)", info.SndMSS, segs, sndMax-p.irs-1)
		if info.SndMSS < 48 {
			t.Errorf("MSS %d for a peer announcing 1: below Linux's floor of 48", info.SndMSS)
		}
		n := scaled(10_000, 2)
		m := begin(t, "SACK storm", l.V)
		una := p.irs + 1
		flight := sndMax - una
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			var o wire.TCPOptions
			o.NumSACK = 4
			for j := range o.SACK {
				// Small blocks spread over the flight, some beyond it.
				left := una + uint32((i*7919+j*104729)%int(flight+flight/4))
				o.SACK[j] = wire.SACKBlock{Left: left, Right: left + 1 + uint32(i+j)%8}
			}
			fs = append(fs, tcpFrame(p.local, p.remote, wire.TCPHeader{Seq: p.iss + 1, Ack: una, Flags: wire.TCPFlagACK, Window: wnd, Options: o}, nil))
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		answers := p.segs()
		retrans := m.moved.get("TCP.RetransSegs")
		t.Logf("SACK storm: %d ACKs with 4 SACK blocks each drew %d segments, %d retransmissions, for %d segments in flight",
			n, len(answers), retrans, segs)
		// No amplification: SACKs that never advance SND.UNA let the
		// victim repair what they claim is missing, not send a segment per
		// ACK (measured: about one per hundred ACKs).
		if len(answers) > n/10 {
			t.Errorf("%d ACKs drew %d segments (%d retransmissions)", n, len(answers), retrans)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes", g)
		}
		if s := tcpInfo(t, v).State; s != tcp.StateEstablished {
			t.Errorf("state %v after the SACK storm", s)
		}
	})
}
