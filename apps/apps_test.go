package apps

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockstack/sockstack/apps/echo"
	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/apps/tftp"
	"github.com/sockstack/sockstack/socket"
)

func TestParse(t *testing.T) {
	got, err := Parse("echo:7, discard:9,daytime,chargen:1919,dns:5353", map[string]Starter{"dns": nil})
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{{"echo", 7}, {"discard", 9}, {"daytime", 13}, {"chargen", 1919}, {"dns", 5353}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", "nope:1", "echo:0", "echo:70000", "echo:x", "echo,echo:7", "dns:0"} {
		if _, err := Parse(bad, nil); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func TestStart(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("file"), 0o644)
	hookStarted, hookStopped := 0, 0
	opts := Options{Root: root, Hooks: map[string]Starter{"dns": func(n *socket.Net, a netip.AddrPort, o Options) (io.Closer, error) {
		hookStarted++
		if a.Port() != 53 {
			t.Errorf("dns on %v", a)
		}
		return closerFunc(func() error { hookStopped++; return nil }), nil
	}}}
	stop, err := Start(p.B, "echo:7,discard:9,daytime:13,chargen:19,chat:7321,http:80,tftp:69,dns:53", opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := echo.Client(context.Background(), p.A, apptest.Server(7), echo.ClientConfig{UDP: true}, strings.NewReader("x\n"), &out); err != nil || out.String() != "x\n" {
		t.Fatalf("echo: %q %v", out.String(), err)
	}
	out.Reset()
	if _, err := tftp.Get(context.Background(), p.A, apptest.Server(69), "f", &out, tftp.ClientConfig{}); err != nil || out.String() != "file" {
		t.Fatalf("tftp: %q %v", out.String(), err)
	}
	// A second start on the same ports fails and leaves nothing running.
	if _, err := Start(p.B, "discard:1000,echo:7", Options{}); err == nil {
		t.Fatal("second echo on port 7 started")
	}
	stop()
	stop()
	if hookStarted != 1 || hookStopped != 1 {
		t.Fatalf("hook started %d stopped %d", hookStarted, hookStopped)
	}
	// Everything is free again, including port 1000 from the failed start.
	stop, err = Start(p.B, "echo:7,discard:1000,tftp:69", Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := Start(p.B, "tftp", Options{}); err == nil || !strings.Contains(err.Error(), "root") {
		t.Fatalf("tftp without root: %v", err)
	}
	if _, err := Start(p.B, "bogus", Options{}); err == nil || errors.Is(err, nil) {
		t.Fatalf("bogus: %v", err)
	}
}

// dns is a service: it answers from the stack's hosts table and a zone
// file (the README's recipe starts it with --serve ...,dns:53).
func TestDNSService(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	zone := filepath.Join(t.TempDir(), "zone")
	os.WriteFile(zone, []byte("# lab names\n10.1.2.3 printer printer.lab\n"), 0o644)
	p.B.Hosts().Add("fileserver", netip.MustParseAddr("10.9.9.9"))
	stop, err := Start(p.B, "dns:53", Options{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p.A.SetNameservers([]netip.AddrPort{apptest.Server(53)})
	for name, want := range map[string]string{"fileserver": "10.9.9.9", "printer.lab": "10.1.2.3"} {
		a, err := p.A.GetHostByName(name)
		if err != nil || a.String() != want {
			t.Errorf("%s: %v %v, want %s", name, a, err, want)
		}
	}
	if _, err := p.A.GetHostByName("nosuch.lab"); err == nil {
		t.Error("an unknown name resolved")
	}
	if _, err := Start(p.B, "dns:5353", Options{Zone: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing zone file was accepted")
	}
}
