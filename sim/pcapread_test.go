package sim

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// pcapFile builds a little-endian microsecond pcap with one record per frame.
func pcapFile(linkType uint32, frames ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	b.Write(h)
	for i, f := range frames {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r[0:], 1000)
		binary.LittleEndian.PutUint32(r[4:], uint32(i)*1000)
		binary.LittleEndian.PutUint32(r[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(f)))
		b.Write(r)
		b.Write(f)
	}
	return b.Bytes()
}

// ipv4TCP is a minimal IPv4 TCP segment 10.1.1.1:1000 -> 10.1.1.2:80
// with n bytes of payload.
func ipv4TCP(seq uint32, n int) []byte {
	p := make([]byte, 40+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, 6
	copy(p[12:], []byte{10, 1, 1, 1, 10, 1, 1, 2})
	binary.BigEndian.PutUint16(p[20:], 1000)
	binary.BigEndian.PutUint16(p[22:], 80)
	binary.BigEndian.PutUint32(p[24:], seq)
	p[32] = 5 << 4
	p[33] = 0x18 // PSH ACK
	return p
}

// Captures from tcpdump come as Ethernet, raw IP or Linux cooked (v1 on
// older tcpdump -i any, v2 on newer): each reads back as an Ethernet
// frame with the IPv4 packet, and the connection is found in each.
func TestReadPcapLinkTypes(t *testing.T) {
	ip1, ip2 := ipv4TCP(100, 1000), ipv4TCP(1100, 500)
	eth := func(ip []byte) []byte { return append([]byte{12: 8, 13: 0}, ip...) }
	sll := func(ip []byte) []byte { h := make([]byte, 16); h[14], h[15] = 8, 0; return append(h, ip...) }
	sll2 := func(ip []byte) []byte { h := make([]byte, 20); h[0], h[1] = 8, 0; return append(h, ip...) }
	raw := func(ip []byte) []byte { return ip }
	for _, c := range []struct {
		name string
		lt   uint32
		wrap func([]byte) []byte
	}{{"ethernet", 1, eth}, {"raw", 101, raw}, {"sll", 113, sll}, {"sll2", 276, sll2}} {
		recs, err := ReadPcap(bytes.NewReader(pcapFile(c.lt, c.wrap(ip1), c.wrap(ip2), []byte{1, 2})), 0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(recs) < 2 || !bytes.Equal(recs[0].Data, eth(ip1)) || !bytes.Equal(recs[1].Data, eth(ip2)) {
			t.Fatalf("%s: records %d, first %x", c.name, len(recs), recs[0].Data[:20])
		}
		cs := Connections(recs)
		if len(cs) != 1 || cs[0].Bytes != 1500 || cs[0].Dst.Port() != 80 {
			t.Errorf("%s: connections %v", c.name, cs)
		}
	}
	if _, err := ReadPcap(bytes.NewReader(pcapFile(9)), 0); err == nil || !strings.Contains(err.Error(), "link type 9") {
		t.Errorf("PPP capture: %v", err)
	}
}

// A capture with a snap length (tcpdump -s 96) keeps only the headers:
// the payload length comes from the IP header, not the captured bytes.
func TestSnapLengthCapture(t *testing.T) {
	eth := func(ip []byte) []byte { return append([]byte{12: 8, 13: 0}, ip...)[:14+40+10] }
	recs, err := ReadPcap(bytes.NewReader(pcapFile(1, eth(ipv4TCP(100, 1000)), eth(ipv4TCP(1100, 1000)))), 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := Connections(recs)
	if len(cs) != 1 || cs[0].Bytes != 2000 {
		t.Fatalf("connections %v, want 2000 bytes", cs)
	}
	ct := TraceConn(recs, cs[0].Src, cs[0].Dst)
	if len(ct.Segs) != 2 || ct.Segs[1].End-ct.Segs[1].Seq != 1000 {
		t.Errorf("segments %+v", ct.Segs)
	}
}

// A retransmission does not count its bytes twice (Linux's loopback
// resent a segment under load and the listing showed more bytes than
// were sent), and the count goes on across a sequence-number wrap.
func TestConnectionsCountRetransmissionsOnce(t *testing.T) {
	eth := func(ip []byte) []byte { return append([]byte{12: 8, 13: 0}, ip...) }
	var isn uint32 = 0xFFFFFE00
	recs, err := ReadPcap(bytes.NewReader(pcapFile(1,
		eth(ipv4TCP(isn, 1000)), eth(ipv4TCP(isn+1000, 1000)), eth(ipv4TCP(isn, 1000)), eth(ipv4TCP(isn+2000, 500)))), 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := Connections(recs)
	if len(cs) != 1 || cs[0].Bytes != 2500 || cs[0].Segments != 4 || cs[0].Retrans != 1 {
		t.Fatalf("connections %v, want 2500 bytes in 4 segments, 1 retransmitted", cs)
	}
	if s := cs[0].String(); !strings.Contains(s, " 2500 bytes in 4 segments (1 retransmitted)") {
		t.Errorf("listing %q", s)
	}
}
