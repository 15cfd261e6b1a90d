package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// CAN interop: two sockstack processes joined by the UDP bridge, and
// tshark reading what sockstack writes. None of it needs root: the
// bridge runs on loopback.

// TestCANTwoProcessBridge runs candump in one sockstack process and
// cansend in another; the bridge joins their buses over loopback UDP.
func TestCANTwoProcessBridge(t *testing.T) {
	bin := sockstackBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dump := exec.CommandContext(ctx, bin, "candump", "vcan0,0:0,#FFFFFFFF", "-n", "4", "--bridge-listen", "127.0.0.1:0")
	dump.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	dump.Stdout = &out
	stderr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dump.Process.Kill(); _ = dump.Wait() })
	// candump says where its bridge listens once its socket is bound.
	sc := bufio.NewScanner(stderr)
	var port string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "bridge: listening on udp "); ok {
			port = a
			break
		}
	}
	if port == "" {
		t.Fatalf("candump did not announce its bridge: %v", sc.Err())
	}
	go func() { _, _ = bufio.NewReader(stderr).WriteTo(new(bytes.Buffer)) }()
	for _, f := range []string{"123#DEADBEEF", "1F334455#1122", "7FF#R", "0C8##1" + strings.Repeat("A5", 12)} {
		c := exec.CommandContext(ctx, bin, "cansend", "vcan0", f, "--bridge-peer", port)
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("cansend %s: %v\n%s", f, err, b)
		}
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("candump: %v\n%s", err, out.String())
	}
	want := "  vcan0  123   [4]  DE AD BE EF\n" +
		"  vcan0  1F334455   [2]  11 22\n" +
		"  vcan0  7FF   [0]  remote request\n" +
		"  vcan0  0C8  [12]  A5 A5 A5 A5 A5 A5 A5 A5 A5 A5 A5 A5\n"
	if out.String() != want {
		t.Fatalf("candump printed\n%s\nwant\n%s", out.String(), want)
	}
}

func needTshark(t *testing.T) {
	t.Helper()
	needTools(t, "tshark")
}

func tshark(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("tshark", append([]string{"-n"}, args...)...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return string(out)
}

// TestCANDemoPcapTshark: tshark reads the capture of `demo can` as CAN
// and CAN FD with nothing malformed, and decodes the ISO-TP exchange as
// ISO 15765 (the ids given with its iso15765.can.ids preference, as
// Wireshark cannot tell ISO-TP from other payloads by itself).
func TestCANDemoPcapTshark(t *testing.T) {
	needTshark(t)
	bin := sockstackBin(t)
	pcap := filepath.Join(t.TempDir(), "can.pcap")
	if out, err := exec.Command(bin, "demo", "can", "--pcap", pcap).CombinedOutput(); err != nil {
		t.Fatalf("demo can: %v\n%s", err, out)
	}
	iso := []string{"-o", "iso15765.can.ids:2016,2024"}
	if bad := tshark(t, append([]string{"-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning"}, iso...)...); strings.TrimSpace(bad) != "" {
		t.Fatalf("tshark flags:\n%s", bad)
	}
	count := func(filter string) int {
		out := tshark(t, append([]string{"-r", pcap, "-Y", filter}, iso...)...)
		return strings.Count(out, "\n")
	}
	for _, c := range []struct {
		filter string
		min    int
	}{
		{"can", 20},
		{"canfd && canfd.flags.brs == 1", 1},
		{"iso15765.message_type == 0", 1}, // single frame (the request)
		{"iso15765.message_type == 1 && iso15765.frame_length == 100", 1},
		{"iso15765.message_type == 3", 2},  // flow control, one per block of 8
		{"iso15765.message_type == 2", 14}, // consecutive frames
		{"iso15765.reassembled.length == 100", 1},
	} {
		if n := count(c.filter); n < c.min {
			t.Errorf("%q: %d packets, want at least %d", c.filter, n, c.min)
		}
	}
}

// TestCANBridgeCanethTshark: the packets the UDP bridge sends decode as
// CAN-ETH. The bridge sends to a UDP socket of the test; its datagrams,
// exactly as received, go into a pcap with IPv4/UDP headers around them.
func TestCANBridgeCanethTshark(t *testing.T) {
	needTshark(t)
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	bus := link.NewCANBus("b", link.CANBusOptions{})
	br, err := link.NewCANBridge(bus, "bridge", "127.0.0.1:0", peer.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	node := bus.Attach("ecu")
	frames := []wire.CANFrame{
		{ID: 0x123, Len: 4, Data: [64]byte{0xde, 0xad, 0xbe, 0xef}},
		{ID: 0x1F334455 | wire.CANEffFlag, Len: 2, Data: [64]byte{0x11, 0x22}},
		{ID: 0x7FF | wire.CANRtrFlag},
	}
	for i := range frames {
		if err := node.Send(&frames[i], nil, false); err != nil {
			t.Fatal(err)
		}
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	var pkts [][]byte
	var from netip.AddrPort
	for range frames {
		buf := make([]byte, 2048)
		n, a, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, buf[:n])
		from = a
	}
	pcap := filepath.Join(t.TempDir(), "caneth.pcap")
	writeUDPPcap(t, pcap, from, peer.LocalAddr().(*net.UDPAddr).AddrPort(), pkts)
	out := tshark(t, "-r", pcap, "-Y", "caneth", "-T", "fields", "-e", "caneth.frames", "-e", "can.id", "-e", "can.len", "-e", "can.flags.xtd", "-e", "can.flags.rtr")
	want := "1\t0x00000123\t4\t0\t0\n1\t0x1f334455\t2\t1\t0\n1\t0x000007ff\t0\t0\t1\n"
	if out != want {
		t.Fatalf("tshark caneth fields:\n%q\nwant:\n%q", out, want)
	}
	if bad := tshark(t, "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); strings.TrimSpace(bad) != "" {
		t.Fatalf("tshark flags:\n%s", bad)
	}
}

// writeUDPPcap stores datagrams from src to dst as IPv4/UDP packets
// (LINKTYPE_RAW), checksums filled in.
func writeUDPPcap(t *testing.T, path string, src, dst netip.AddrPort, pkts [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := link.NewPcapWriter(f, link.LinkTypeRaw, link.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, p := range pkts {
		b := make([]byte, 28+len(p))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(b[4:], uint16(i+1))
		b[8] = 64
		b[9] = 17
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(b[12:16], s4[:])
		copy(b[16:20], d4[:])
		binary.BigEndian.PutUint16(b[10:], ^sum16(b[:20], 0))
		u := b[20:]
		binary.BigEndian.PutUint16(u[0:], src.Port())
		binary.BigEndian.PutUint16(u[2:], dst.Port())
		binary.BigEndian.PutUint16(u[4:], uint16(8+len(p)))
		copy(u[8:], p)
		// Pseudo-header sum, then the datagram.
		ph := make([]byte, 12)
		copy(ph[0:4], s4[:])
		copy(ph[4:8], d4[:])
		ph[9] = 17
		binary.BigEndian.PutUint16(ph[10:], uint16(8+len(p)))
		c := ^sum16(u, sum16(ph, 0))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(u[6:], c)
		if err := w.WriteFrame(ts.Add(time.Duration(i)*time.Millisecond), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func sum16(b []byte, init uint16) uint16 {
	s := uint32(init)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestISOTPTwoProcessBridge: isotprecv in one process, isotpsend in
// another; the flow control frames travel back over the bridge.
func TestISOTPTwoProcessBridge(t *testing.T) {
	bin := sockstackBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recv := exec.CommandContext(ctx, bin, "isotprecv", "-s", "7E8", "-d", "7E0", "-b", "4", "-m", "1", "vcan0", "--bridge-listen", "127.0.0.1:0")
	recv.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	recv.Stdout = &out
	stderr, err := recv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = recv.Process.Kill(); _ = recv.Wait() })
	sc := bufio.NewScanner(stderr)
	var port string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "bridge: listening on udp "); ok {
			port = a
			break
		}
	}
	if port == "" {
		t.Fatalf("isotprecv did not announce its bridge: %v", sc.Err())
	}
	var errOut bytes.Buffer
	errDone := make(chan struct{})
	go func() {
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
		}
		close(errDone)
	}()
	var msg, want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&msg, "%02x ", i)
		fmt.Fprintf(&want, "%02X ", i)
	}
	send := exec.CommandContext(ctx, bin, "isotpsend", "-s", "7E0", "-d", "7E8", "vcan0", "--bridge-peer", port)
	send.Stdin = strings.NewReader(msg.String())
	if b, err := send.CombinedOutput(); err != nil {
		t.Fatalf("isotpsend: %v\n%s", err, b)
	}
	<-errDone
	if err := recv.Wait(); err != nil {
		t.Fatalf("isotprecv: %v\n%s%s", err, out.String(), errOut.String())
	}
	if out.String() != want.String()+"\n" {
		t.Fatalf("isotprecv printed %q", out.String())
	}
}

// TestCANBridgeLoopbackCapture captures the bridge's UDP packets on the
// loopback interface with tshark while cansend talks to candump in
// another process, and reads them back as CAN-ETH. Capturing needs root.
func TestCANBridgeLoopbackCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: capturing on lo needs root")
	}
	needTshark(t)
	bin := sockstackBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A free port for candump's bridge.
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	// tshark decodes live, one line per packet: probes give empty fields,
	// bridge packets the CAN-ETH fields.
	capt := exec.CommandContext(ctx, "tshark", "-n", "-l", "-i", "lo", "-f", fmt.Sprintf("udp dst port %d", port), "-a", "duration:40",
		"-T", "fields", "-e", "caneth.frames", "-e", "can.id", "-e", "can.len", "-e", "can.flags.xtd", "-e", "can.flags.rtr")
	capt.WaitDelay = 2 * time.Second
	cout, err := capt.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := capt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = capt.Process.Kill(); _ = capt.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(cout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The capture is live once a probe datagram shows up in its output;
	// probes go until then (nobody listens yet, they are dropped).
	probe, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
probing:
	for {
		_, _ = probe.Write([]byte("probe"))
		select {
		case _, ok := <-lines:
			if !ok {
				t.Fatal("tshark ended before capturing")
			}
			break probing
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("tshark never captured a probe")
		}
	}
	probe.Close()

	dump := exec.CommandContext(ctx, bin, "candump", "vcan0", "-n", "3", "--bridge-listen", fmt.Sprintf("127.0.0.1:%d", port))
	dump.WaitDelay = 2 * time.Second
	derr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	dump.Stdout = &out
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dump.Process.Kill(); _ = dump.Wait() })
	dsc := bufio.NewScanner(derr)
	for dsc.Scan() && !strings.HasPrefix(dsc.Text(), "bridge: listening") {
	}
	go func() { _, _ = bufio.NewReader(derr).WriteTo(new(bytes.Buffer)) }()
	for _, f := range []string{"123#DEADBEEF", "1F334455#1122", "7FF#R"} {
		c := exec.CommandContext(ctx, bin, "cansend", "vcan0", f, "--bridge-peer", fmt.Sprintf("127.0.0.1:%d", port))
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("cansend %s: %v\n%s", f, err, b)
		}
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("candump: %v\n%s", err, out.String())
	}
	var got string
	for n := 0; n < 3; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tshark ended; caneth lines so far %q", got)
			}
			if strings.HasPrefix(l, "1\t") {
				got += l + "\n"
				n++
			}
		case <-ctx.Done():
			t.Fatalf("caneth lines so far %q", got)
		}
	}
	want := "1\t0x00000123\t4\t0\t0\n1\t0x1f334455\t2\t1\t0\n1\t0x000007ff\t0\t0\t1\n"
	if got != want {
		t.Fatalf("captured caneth fields %q, want %q", got, want)
	}
}
