package link

import (
	"testing"
	"testing/synctest"

	"github.com/sockstack/sockstack/wire"
)

// ipFrame is an Ethernet frame with an IPv4 header whose ECN field is
// ecn, with a valid header checksum.
func ipFrame(ecn uint8) []byte {
	b := make([]byte, wire.EthernetHeaderLen+40)
	wire.PutEthernet(b, macB, macA, 0x0800)
	ip := b[wire.EthernetHeaderLen:]
	ip[0], ip[1] = 0x45, 0xb8|ecn // DSCP EF, so marking must keep it
	ip[3] = 40
	ip[8], ip[9] = 64, 6
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	c := wire.Checksum(ip[:20])
	ip[10], ip[11] = byte(c>>8), byte(c)
	return b
}

// TestImpairMarkCE: MarkCE marks ECT(0) and ECT(1) packets CE, keeps the
// DSCP and a valid header checksum, and leaves not-ECT packets and
// non-IP frames alone.
func TestImpairMarkCE(t *testing.T) {
	rec := &recorder{}
	m := NewImpair(rec, ImpairConfig{MarkCE: 1, Apply: ImpairEgress})
	in := [][]byte{ipFrame(2), ipFrame(1), ipFrame(0), frame(macB, macA, 1, 100)}
	m.WriteFrames(in)
	if len(rec.frames) != 4 {
		t.Fatalf("%d frames out", len(rec.frames))
	}
	for i, want := range []uint8{0xbb, 0xbb, 0xb8} {
		ip := rec.frames[i][wire.EthernetHeaderLen:]
		if ip[1] != want || wire.Checksum(ip[:20]) != 0 {
			t.Fatalf("frame %d: TOS %#x (want %#x), checksum ok %v", i, ip[1], want, wire.Checksum(ip[:20]) == 0)
		}
	}
	if in[0][wire.EthernetHeaderLen+1] != 0xba {
		t.Fatal("the caller's frame was changed in place")
	}
	if got := m.Egress.CEMarked.Load(); got != 2 {
		t.Fatalf("CEMarked %d, want 2", got)
	}
}

// TestImpairCEQueue: with a rate limit, ECN-capable packets that find
// CEQueue frames waiting are marked; the first ones are not.
func TestImpairCEQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(macA, macB, 1500)
		m := NewImpair(a, ImpairConfig{Rate: 1e6, CEQueue: 3, Apply: ImpairEgress})
		cb := newCollector()
		m.Attach(newCollector())
		b.Attach(cb)
		batch := make([][]byte, 6)
		for i := range batch {
			batch[i] = ipFrame(2)
		}
		m.WriteFrames(batch)
		cb.wait(t, 6)
		for i, f := range cb.got() {
			ce := f[wire.EthernetHeaderLen+1]&3 == 3
			if ce != (i >= 3) {
				t.Fatalf("frame %d CE %v", i, ce)
			}
		}
		m.Close()
		b.Close()
	})
}
