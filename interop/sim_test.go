package interop

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// The Linux kernel's vxlan device and a sockstack host share one VXLAN
// segment (VNI 42). Two namespaces made here hold the underlay: A has
// sockstack's UDP socket (10.78.0.1), B a veth peer (10.78.0.2) and the
// kernel's vx0 (192.168.78.2/24). The kernel pings and curls sockstack's
// 192.168.78.1 across the overlay.
func TestInteropVXLANKernel(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "curl", "ethtool")
	suffix := fmt.Sprint(os.Getpid())
	nsA, nsB := "ssvxa"+suffix, "ssvxb"+suffix
	ipc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ipc("netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ipc("netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	va, vb := "vxa"+suffix, "vxb"+suffix
	if len(va) > 15 {
		va, vb = va[:15], vb[:15]
	}
	ipc("link", "add", va, "type", "veth", "peer", "name", vb)
	ipc("link", "set", va, "netns", nsA)
	ipc("link", "set", vb, "netns", nsB)
	ipc("-n", nsA, "addr", "add", "10.78.0.1/24", "dev", va)
	ipc("-n", nsA, "link", "set", va, "up")
	ipc("-n", nsA, "link", "set", "lo", "up")
	ipc("-n", nsB, "addr", "add", "10.78.0.2/24", "dev", vb)
	ipc("-n", nsB, "link", "set", vb, "up")
	// A veth offloads checksums, so the kernel would leave the inner
	// TCP checksum of an encapsulated segment unfinished (a real NIC
	// fills it): make it compute them before encapsulation.
	if out, err := exec.Command("ip", "netns", "exec", nsB, "ethtool", "-K", vb, "tx", "off").CombinedOutput(); err != nil {
		t.Fatalf("ethtool: %v\n%s", err, out)
	}
	ipc("-n", nsB, "link", "set", "lo", "up")
	ipc("-n", nsB, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", "10.78.0.2",
		"remote", "10.78.0.1", "dstport", "4789", "dev", vb)
	ipc("-n", nsB, "addr", "add", "192.168.78.2/24", "dev", "vx0")
	ipc("-n", nsB, "link", "set", "vx0", "up")

	vx, err := link.NewVXLAN(link.VXLANConfig{
		Local:   netip.MustParseAddrPort("10.78.0.1:4789"),
		Remotes: []netip.AddrPort{netip.MustParseAddrPort("10.78.0.2:4789")},
		VNI:     42, MAC: wire.MAC{2, 0x5e, 0, 0, 0x78, 1}, Netns: nsA,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(stack.Options{Name: "vxhost"})
	t.Cleanup(st.Close)
	if err := st.AddNIC("vx0", vx).AddAddress(netip.MustParsePrefix("192.168.78.1/24")); err != nil {
		t.Fatal(err)
	}
	ln, err := netconn.Listen(socket.New(st), "tcp", "192.168.78.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("across the overlay\n", 5000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	run := func(limit time.Duration, args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", nsB}, args...)...)
		timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
		defer timer.Stop()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run(20*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.78.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping across VXLAN:\n%s", out)
	}
	got := run(30*time.Second, "curl", "-sS", "--max-time", "20", "http://192.168.78.1:8080/")
	if got != body {
		t.Fatalf("curl got %d bytes, want %d", len(got), len(body))
	}
	if vx.Learned.Load() == 0 {
		t.Error("the VXLAN endpoint learned no MAC from the kernel")
	}
	t.Logf("vxlan: rx %d frames, tx %d, learned %d, flooded %d", vx.Stats().RxFrames.Load(), vx.Stats().TxFrames.Load(), vx.Learned.Load(), vx.Flooded.Load())
}
