package tcp

import (
	"testing"
	"time"
)

// TestQuickAckFirstSegments: a new connection acknowledges its first
// segments of data at once, as many as the window over two segments, at
// most 16 (Linux's tcp_incr_quickack); the next waits for the
// delayed-ACK timer.
func TestQuickAckFirstSegments(t *testing.T) {
	s := newScript(t, Config{})
	_, _, iss := s.passiveOpen(noOpts)
	seq := uint32(1001)
	for i := 0; i < maxQuickAcks; i++ {
		s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 10)})
		seq += 10
		check(t, "quickack", s.expectOne("ACK at once"), fA, iss+1, seq, 0)
	}
	s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	seq += 10
	s.expectNone("past quickack's count")
	a, el := s.waitOne(time.Second)
	check(t, "delayed ACK", a, fA, iss+1, seq, 0)
	if !near(el, 40*time.Millisecond) {
		t.Fatalf("delayed ACK after %v", el)
	}
}

// TestQuickAckSmallWindow: a 4096-byte window gives three quick ACKs to
// 100-byte segments (4096 / (2 x 536): Linux's receive MSS starts at
// 536).
func TestQuickAckSmallWindow(t *testing.T) {
	s := newScript(t, Config{RecvBuf: 4096})
	_, _, iss := s.passiveOpen(noOpts)
	seq := uint32(1001)
	for i := 0; i < 3; i++ {
		s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 100)})
		seq += 100
		check(t, "quickack", s.expectOne("ACK at once"), fA, iss+1, seq, 0)
	}
	s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("past quickack's count")
}

// TestQuickAckBatch: in quickack mode the segments of one link batch
// are acknowledged once, at the batch's end, and use one quick ACK.
func TestQuickAckBatch(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	b := s.p.NewBatch()
	seq := uint32(1001)
	for i := 0; i < 5; i++ {
		s.injectBatch(b, seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 10)})
		seq += 10
	}
	s.expectNone("within the batch")
	b.Flush()
	check(t, "end of batch", s.expectOne("one ACK"), fA, iss+1, seq, 0)
	for i := 1; i < maxQuickAcks; i++ {
		s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 10)})
		seq += 10
		check(t, "quickack", s.expectOne("ACK at once"), fA, iss+1, seq, 0)
	}
	s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	s.expectNone("past quickack's count")
	if got := len(readAll(c)); got != 5*10+maxQuickAcks*10 {
		t.Fatalf("read %d", got)
	}
}

// TestPingpongModes: a reply later than the ACK timeout does not enter
// pingpong mode; one within it does, and the next reply carries the
// ACK; a request left unanswered until the delayed ACK's timer fires
// leaves pingpong mode, and the next request is acknowledged at once
// again (quickack's count is not used up).
func TestPingpongModes(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	seq, snd := uint32(1001), iss+1
	request := func() {
		t.Helper()
		s.inject(seg{flags: fPA, seq: seq, ack: snd, win: 65535, data: []byte{'q'}})
		seq++
	}
	reply := func() {
		t.Helper()
		if n := len(readAll(c)); n != 1 {
			t.Fatalf("read %d", n)
		}
		c.Write([]byte{'r'})
		check(t, "reply", s.expectOne("reply"), fPA, snd, seq, 1)
		snd++
		s.inject(seg{flags: fA, seq: seq, ack: snd, win: 65535})
	}
	request()
	check(t, "first request", s.expectOne("ACK at once"), fA, snd, seq, 0)
	s.clk.Advance(50 * time.Millisecond)
	reply()
	if !c.QuickAck() {
		t.Fatal("a reply 50 ms after the request entered pingpong mode")
	}
	request()
	check(t, "second request", s.expectOne("ACK at once"), fA, snd, seq, 0)
	s.clk.Advance(5 * time.Millisecond)
	reply()
	if c.QuickAck() {
		t.Fatal("a reply 5 ms after the request did not enter pingpong mode")
	}
	request()
	s.expectNone("pingpong: the reply carries the ACK")
	s.clk.Advance(5 * time.Millisecond)
	reply()
	// Unanswered: the timer's ACK, then out of pingpong mode.
	request()
	s.expectNone("pingpong")
	a, el := s.waitOne(time.Second)
	check(t, "delayed ACK", a, fA, snd, seq, 0)
	if !near(el, 40*time.Millisecond) {
		t.Fatalf("delayed ACK after %v", el)
	}
	if !c.QuickAck() {
		t.Fatal("still in pingpong mode after the delayed ACK's timer")
	}
	readAll(c)
	s.clk.Advance(10 * time.Millisecond)
	request()
	check(t, "after the timer", s.expectOne("ACK at once"), fA, snd, seq, 0)
}

// TestAckTimeoutGrows: outside pingpong mode the delayed ACK's timer
// doubles the ACK timeout (tcp_delack_timer_handler), so a reply 60 ms
// after a request, later than 40 ms, is still taken for a reply.
func TestAckTimeoutGrows(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte{'q'}})
	s.expectNone("delayed")
	s.clk.Advance(60 * time.Millisecond)
	check(t, "delayed ACK", s.expectOne("the timer's ACK"), fA, iss+1, 1002, 0)
	readAll(c)
	c.Write([]byte{'r'})
	s.expectOne("reply")
	if c.QuickAck() {
		t.Fatal("a reply within the grown ACK timeout did not enter pingpong mode")
	}
}

// TestAckOnRead: outside pingpong mode, the read that empties the
// receive queue sends the ACK a short segment owes (tcp_cleanup_rbuf
// with ICSK_ACK_PUSHED); in pingpong mode it waits for a reply or the
// timer, unless two short segments are owed (ICSK_ACK_PUSHED2).
func TestAckOnRead(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("delayed")
	readAll(c)
	check(t, "read", s.expectOne("ACK at the read"), fA, iss+1, 1101, 0)

	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1101, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	readAll(c)
	s.expectNone("pingpong: one short segment read")
	s.inject(seg{flags: fPA, seq: 1201, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("pingpong: two short segments")
	readAll(c)
	check(t, "read", s.expectOne("ACK at the read of two short segments"), fA, iss+1, 1301, 0)
}

// TestQuickAckAfterDuplicate: data received again means our ACK was
// lost: the duplicate is acknowledged at once, and the connection
// enters quickack mode again, out of pingpong mode (Linux's
// tcp_data_queue and tcp_send_dupack).
func TestQuickAckAfterDuplicate(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("pingpong")
	s.clk.Advance(40 * time.Millisecond)
	check(t, "delayed", s.expectOne("the timer's ACK"), fA, iss+1, 1101, 0)
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	check(t, "duplicate", s.expectOne("ACK at once"), fA, iss+1, 1101, 0)
	if !c.QuickAck() {
		t.Fatal("still in pingpong mode after a duplicate")
	}
	s.inject(seg{flags: fPA, seq: 1101, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	check(t, "after the duplicate", s.expectOne("ACK at once"), fA, iss+1, 1201, 0)
}

// TestDelayedAckDueSoon: data arriving when the delayed ACK's timer is
// due within a quarter of the ACK timeout is acknowledged at once
// (Linux's tcp_send_delayed_ack); earlier, it waits for the timer.
func TestDelayedAckDueSoon(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	spendQuickAcks(c)
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	s.clk.Advance(25 * time.Millisecond)
	s.inject(seg{flags: fPA, seq: 1011, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	s.expectNone("15 ms before the timer")
	s.clk.Advance(6 * time.Millisecond)
	s.inject(seg{flags: fPA, seq: 1021, ack: iss + 1, win: 65535, data: make([]byte, 10)})
	check(t, "9 ms before the timer", s.expectOne("ACK at once"), fA, iss+1, 1031, 0)
}
