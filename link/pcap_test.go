package link

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// udpFrame builds a valid Ethernet/IPv4/UDP frame so tshark can dissect it.
func udpFrame(dst, src wire.MAC, payload string) []byte {
	b := make([]byte, 14+20+8+len(payload))
	wire.PutEthernet(b, dst, src, wire.EtherTypeIPv4)
	ip := b[14:]
	h := wire.IPv4Header{TotalLen: len(ip), TTL: 64, Protocol: wire.ProtoUDP,
		Src: mustAddr("10.0.0.1"), Dst: mustAddr("10.0.0.2")}
	h.Put(ip)
	u := ip[20:]
	u[0], u[1], u[2], u[3] = 0x30, 0x39, 0x00, 0x07 // 12345 -> 7
	u[4], u[5] = 0, byte(8+len(payload))
	copy(u[8:], payload)
	return b
}

func TestPcapRecordsBothDirections(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	clk := clock.NewManual(start)
	var buf bytes.Buffer
	pa, err := NewPcap(a, &buf, PcapOptions{Clock: clk, Nanosecond: true})
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := newCollector(), newCollector()
	pa.Attach(ca)
	b.Attach(cb)

	out := udpFrame(macB, macA, "hello")
	pa.WriteFrames([][]byte{out})
	cb.wait(t, 1)
	clk.Advance(1500 * time.Microsecond)
	in := udpFrame(macA, macB, "world!")
	b.WriteFrames([][]byte{in})
	ca.wait(t, 1)
	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if pa.Writer().Frames.Load() != 2 || pa.Writer().WriteErrors.Load() != 0 {
		t.Fatalf("frames %d errors %d", pa.Writer().Frames.Load(), pa.Writer().WriteErrors.Load())
	}

	r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != DefaultSnaplen {
		t.Fatalf("link type %v snaplen %d", r.LinkType(), r.Snaplen())
	}
	for i, want := range [][]byte{out, in} {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) || ci.Length != len(want) {
			t.Fatalf("record %d differs", i)
		}
		wantTS := start.Add(time.Duration(i) * 1500 * time.Microsecond)
		if !ci.Timestamp.Equal(wantTS) {
			t.Fatalf("record %d at %v, want %v", i, ci.Timestamp, wantTS)
		}
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Fatal("extra record")
	}
	checkTshark(t, buf.Bytes(), 2, "udp")
}

func TestPcapRawAndSnaplen(t *testing.T) {
	a, b := NewIPPipe(1500)
	defer b.Close()
	var buf bytes.Buffer
	p, err := NewPcap(a, &buf, PcapOptions{Snaplen: 24, Clock: clock.NewManual(time.Unix(1e9, 999999999))})
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpFrame(macA, macB, "0123456789abcdef")[14:]
	p.WriteFrames([][]byte{pkt})
	p.Close()
	r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw && uint32(r.LinkType()) != LinkTypeRaw {
		t.Fatalf("link type %d", r.LinkType())
	}
	data, ci, err := r.ReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 24 || ci.CaptureLength != 24 || ci.Length != len(pkt) || !bytes.Equal(data, pkt[:24]) {
		t.Fatalf("cut record: %d/%d bytes", ci.CaptureLength, ci.Length)
	}
	// Microsecond file: nanoseconds are cut, not rounded.
	if !ci.Timestamp.Equal(time.Unix(1e9, 999999000)) {
		t.Fatalf("timestamp %v", ci.Timestamp)
	}
	checkTshark(t, buf.Bytes(), 1, "ip")
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestPcapWriteErrorsCounted(t *testing.T) {
	w, err := NewPcapWriter(&failWriter{n: 1}, LinkTypeEthernet, PcapOptions{Unbuffered: true})
	if err != nil {
		t.Fatal(err)
	}
	f := frame(macA, macB, 1, 64)
	for range 3 {
		if err := w.WriteFrame(time.Now(), f); err == nil {
			t.Fatal("no error from a failing writer")
		}
	}
	if w.WriteErrors.Load() != 3 || w.Frames.Load() != 0 {
		t.Fatalf("errors %d frames %d", w.WriteErrors.Load(), w.Frames.Load())
	}
	if _, err := NewPcapWriter(&failWriter{}, LinkTypeEthernet, PcapOptions{}); err == nil {
		t.Fatal("header write error not reported")
	}
}

func TestPcapWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewPcapWriter(&buf, LinkTypeEthernet, PcapOptions{})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			for i := range 250 {
				w.WriteFrame(time.Now(), frame(macA, macB, uint32(g*1000+i), 60+i))
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	w.Flush()
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(data) != ci.Length || len(data) < 60 {
			t.Fatal("torn record")
		}
		n++
	}
	if n != 1000 {
		t.Fatalf("read %d records", n)
	}
}

// checkTshark has tshark read the file, when tshark is installed.
func checkTshark(t *testing.T, file []byte, records int, proto string) {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark check")
		return
	}
	name := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(name, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "-r", name, "-T", "fields", "-e", "frame.protocols").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != records {
		t.Fatalf("tshark read %d records, want %d: %q", len(lines), records, out)
	}
	for _, l := range lines {
		if !strings.Contains(l, proto) {
			t.Fatalf("tshark dissected %q, want %s", l, proto)
		}
	}
}

func TestSnifferSeesBothDirections(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	type ev struct {
		dir Direction
		seq uint32
	}
	evs := make(chan ev, 10)
	s := NewSniffer(a, func(d Direction, f []byte) { evs <- ev{d, seqOf(f)} })
	defer s.Close()
	defer b.Close()
	ca, cb := newCollector(), newCollector()
	s.Attach(ca)
	b.Attach(cb)
	s.WriteFrames([][]byte{frame(macB, macA, 1, 64)})
	cb.wait(t, 1)
	b.WriteFrames([][]byte{frame(macA, macB, 2, 64)})
	ca.wait(t, 1)
	if e := <-evs; e != (ev{Out, 1}) {
		t.Fatalf("first event %+v", e)
	}
	if e := <-evs; e != (ev{In, 2}) {
		t.Fatalf("second event %+v", e)
	}
	if In.String() != "in" || Out.String() != "out" {
		t.Fatal("Direction strings")
	}
	if s.MTU() != 1500 || s.HardwareAddr() != macA || s.Stats() != a.Stats() {
		t.Fatal("sniffer does not pass attributes through")
	}
}
