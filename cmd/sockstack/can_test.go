package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

func TestParseCANFrameSyntax(t *testing.T) {
	for _, c := range []struct {
		in   string
		id   uint32
		n    int
		fl   uint8
		data []byte
	}{
		{"123#DEADBEEF", 0x123, 4, 0, []byte{0xde, 0xad, 0xbe, 0xef}},
		{"5A1#11.22.33", 0x5A1, 3, 0, []byte{0x11, 0x22, 0x33}},
		{"1F334455#1122334455667788", 0x1F334455 | wire.CANEffFlag, 8, 0, []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}},
		{"123#R", 0x123 | wire.CANRtrFlag, 0, 0, nil},
		{"123#R3", 0x123 | wire.CANRtrFlag, 3, 0, nil},
		{"123##1AABB", 0x123, 2, wire.CANFDFDF | wire.CANFDBRS, []byte{0xaa, 0xbb}},
		{"123##0112233445566778899", 0x123, 12, wire.CANFDFDF, []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0, 0, 0}},
		{"20000080#0000000000000000", 0x20000080, 8, 0, make([]byte, 8)},
		{"123#", 0x123, 0, 0, nil},
	} {
		f, err := parseCANFrame(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if f.ID != c.id || int(f.Len) != c.n || f.Flags != c.fl || !bytes.Equal(f.Payload(), append(append([]byte{}, c.data...), make([]byte, 8)...)[:c.n]) {
			t.Errorf("%s: got %+v", c.in, f)
		}
	}
	f, err := parseCANFrame("123#1122334455667788_E")
	if err != nil || f.Len8 != 0xE || f.DLC() != 0xE {
		t.Errorf("len8 dlc: %v %+v", err, f)
	}
	for _, bad := range []string{"", "12#00", "1234#00", "800#00", "123#112233445566778899", "123#1", "123#GG", "123#R9", "123##", "123#11_E"} {
		if _, err := parseCANFrame(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCandumpFormats(t *testing.T) {
	f := wire.CANFrame{ID: 0x123, Len: 4, Data: [64]byte{0xde, 0xad, 0xbe, 0xef}}
	if got := formatCANLine("vcan0", 5, &f); got != "  vcan0  123   [4]  DE AD BE EF" {
		t.Errorf("line %q", got)
	}
	e := wire.CANFrame{ID: 0x12345678 | wire.CANEffFlag, Len: 1, Data: [64]byte{1}}
	if got := formatCANLine("vcan0", 5, &e); got != "  vcan0  12345678   [1]  01" {
		t.Errorf("eff line %q", got)
	}
	r := wire.CANFrame{ID: 0x123 | wire.CANRtrFlag, Len: 2}
	if got := formatCANLine("vcan0", 5, &r); got != "  vcan0  123   [2]  remote request" {
		t.Errorf("rtr line %q", got)
	}
	fd := wire.CANFrame{ID: 0x123, Len: 12, Flags: wire.CANFDFDF | wire.CANFDBRS}
	if got := formatCANLine("vcan0", 5, &fd); got != "  vcan0  123  [12]  00 00 00 00 00 00 00 00 00 00 00 00" {
		t.Errorf("fd line %q", got)
	}
	ts := time.Unix(1700000000, 123456000)
	if got := formatCANLog(ts, "vcan0", &f); got != "(1700000000.123456) vcan0 123#DEADBEEF" {
		t.Errorf("log %q", got)
	}
	fd.Len = 2
	fd.Data[0] = 0xaa
	if got := formatCANLog(ts, "vcan0", &fd); got != "(1700000000.123456) vcan0 123##1AA00" {
		t.Errorf("fd log %q", got)
	}
	if got := formatCANLog(ts, "vcan0", &r); got != "(1700000000.123456) vcan0 123#R2" {
		t.Errorf("rtr log %q", got)
	}
}

func TestCandumpFilterSyntax(t *testing.T) {
	fs, em, join, err := parseCANFilters("123:7FF,400~700,#FFFFFFFF,j")
	if err != nil || !join || em != 0xFFFFFFFF || len(fs) != 2 {
		t.Fatalf("%v %v %x %v", err, fs, em, join)
	}
	if fs[0] != (socket.CANFilter{ID: 0x123, Mask: 0x7FF}) || fs[1] != (socket.CANFilter{ID: 0x400 | socket.CAN_INV_FILTER, Mask: 0x700}) {
		t.Fatalf("filters %+v", fs)
	}
	if _, _, _, err := parseCANFilters("123"); err == nil {
		t.Fatal("filter without mask accepted")
	}
}

func TestCansendCandumpOneBus(t *testing.T) {
	var f canFlags
	e, err := f.open("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	var out bytes.Buffer
	done := make(chan error, 1)
	ready := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		done <- runCandump(ctx, &out, e, []string{"vcan0,123:7FF"}, candumpOpts{count: 2, ready: ready})
	}()
	<-ready
	for _, s := range []string{"124#00", "123#DEADBEEF", "7FF#R", "123##1AABB"} {
		fr, err := parseCANFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := runCansend(e, "vcan0", &fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "  vcan0  123   [4]  DE AD BE EF\n  vcan0  123  [02]  AA BB\n"
	if out.String() != want {
		t.Fatalf("candump printed %q, want %q", out.String(), want)
	}
}

func TestCangenIncrementing(t *testing.T) {
	var f canFlags
	e, err := f.open("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	rx, err := e.rawSocket("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetBlocking(false)
	n, err := runCangen(context.Background(), e, "vcan0", cangenOpts{count: 5, idMode: "i", lenMode: "i", dataMode: "i"})
	if err != nil || n != 5 {
		t.Fatalf("sent %d: %v", n, err)
	}
	buf := make([]byte, 16)
	for i := range 5 {
		k, err := rx.Recv(buf, 0)
		if err != nil || k != 16 {
			t.Fatalf("frame %d: %v", i, err)
		}
		var fr wire.CANFrame
		_ = wire.ParseCANFrame(buf, &fr)
		if fr.ID != uint32(i) || int(fr.Len) != i || (i > 0 && fr.Data[0] != byte(i)) {
			t.Fatalf("frame %d: %+v", i, fr)
		}
	}
	// Random mode repeats with the seed.
	a := canGenIDs(t, 3)
	b := canGenIDs(t, 3)
	if len(a) != 3 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
		t.Fatalf("seeded runs differ: %x %x", a, b)
	}
}

func canGenIDs(t *testing.T, n int) []uint32 {
	var f canFlags
	e, err := f.open("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	rx, _ := e.rawSocket("vcan0")
	defer rx.Close()
	rx.SetBlocking(false)
	if _, err := runCangen(context.Background(), e, "vcan0", cangenOpts{count: n, idMode: "r", lenMode: "r", dataMode: "r", seed: 42}); err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	buf := make([]byte, 16)
	for {
		if _, err := rx.Recv(buf, 0); err != nil {
			return ids
		}
		var fr wire.CANFrame
		_ = wire.ParseCANFrame(buf, &fr)
		ids = append(ids, fr.ID)
	}
}

func TestCandumpLogAndTimestamps(t *testing.T) {
	var f canFlags
	e, err := f.open("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	logPath := t.TempDir() + "/dump.log"
	for _, o := range []candumpOpts{{count: 1, logFile: true, logPath: logPath}, {count: 1, ts: "a"}, {count: 1, logOut: true}} {
		var out bytes.Buffer
		done := make(chan error, 1)
		o.ready = make(chan struct{})
		go func() { done <- runCandump(context.Background(), &out, e, []string{"vcan0"}, o) }()
		<-o.ready
		fr, _ := parseCANFrame("321#0102")
		if err := runCansend(e, "vcan0", &fr); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		switch {
		case o.logFile:
			b, err := os.ReadFile(logPath)
			if err != nil || !regexp.MustCompile(`^\(\d+\.\d{6}\) vcan0 321#0102\n$`).Match(b) {
				t.Fatalf("log file %q %v", b, err)
			}
		case o.ts == "a":
			if !regexp.MustCompile(`^ \(\d+\.\d{6}\)  vcan0  321   \[2\]  01 02\n$`).MatchString(out.String()) {
				t.Fatalf("-t a: %q", out.String())
			}
		default:
			if !regexp.MustCompile(`^\(\d+\.\d{6}\) vcan0 321#0102\n$`).MatchString(out.String()) {
				t.Fatalf("-L: %q", out.String())
			}
		}
	}
}

func TestDemoCAN(t *testing.T) {
	var out bytes.Buffer
	pcap := t.TempDir() + "/can.pcap"
	if err := runCANDemo(&out, pcap); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, w := range []string{
		"   (000.000118)  vcan0  400   [1]  00\n   (000.000236)  vcan0  100   [1]  05\n   (000.000370)  vcan0  200   [2]  03 04\n   (000.000506)  vcan0  300   [2]  01 02\n",
		"the gateway's filtered socket got: 7E5, 7EF",
		"vcan0  0C8  [48]  A5",
		"vcan0  7E8   [8]  10 64 62 F1 90",
		"tester got 100 bytes intact",
		"gateway: RX_CHANGED 0x0F0 byte 0 = 10\n  gateway: RX_CHANGED 0x0F0 byte 0 = 20\n  gateway: RX_TIMEOUT 0x0F0",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q", w)
		}
	}
	if st, err := os.Stat(pcap); err != nil || st.Size() < 24+32*16 {
		t.Fatalf("pcap: %v", err)
	}
	// Virtual time: a second run prints the same.
	var again bytes.Buffer
	if err := runCANDemo(&again, ""); err != nil {
		t.Fatal(err)
	}
	a, b := out.String(), again.String()
	if a[:strings.Index(a, "Summary")] != b[:strings.Index(b, "Summary")] {
		t.Fatal("two runs of the demo differ")
	}
}
