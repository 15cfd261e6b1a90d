package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The demo's IPv6 part runs end to end and its pcap passes tshark with
// IPv6, ICMPv6, ND and fragments in it.
func TestDemoIPv6(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "demo.pcap")
	var out bytes.Buffer
	if err := runDemo(&out, pcap, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, w := range []string{"passed DAD", "ping6: 64 bytes from", "lladdr 02:00:00:00:00:02 REACHABLE",
		"received \"Hello, world\" back over IPv6", "as 3 IPv6 fragments; bob reassembled 4000 bytes"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out.String())
		}
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed: pcap not checked")
	}
	filter := `ipv6 && (_ws.malformed || _ws.expert.severity >= warning || icmpv6.checksum.status == "Bad" || udp.checksum.status == "Bad" || tcp.checksum.status == "Bad")`
	bad, err := exec.Command("tshark", "-n", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-Y", filter).Output()
	if err != nil || len(bytes.TrimSpace(bad)) != 0 {
		t.Fatalf("tshark: %v\n%s", err, bad)
	}
	for _, f := range []string{"icmpv6.type == 135", "icmpv6.type == 136", "icmpv6.type == 128", "icmpv6.type == 129", "icmpv6.type == 143", "ipv6.fragment", "tcp && ipv6"} {
		got, _ := exec.Command("tshark", "-n", "-r", pcap, "-Y", f).Output()
		if len(bytes.TrimSpace(got)) == 0 {
			t.Errorf("no packet matches %q", f)
		}
	}
}
