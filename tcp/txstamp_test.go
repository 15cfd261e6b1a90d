package tcp

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// txStampScript is an accepted endpoint whose peer (MSS 1000, no
// timestamps) is scripted, with a transmit timestamp source of flags fl.
func txStampScript(t *testing.T) (*script, *Endpoint, uint32, *atomic.Uint32) {
	t.Helper()
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(wire.TCPOptions{HasMSS: true, MSS: 1000})
	var fl atomic.Uint32
	c.SetTxStampSource(func() TxStampFlags { return TxStampFlags(fl.Load()) })
	return s, c, iss, &fl
}

type txReport struct {
	info, data uint32
}

// txReports reads every queued report.
func txReports(t *testing.T, e *Endpoint) []txReport {
	t.Helper()
	var r []txReport
	for {
		_, _, m, err := e.ReadErr(nil)
		if err != nil {
			return r
		}
		if m.Origin != originTimestamping || m.At == 0 {
			t.Fatalf("entry %+v is not a timestamp report", m)
		}
		r = append(r, txReport{m.Info, m.Data})
	}
}

func wantReports(t *testing.T, what string, e *Endpoint, want ...txReport) {
	t.Helper()
	got := txReports(t, e)
	if len(got) != len(want) {
		t.Fatalf("%s: reports %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: reports %v, want %v", what, got, want)
		}
	}
}

// TestTxStampSplit: a send cut into several segments gets one SND report
// (its last byte's) and one ACK report, when all of it is acknowledged.
func TestTxStampSplit(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	fl.Store(uint32(TxStampSnd | TxStampAck | TxStampID))
	c.SetTxStampIDBase()
	if n, err := c.Write(make([]byte, 2500)); n != 2500 || err != nil {
		t.Fatal(n, err)
	}
	if o := s.out(); len(o) != 3 {
		t.Fatalf("sent %v, want 3 segments", o)
	}
	wantReports(t, "sent", c, txReport{tstampSnd, 2499})
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 2000, win: 65535})
	wantReports(t, "part acknowledged", c)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 2500, win: 65535})
	wantReports(t, "all acknowledged", c, txReport{tstampAck, 2499})
}

// TestTxStampCoalesced: sends that Nagle holds and then sends in one
// segment get a report each, in order.
func TestTxStampCoalesced(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	fl.Store(uint32(TxStampSched | TxStampSnd | TxStampAck | TxStampID))
	c.SetTxStampIDBase()
	for i := 0; i < 3; i++ {
		if _, err := c.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if o := s.out(); len(o) != 1 || len(o[0].payload) != 100 {
		t.Fatalf("sent %v, want the first send alone (Nagle)", o)
	}
	wantReports(t, "first send", c, txReport{tstampSched, 99}, txReport{tstampSnd, 99})
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 100, win: 65535})
	if o := s.out(); len(o) != 1 || len(o[0].payload) != 200 {
		t.Fatalf("sent %v, want the two held sends in one segment", o)
	}
	wantReports(t, "held sends", c, txReport{tstampAck, 99},
		txReport{tstampSched, 199}, txReport{tstampSnd, 199},
		txReport{tstampSched, 299}, txReport{tstampSnd, 299})
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 300, win: 65535})
	wantReports(t, "acknowledged", c, txReport{tstampAck, 199}, txReport{tstampAck, 299})
}

// TestTxStampRetransmission: a retransmission reports nothing; the ACK
// report comes once.
func TestTxStampRetransmission(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	fl.Store(uint32(TxStampSnd | TxStampAck))
	if _, err := c.Write(make([]byte, 500)); err != nil {
		t.Fatal(err)
	}
	s.out()
	wantReports(t, "sent", c, txReport{tstampSnd, 0})
	if o, _ := s.waitOne(5 * time.Second); len(o.payload) != 500 || o.h.Seq != iss+1 {
		t.Fatalf("retransmission %v", o)
	}
	wantReports(t, "retransmitted", c)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 500, win: 65535})
	wantReports(t, "acknowledged", c, txReport{tstampAck, 0})
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 500, win: 65535})
	wantReports(t, "duplicate ACK", c)
}

// TestTxStampKeys: OPT_ID counts bytes from SND.UNA when it was set,
// OPT_ID_TCP from the write sequence; without OPT_ID ee_data is 0. A
// send that asks for nothing is not marked. The key is made when the
// report is, with the socket's flags then (__skb_complete_tx_timestamp).
func TestTxStampKeys(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	c.SetNoDelay(true)
	if _, err := c.Write(make([]byte, 10)); err != nil { // unacknowledged
		t.Fatal(err)
	}
	c.SetTxStampIDBase() // SND.UNA iss+1, write sequence iss+11
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 10, win: 65535})
	s.out()
	fl.Store(uint32(TxStampSnd | TxStampID))
	c.Write(make([]byte, 5))
	fl.Store(uint32(TxStampSnd | TxStampID | TxStampIDTCP))
	c.Write(make([]byte, 5))
	fl.Store(uint32(TxStampSnd))
	c.Write(make([]byte, 5))
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 15, win: 65535})
	wantReports(t, "keys", c, txReport{tstampSnd, 14}, txReport{tstampSnd, 9}, txReport{tstampSnd, 0})
}

// TestTxStampOverride: a send's flags replace the socket's, the OPT_ID
// bits excepted, until cleared.
func TestTxStampOverride(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	c.SetNoDelay(true)
	fl.Store(uint32(TxStampSched | TxStampID))
	c.SetTxStampIDBase()
	c.SetTxStampOverride(TxStampSnd)
	c.Write(make([]byte, 4))
	c.ClearTxStampOverride()
	c.SetTxStampOverride(0)
	c.Write(make([]byte, 4))
	c.ClearTxStampOverride()
	c.Write(make([]byte, 4))
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 12, win: 65535})
	wantReports(t, "reports", c, txReport{tstampSnd, 3}, txReport{tstampSched, 11})
}

// TestTxStampRcvBuf: reports that would fill SO_RCVBUF are dropped and
// counted; reading makes room again; the pending error stays unset.
func TestTxStampRcvBuf(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	c.SetNoDelay(true)
	fl.Store(uint32(TxStampSnd))
	dropsBefore := TxStampDropsTotal()
	n := 0
	for c.TxStampDrops() == 0 && n < 10000 {
		c.Write([]byte{1})
		n++
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + uint32(n), win: 65535})
	}
	q := c.ErrQueueLen()
	if c.TxStampDrops() != 1 || TxStampDropsTotal()-dropsBefore < 1 || q == 0 || q*txStampReportCharge >= c.RecvBuf() {
		t.Fatalf("%d sends: %d queued, %d dropped, buffer %d", n, q, c.TxStampDrops(), c.RecvBuf())
	}
	if c.SoError() != nil {
		t.Fatalf("pending error %v", c.SoError())
	}
	if got := len(txReports(t, c)); got != q {
		t.Fatalf("read %d of %d", got, q)
	}
	c.Write([]byte{1})
	if c.ErrQueueLen() != 1 {
		t.Fatal("no room after the reads")
	}
}

// TestTxStampLooped: without OPT_TSONLY a SCHED or SND report loops the
// frame of the segment that carried the byte (Ethernet, IP and TCP
// headers and the data), an ACK report that segment's data, less what
// an earlier ACK took off its front; with OPT_TSONLY neither has one.
func TestTxStampLooped(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	c.SetNoDelay(true)
	fl.Store(uint32(TxStampSnd | TxStampAck))
	c.Write([]byte("0123456789"))
	s.out()
	buf := make([]byte, 256)
	n, full, m, err := c.ReadErr(buf)
	const hdrs = wire.EthernetHeaderLen + wire.IPv4MinHeaderLen + wire.TCPMinHeaderLen
	if err != nil || m.Info != tstampSnd || full != hdrs+10 || string(buf[n-10:n]) != "0123456789" {
		t.Fatalf("SND report: %d of %d bytes %q, %+v, %v", n, full, buf[:n], m, err)
	}
	if buf[12] != 0x08 || buf[13] != 0 || buf[14]>>4 != 4 {
		t.Fatalf("not an IPv4 frame: % x", buf[:16])
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 4, win: 65535})
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 10, win: 65535})
	n, _, m, err = c.ReadErr(buf)
	if err != nil || m.Info != tstampAck || string(buf[:n]) != "456789" {
		t.Fatalf("ACK report: %q, %+v, %v", buf[:n], m, err)
	}
	fl.Store(uint32(TxStampSnd | TxStampAck | TxStampTSOnly))
	c.Write([]byte("abc"))
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 13, win: 65535})
	for _, want := range []uint32{tstampSnd, tstampAck} {
		if _, full, m, err := c.ReadErr(buf); err != nil || m.Info != want || full != 0 {
			t.Fatalf("OPT_TSONLY report %d: %d bytes, %+v, %v", want, full, m, err)
		}
	}
}

// TestTxStampOffender: an IPv4 report with the packet names the sender
// only under OPT_CMSG; an ACK report or one without the packet never.
func TestTxStampOffender(t *testing.T) {
	s, c, iss, fl := txStampScript(t)
	c.SetNoDelay(true)
	for i, f := range []TxStampFlags{0, TxStampCmsg, TxStampCmsg | TxStampTSOnly} {
		fl.Store(uint32(TxStampSnd | TxStampAck | f))
		c.Write([]byte("x"))
		s.inject(seg{flags: fA, seq: 1001, ack: iss + 2 + uint32(i), win: 65535})
		want := f == TxStampCmsg
		for _, info := range []uint32{tstampSnd, tstampAck} {
			_, _, m, err := c.ReadErr(nil)
			if err != nil || m.Info != info || m.Offender.IsValid() != (want && info == tstampSnd) {
				t.Fatalf("flags %#x, report %d: %+v, %v", f, info, m, err)
			}
			if m.Offender.IsValid() && m.Offender != localIP {
				t.Fatalf("offender %v, want %v", m.Offender, localIP)
			}
		}
	}
}

// TestTxStampDeferred: a segment queued for a flusher reports SCHED
// when it is queued and SND only once the flusher has handed it to the
// host, with the endpoint unlocked; one the host refuses reports no SND,
// and its retransmission none either.
func TestTxStampDeferred(t *testing.T) {
	n := deferPair(t, 3, Config{})
	c, s := n.connect(t)
	c.SetNoDelay(true)
	var fl atomic.Uint32
	fl.Store(uint32(TxStampSched | TxStampSnd | TxStampID))
	c.SetTxStampSource(func() TxStampFlags { return TxStampFlags(fl.Load()) })
	c.SetTxStampIDBase()
	var atOutput []txReport
	outputs, refuse := 0, false
	n.ha.fail = func(seg *Segment) error {
		if len(seg.Payload[0])+len(seg.Payload[1]) == 0 {
			return nil
		}
		outputs++
		if !c.mu.m.TryLock() {
			t.Fatal("a queued segment was handed to the host with its endpoint locked")
		}
		atOutput = atOutput[:0]
		if c.errq != nil {
			for _, it := range c.errq.items {
				atOutput = append(atOutput, txReport{it.m.Info, it.m.Data})
			}
		}
		c.mu.m.Unlock()
		if refuse {
			return syscall.ENETUNREACH
		}
		return nil
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if outputs != 1 || len(atOutput) != 1 || atOutput[0] != (txReport{tstampSched, 4}) {
		t.Fatalf("%d outputs; reports when the host took the segment: %v, want only SCHED", outputs, atOutput)
	}
	if n.a.Stats().DeferredSegs == 0 {
		t.Fatal("the segment was not queued for a flusher")
	}
	wantReports(t, "after the flush", c, txReport{tstampSched, 4}, txReport{tstampSnd, 4})

	refuse = true
	if _, err := c.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	refuse = false
	wantReports(t, "a refused segment", c, txReport{tstampSched, 9})
	k := newSink()
	if !n.run(time.Minute, func() bool {
		if err := k.drain(s); err != nil {
			t.Fatal(err)
		}
		return k.n == 10
	}) {
		t.Fatalf("%d of 10 bytes arrived", k.n)
	}
	wantReports(t, "after the retransmission", c)
}
