package socket

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os/exec"
	"testing"
)

// The conversions against the C library's own, through Python's socket
// module (inet_aton, inet_pton and inet_ntop call glibc's): every input
// gives the same bytes, text or refusal.
func TestInetConversionsAgreeWithLibc(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: the C library's inet_aton/inet_pton/inet_ntop are reached through Python's socket module")
	}
	aton := []string{"1.2.3.4", "127.1", "0x7f.1", "0177.0.0.1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.256.1.1",
		"1.2.65535", "1.2.65536", "4294967295", "4294967296", "0x", "0x1g", "08", "1.2.3.4 junk", " 1.2.3.4",
		"1..2", "", "1.2.3.", "0xffffffff", "1.0xffffff", "1.0x1000000", "0XAB.0", "1.2.3.4\ttab", "00000001.2.3.4", "-1.2.3.4", "+1.2.3.4"}
	pton4 := []string{"1.2.3.4", "01.2.3.4", "1.2.3", "255.255.255.255", "256.0.0.0", "0.0.0.0", "1.2.3.4 ", "1.2.3.04", "0x1.2.3.4", "1.2.3.4.5"}
	pton6 := []string{"::", "::1", "1::", "::ffff:1.2.3.4", "::ffff:01.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
		"fe80::1%eth0", "1.2.3.4", ":::", "1::2::3", "::1.2.3.4", "ABCD::EF", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "12345::", "::ffff:1.2.3"}
	var ntop6 []string
	for _, a := range []string{"::", "::1", "::102", "::1.2.3.4", "::ffff:1.2.3.4", "::ffff:0.0.0.0", "1:0:0:1:0:0:0:1",
		"1:0:0:0:1:0:0:1", "2001:db8::", "0:1::", "::ffff:0:0:1", "1::", "::0.0.1.0", "::1:0:0", "fe80::abcd:ef01"} {
		b := netip.MustParseAddr(a).As16()
		ntop6 = append(ntop6, hex.EncodeToString(b[:]))
	}
	in, _ := json.Marshal(map[string][]string{"aton": aton, "pton4": pton4, "pton6": pton6, "ntop6": ntop6})
	const script = `
import json, socket, sys
d = json.load(sys.stdin)
def tr(f):
    try:
        return f()
    except (OSError, ValueError):
        return "ERR"
out = {
  "aton": [tr(lambda s=s: socket.inet_aton(s).hex()) for s in d["aton"]],
  "pton4": [tr(lambda s=s: socket.inet_pton(socket.AF_INET, s).hex()) for s in d["pton4"]],
  "pton6": [tr(lambda s=s: socket.inet_pton(socket.AF_INET6, s).hex()) for s in d["pton6"]],
  "ntop6": [tr(lambda s=s: socket.inet_ntop(socket.AF_INET6, bytes.fromhex(s))) for s in d["ntop6"]],
}
print(json.dumps(out))
`
	cmd := exec.Command(py, "-c", script)
	stdin, _ := cmd.StdinPipe()
	go func() { stdin.Write(in); stdin.Close() }()
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want map[string][]string
	if err := json.Unmarshal(outb, &want); err != nil {
		t.Fatalf("python3 said %q: %v", outb, err)
	}
	res := func(b []byte, err error) string {
		if err != nil {
			return "ERR"
		}
		return hex.EncodeToString(b)
	}
	for i, s := range aton {
		a, err := InetAton(s)
		if got := res(a[:], err); got != want["aton"][i] {
			t.Errorf("inet_aton(%q): %s, libc %s", s, got, want["aton"][i])
		}
	}
	for i, s := range pton4 {
		if got := res(InetPton(AF_INET, s)); got != want["pton4"][i] {
			t.Errorf("inet_pton(AF_INET, %q): %s, libc %s", s, got, want["pton4"][i])
		}
	}
	for i, s := range pton6 {
		if got := res(InetPton(AF_INET6, s)); got != want["pton6"][i] {
			t.Errorf("inet_pton(AF_INET6, %q): %s, libc %s", s, got, want["pton6"][i])
		}
	}
	for i, h := range ntop6 {
		b, _ := hex.DecodeString(h)
		got, err := InetNtop(AF_INET6, b)
		if err != nil {
			got = "ERR"
		}
		if got != want["ntop6"][i] {
			t.Errorf("inet_ntop(AF_INET6, %s): %s, libc %s", h, got, want["ntop6"][i])
		}
	}
}

func TestInetConversionsOther(t *testing.T) {
	if Htonl(0x01020304) != 0x04030201 || Ntohl(0x04030201) != 0x01020304 || Ntohs(0x0102) != 0x0201 {
		t.Fatal("byte order swaps")
	}
	if s, err := InetNtoa([]byte{10, 0, 0, 1}); s != "10.0.0.1" || err != nil {
		t.Fatalf("inet_ntoa: %q %v", s, err)
	}
	if _, err := InetNtoa([]byte{1, 2, 3}); err == nil {
		t.Fatal("inet_ntoa of 3 bytes")
	}
	if _, err := InetPton(AF_UNIX, "x"); err == nil {
		t.Fatal("inet_pton AF_UNIX")
	}
	if _, err := InetNtop(AF_INET6, make([]byte, 4)); err == nil {
		t.Fatal("inet_ntop of 4 bytes as AF_INET6")
	}
}
