package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

const fU = wire.TCPFlagURG

// TestUrgentReceive: the urgent byte (BSD pointer: the byte before
// seq+urg) is out of the stream; a read stops at the mark; recv MSG_OOB
// returns it once (EINVAL after, EAGAIN before it arrives); SIOCATMARK.
func TestUrgentReceive(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	var one [1]byte
	if _, _, err := c.RecvOOB(one[:], false); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("MSG_OOB without urgent data: %v", err)
	}
	// A pointer ahead of the data: announced, not there yet.
	s.inject(seg{flags: fA | fU, seq: 1001, ack: iss + 1, win: 65535, urg: 3})
	if _, _, err := c.RecvOOB(one[:], false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("MSG_OOB before the byte arrived: %v", err)
	}
	s.inject(seg{flags: fPA | fU, seq: 1001, ack: iss + 1, win: 65535, urg: 3, data: []byte("abcde")})
	if c.Readiness(waiter.EventPri) == 0 {
		t.Fatal("no EventPri with urgent data")
	}
	if m, _ := c.AtMark(); m {
		t.Fatal("at mark before reading")
	}
	b := make([]byte, 100)
	n, err := c.Read(b, false)
	if err != nil || string(b[:n]) != "ab" {
		t.Fatalf("read before the mark: %q %v", b[:n], err)
	}
	if m, _ := c.AtMark(); !m {
		t.Fatal("not at mark")
	}
	n, trunc, err := c.RecvOOB(one[:], true)
	if n != 1 || one[0] != 'c' || trunc || err != nil {
		t.Fatalf("MSG_OOB|MSG_PEEK: %d %q %v", n, one[:n], err)
	}
	if n, _, err := c.RecvOOB(one[:], false); n != 1 || one[0] != 'c' || err != nil {
		t.Fatalf("MSG_OOB: %d %v", n, err)
	}
	if _, _, err := c.RecvOOB(one[:], false); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("MSG_OOB twice: %v", err)
	}
	if c.Readiness(waiter.EventPri) != 0 {
		t.Fatal("EventPri after reading the urgent byte")
	}
	n, err = c.Read(b, false)
	if err != nil || string(b[:n]) != "de" {
		t.Fatalf("read after the mark: %q %v", b[:n], err)
	}
	if m, _ := c.AtMark(); m {
		t.Fatal("at mark after it")
	}
	// The mark at the head of the unread data: the urgent byte is
	// skipped by a read even if MSG_OOB never took it; alone it is not
	// readable.
	s.inject(seg{flags: fPA | fU, seq: 1006, ack: iss + 1, win: 65535, urg: 1, data: []byte("X")})
	if c.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with only the urgent byte")
	}
	if _, err := c.Read(b, false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("read of only the urgent byte: %v", err)
	}
	s.inject(seg{flags: fPA, seq: 1007, ack: iss + 1, win: 65535, data: []byte("yz")})
	if n, err := c.Read(b, false); string(b[:n]) != "yz" || err != nil {
		t.Fatalf("read: %q %v", b[:n], err)
	}
}

// TestUrgentInline: with SO_OOBINLINE the byte stays in the stream, a
// read still stops at the mark, and MSG_OOB is EINVAL.
func TestUrgentInline(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetOOBInline(true)
	s.inject(seg{flags: fPA | fU, seq: 1001, ack: iss + 1, win: 65535, urg: 3, data: []byte("abcde")})
	b := make([]byte, 100)
	n, _ := c.Read(b, false)
	if string(b[:n]) != "ab" {
		t.Fatalf("read %q", b[:n])
	}
	if m, _ := c.AtMark(); !m {
		t.Fatal("not at mark")
	}
	var one [1]byte
	if _, _, err := c.RecvOOB(one[:], false); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("MSG_OOB inline: %v", err)
	}
	n, _ = c.Read(b, false)
	if string(b[:n]) != "cde" {
		t.Fatalf("read %q", b[:n])
	}
}

// TestUrgentSend: send with MSG_OOB sets URG and points after the last
// byte written, bypassing Nagle; the mode ends when that is acknowledged.
func TestUrgentSend(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Write([]byte("a"))
	s.expectOne("data")
	// One small segment in flight: Nagle would hold the next.
	if n, err := c.WriteOOB([]byte("xyz")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	o := s.expectOne("urgent data")
	if o.h.Flags&fU == 0 || o.h.Seq != iss+2 || o.h.Urgent != 3 || string(o.payload) != "xyz" {
		t.Fatalf("urgent segment %v urg=%d", o, o.h.Urgent)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 5, win: 65535})
	c.Write([]byte("q"))
	o = s.expectOne("after the urgent byte was acknowledged")
	if o.h.Flags&fU != 0 {
		t.Fatalf("URG after urgent mode ended: %v", o)
	}
	s.clk.Advance(time.Second)
}
