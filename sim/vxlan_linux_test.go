package sim

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// A scenario's VXLAN link is checked with errors that give the line,
// field and reason.
func TestScenarioVXLANErrors(t *testing.T) {
	head := "name: x\nhosts: [{name: h}]\nswitches: [{name: sw}]\nlinks:\n  - {a: h, a_addr: 10.0.0.1/24, b: sw}\n"
	for _, c := range []struct{ link, want string }{
		{"  - {name: up, a: sw, vxlan: {vni: 1}}\n", "6: local: missing"},
		{"  - {name: up, a: sw, vxlan: {local: 'localhost:4789', vni: 1}}\n", `6: local: "localhost:4789" is not an IPv4 HOST:PORT`},
		{"  - {name: up, a: sw, vxlan: {local: '127.0.0.1:4789'}}\n", "6: vni: missing"},
		{"  - {name: up, a: sw, vxlan: {local: '127.0.0.1:4789', vni: 16777216}}\n", "6: vni: 16777216 is outside 0..16777215"},
		{"  - {name: up, a: sw, vxlan: {local: '127.0.0.1:4789', remotes: ['127.0.0.1:0'], vni: 1}}\n", `6: remotes: "127.0.0.1:0"`},
		{"  - {name: up, a: sw, b: h, vxlan: {local: '127.0.0.1:4789', vni: 1}}\n", "6: b: a vxlan link has one node end (a)"},
		{"  - {name: up, a: sw, vxlan: {local: '127.0.0.1:4789', vni: 1, colour: red}}\n", "6: colour: unknown field"},
		{"  - {name: up, a: nowhere, vxlan: {local: '127.0.0.1:4789', vni: 1}}\n", `6: a: unknown node "nowhere"`},
	} {
		sc, err := ParseScenario([]byte(head + c.link))
		if err == nil {
			_, err = sc.Build(1)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.link, err, c.want)
		}
	}
	sc, err := ParseScenario([]byte(head + "  - {name: up, a: sw, vxlan: {local: '127.0.0.1:4789', vni: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(1)
	if err != nil || !sc.RealTime() || !n.RealTime() {
		t.Fatalf("a valid VXLAN link: %v, real time %v", err, sc.RealTime())
	}
}

// A simulated host behind a simulated switch and link serves HTTP to a
// sockstack host outside the simulation, on a real VXLAN segment on
// loopback; the run is in real time and its VXLAN port counts what it
// learned and carried.
func TestScenarioVXLANRealTime(t *testing.T) {
	// The simulation's tunnel port: a free one on loopback.
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	simAddr := u.LocalAddr().(*net.UDPAddr).AddrPort()
	u.Close()
	peer, err := link.NewVXLAN(link.VXLANConfig{Local: netip.MustParseAddrPort("127.0.0.1:0"), Remotes: []netip.AddrPort{simAddr},
		VNI: 77, MAC: wire.MAC{2, 0, 0, 0, 0x93, 0x64}})
	if err != nil {
		t.Fatal(err)
	}
	ps := stack.New(stack.Options{Name: "outside"})
	defer ps.Close()
	if err := ps.AddNIC("vx0", peer).AddAddress(netip.MustParsePrefix("10.93.0.100/24")); err != nil {
		t.Fatal(err)
	}
	yaml := `name: vxlan-test
duration: 60s
hosts: [{name: h1}]
switches: [{name: sw}]
links:
  - {name: h1-sw, a: h1, a_addr: 10.93.0.1/24, b: sw, bandwidth: 100Mbit, delay: 2ms}
  - name: uplink
    a: sw
    vxlan: {local: '` + simAddr.String() + `', remotes: ['` + peer.LocalAddr().String() + `'], vni: 77}
`
	sc, err := ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	n, err := sc.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.CaptureScenario(dir); err != nil {
		t.Fatal(err)
	}
	h1 := n.Host("h1")
	ln, err := netconn.Listen(socket.New(h1.Stack), "tcp", "10.93.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("from inside the simulation\n", 5000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	done := make(chan error, 1)
	go func() { done <- n.Run(time.Minute) }()

	c, err := netconn.Dial(socket.New(ps), "tcp", "10.93.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a failure bound
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: h1\r\n\r\n")
	got, err := io.ReadAll(c)
	c.Close()
	srv.Close()
	n.S.Stop()
	if rerr := <-done; rerr != nil {
		t.Fatal(rerr)
	}
	for _, h := range n.Hosts {
		h.Stack.Close()
	}
	if err != nil || !strings.HasSuffix(string(got), body) {
		t.Fatalf("GET across the VXLAN link: %v, %d bytes", err, len(got))
	}
	m := n.Metrics(sc.Name)
	if len(m.VXLAN) != 1 || m.VXLAN[0].RxFrames == 0 || m.VXLAN[0].TxFrames == 0 || m.VXLAN[0].Learned == 0 {
		t.Errorf("VXLAN metrics %+v", m.VXLAN)
	}
	if fdb := peer.FDB(); len(fdb) == 0 {
		t.Error("the outside endpoint learned no MAC of the simulation")
	}
	peer.Close()
	fi, err := os.Stat(filepath.Join(dir, "uplink.pcap"))
	if err != nil || fi.Size() < 24+16*10 {
		t.Errorf("uplink capture: %v, %v", fi, err)
	}
}
