package interop

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// The client tools over IPv6 link-local on a TAP: sockstack ping -6 and
// http get http://[fe80::...%tap0]:8000/ against the kernel (python3's
// http.server on ::). The tool's NIC has only an IPv4 --addr: the IPv6
// destination turns IPv6 on and waits out DAD before the tool starts.
func TestInteropTools6LinkLocal(t *testing.T) {
	l := newLab6(t)
	needTools(t, "python3", "ss")
	// The kernel's link-local address comes with carrier (when the tool
	// opens the TAP); without DAD it is usable at once.
	l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv6.conf."+tapName+".accept_dad=0")
	out := l.run(t, 5*time.Second, nil, "ip", "-o", "link", "show", "dev", tapName)
	i := strings.Index(out, "link/ether ")
	if i < 0 {
		t.Fatalf("no MAC in %q", out)
	}
	mac, err := net.ParseMAC(strings.Fields(out[i+len("link/ether "):])[0])
	if err != nil {
		t.Fatal(err)
	}
	kernelLL := wire.AddrWithIID(wire.IPv6LinkLocalNw, wire.EUI64(wire.MAC(mac)))
	zoned := netip.MustParseAddr(kernelLL.String() + "%" + tapName)

	ping := append([]string{"ping"}, l.tapArgs()...)
	got, err := l.sockstack(t, 30*time.Second, nil, append(ping, "-c", "2", "-i", "0.2", zoned.String())...)
	if err != nil {
		t.Fatalf("ping -6 %v: %v\n%s", zoned, err, got)
	}
	wantContains(t, "ping -6 link-local", got, "PING "+zoned.String()+"("+zoned.String()+") 56 data bytes",
		"64 bytes from "+zoned.String()+": icmp_seq=1 ttl=64", "2 packets transmitted, 2 received, 0% packet loss")

	dir := t.TempDir()
	_, sum := randomFile(t, dir, "1MiB.bin", 1<<20)
	l.background(t, "python3", "-m", "http.server", "8000", "--bind", "::", "--directory", dir)
	l.waitListen(t, "tcp", 8000)
	dst := filepath.Join(t.TempDir(), "got.bin")
	get := append([]string{"http", "get"}, l.tapArgs()...)
	url := "http://[" + kernelLL.String() + "%" + tapName + "]:8000/1MiB.bin"
	got, err = l.sockstack(t, time.Minute, nil, append(get, "-o", dst, url)...)
	if err != nil {
		t.Fatalf("http get %s: %v\n%s", url, err, got)
	}
	if h := fileHash(t, dst); h != sum {
		t.Fatalf("http get over link-local: SHA-256 %s, want %s\n%s", h, sum, got)
	}
	t.Log(strings.TrimSpace(got))
}
