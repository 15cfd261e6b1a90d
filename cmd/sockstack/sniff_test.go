package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/trace"
)

// readPcap returns the frames of a classic little-endian pcap file.
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 && binary.LittleEndian.Uint32(b) != 0xa1b23c4d {
		t.Fatalf("%s: not a little-endian pcap file", path)
	}
	var frames [][]byte
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("%s: truncated record header", path)
		}
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			t.Fatalf("%s: truncated record", path)
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	return frames
}

// needTcpdump skips outside CI when tcpdump is missing, and fails in CI
// (scripts/test.sh installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing in CI (scripts/test.sh installs it)", name)
		}
		t.Skipf("%s is not installed: this test compares with it", name)
	}
	return p
}

// The filter language means what tcpdump's means: the same expression
// selects the same frames of the same capture.
func TestSniffFilterAgreesWithTcpdump(t *testing.T) {
	tcpdump := needTool(t, "tcpdump")
	dir := t.TempDir()
	capPath := filepath.Join(dir, "vnet.pcap")
	pw, closePcap, err := openPcap(capPath)
	if err != nil {
		t.Fatal(err)
	}
	sn := &sniffer{w: io.Discard, start: time.Now(), full: make(chan struct{}), pcap: pw}
	if err := sniffVnet(context.Background(), io.Discard, sn); err != nil {
		t.Fatal(err)
	}
	if err := closePcap(); err != nil {
		t.Fatal(err)
	}
	frames := readPcap(t, capPath)
	if len(frames) < 20 {
		t.Fatalf("only %d frames captured", len(frames))
	}
	for _, expr := range []string{
		"tcp", "udp", "icmp", "arp", "ip", "not ip",
		"host 10.0.0.1", "src host 10.0.0.2", "dst host 10.0.0.2", "arp host 10.0.0.2", "ip host 10.0.0.2",
		"net 10.0.0.0/24", "net 10.0.0", "src net 10.0.0.0/31", "dst net 10.0.0.2/31", "net 192.168.0.0/16",
		"port 7", "src port 7", "dst port 7", "tcp port 7", "udp port 7", "udp dst port 7", "port 7 or 9",
		"src or dst port 7", "tcp and (src port 7 or dst port 7)",
		"not tcp", "tcp or udp", "udp or tcp and port 7", "udp or (tcp and port 7)",
		"not (tcp or arp)", "icmp or arp and host 10.0.0.1", "!udp && !icmp", "tcp || arp",
		"src 10.0.0.1 and dst 10.0.0.2", "host 10.0.0.1 and not port 7",
		"tcp and src port 7 and not dst host 10.0.0.9",
		"ip6", "icmp6", "ip6 and udp", "host fd00::2", "src host fd00::1", "net fd00::/64", "net ff02::/16",
		"not ip6", "icmp or icmp6", "udp and host fd00::2 and port 7", "portrange 1-10", "ether src 02:00:00:00:00:01",
	} {
		t.Run(strings.ReplaceAll(expr, " ", "_"), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sel.pcap")
			cmd := exec.Command(tcpdump, "-r", capPath, "-w", out, expr)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tcpdump: %v\n%s", err, b)
			}
			want := readPcap(t, out)
			f, err := trace.ParseFilter(expr)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for _, fr := range frames {
				if f.Match(fr, true) {
					got = append(got, fr)
				}
			}
			same := len(got) == len(want)
			for i := 0; same && i < len(got); i++ {
				same = bytes.Equal(got[i], want[i])
			}
			if !same {
				t.Errorf("%q: sockstack selects %d frames, tcpdump %d", expr, len(got), len(want))
			}
			if len(want) == 0 && !strings.Contains(expr, "192.168") {
				t.Logf("%q selects nothing from the capture", expr)
			}
		})
	}
}

// The scripted exchange's IPv6 half is decoded the way tcpdump prints
// it, and "icmp6" selects only it.
func TestSniffDecodesIPv6(t *testing.T) {
	flt, err := trace.ParseFilter("icmp6 or (ip6 and udp)")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sn := &sniffer{w: &out, filter: flt, start: time.Now(), full: make(chan struct{})}
	if err := sniffVnet(context.Background(), io.Discard, sn); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"IP6 fd00::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has fd00::2, length 32",
		"IP6 fd00::2 > fd00::1: ICMP6, neighbor advertisement, tgt is fd00::2, length 32",
		"IP6 fd00::1 > fd00::2: ICMP6, echo request, id ",
		"IP6 fd00::2 > fd00::1: ICMP6, echo reply, id ",
		"> fd00::2.7: UDP, length 15",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("sniff output lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "IP 10.0.0") {
		t.Errorf("the filter let IPv4 through:\n%s", out.String())
	}
}
