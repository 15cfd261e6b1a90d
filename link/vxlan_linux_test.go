package link_test

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Two sockstack hosts, each behind its own VXLAN endpoint on loopback,
// share one segment: ARP floods to the remote, learning fills the FDB,
// and HTTP runs across the overlay.
func TestVXLANLoopbackSegment(t *testing.T) {
	vxlanLoopbackSegment(t, netip.MustParseAddr("127.0.0.1"), 1450)
}

// The same over an IPv6 underlay (::1): the inner MTU is 1430, as a
// Linux vxlan device's over IPv6.
func TestVXLANLoopbackSegmentIPv6(t *testing.T) {
	vxlanLoopbackSegment(t, netip.IPv6Loopback(), 1430)
}

func vxlanLoopbackSegment(t *testing.T, lo netip.Addr, mtu int) {
	a, err := link.NewVXLAN(link.VXLANConfig{Local: netip.AddrPortFrom(lo, 0), VNI: 42, MAC: wire.MAC{2, 0, 0, 0, 0xa, 1}})
	if err != nil {
		t.Fatal(err)
	}
	pa := a.LocalAddr()
	b, err := link.NewVXLAN(link.VXLANConfig{Local: netip.AddrPortFrom(lo, 0), Remotes: []netip.AddrPort{pa}, VNI: 42, MAC: wire.MAC{2, 0, 0, 0, 0xb, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddRemote(b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	sa, sb := stack.New(stack.Options{}), stack.New(stack.Options{})
	t.Cleanup(func() { sa.Close(); sb.Close() })
	if err := sa.AddNIC("vx0", a).AddAddress(netip.MustParsePrefix("192.168.77.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddNIC("vx0", b).AddAddress(netip.MustParsePrefix("192.168.77.2/24")); err != nil {
		t.Fatal(err)
	}
	if a.MTU() != mtu {
		t.Errorf("inner MTU %d, want %d", a.MTU(), mtu)
	}
	ln, err := netconn.Listen(socket.New(sa), "tcp", "192.168.77.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("overlay ", 20000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	nb := socket.New(sb)
	c, err := netconn.Dial(nb, "tcp", "192.168.77.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(got), body) || !strings.HasPrefix(string(got), "HTTP/1.0 200") {
		t.Fatalf("response of %d bytes: %.80q", len(got), got)
	}
	if a.Learned.Load() == 0 || b.Learned.Load() == 0 || a.Flooded.Load() == 0 {
		t.Errorf("learned %d/%d flooded %d", a.Learned.Load(), b.Learned.Load(), a.Flooded.Load())
	}
	if got := a.FDB()[wire.MAC{2, 0, 0, 0, 0xb, 1}]; got != b.LocalAddr() {
		t.Errorf("a learned b's MAC at %v, want %v", got, b.LocalAddr())
	}
	// A datagram for another VNI and one without the I flag are dropped
	// and counted.
	u, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(pa))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pkt := make([]byte, 8+60)
	pkt[0] = 0x08
	binary.BigEndian.PutUint32(pkt[4:], 43<<8)
	u.Write(pkt)
	pkt[0] = 0
	u.Write(pkt)
	// The drops are counted on a's reader goroutine: ping through the
	// overlay afterwards so both datagrams have been read.
	c2, err := netconn.Dial(nb, "tcp", "192.168.77.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if a.WrongVNI.Load() != 1 || a.BadHeader.Load() != 1 {
		t.Errorf("wrong VNI %d, bad header %d; want 1 and 1", a.WrongVNI.Load(), a.BadHeader.Load())
	}
}

type frameChan chan []byte

func (c frameChan) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		c <- append([]byte(nil), f...)
	}
}

// A VXLAN endpoint on a switch (as `sockstack up --vxlan-*` builds it):
// a flooded frame from a remote reaches the switch's host port, the
// endpoint learns the sender's MAC at that exact remote even when
// another remote shares its IP, and the host's answer goes to that
// remote alone.
func TestVXLANJoinSwitchLearnsExactRemote(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	listen := func() *net.UDPConn {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		return u
	}
	rb, rc := listen(), listen()
	addrOf := func(u *net.UDPConn) netip.AddrPort { return u.LocalAddr().(*net.UDPAddr).AddrPort() }
	a, err := link.NewVXLAN(link.VXLANConfig{Local: netip.AddrPortFrom(lo, 0), Remotes: []netip.AddrPort{addrOf(rb), addrOf(rc)}, VNI: 7})
	if err != nil {
		t.Fatal(err)
	}
	sw := link.NewSwitch(a.MTU())
	uplink := a.JoinSwitch(sw)
	hostMAC := wire.MAC{2, 0, 0, 0, 0x77, 1}
	host := sw.Port(hostMAC)
	got := make(frameChan, 8)
	host.Attach(got)
	t.Cleanup(func() { a.Close(); uplink.Close(); host.Close() })

	x := wire.MAC{2, 0, 0, 0, 0xcc, 1}
	frame := func(dst, src wire.MAC) []byte {
		f := make([]byte, 60)
		copy(f[0:], dst[:])
		copy(f[6:], src[:])
		binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental EtherType
		return f
	}
	in := frame(wire.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, x)
	pkt := append([]byte{0x08, 0, 0, 0, 0, 0, 7, 0}, in...)
	if _, err := rc.WriteToUDPAddrPort(pkt, a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if string(f) != string(in) {
			t.Fatalf("host got %x, want %x", f, in)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flooded frame never reached the switch's host port")
	}
	if r := a.FDB()[x]; r != addrOf(rc) {
		t.Fatalf("learned %v at %v, want the sending remote %v", x, r, addrOf(rc))
	}
	reply := frame(x, hostMAC)
	if _, err := host.WriteFrames([][]byte{reply}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := rc.Read(buf)
	if err != nil {
		t.Fatalf("the answer never reached the learnt remote: %v", err)
	}
	if string(buf[8:n]) != string(reply) || binary.BigEndian.Uint32(buf[4:])>>8 != 7 {
		t.Errorf("remote got %x", buf[:n])
	}
	if a.Flooded.Load() != 0 {
		t.Errorf("the answer to a learnt MAC was flooded (%d floods)", a.Flooded.Load())
	}
}

// Remotes must be of the local address's family, as on Linux; an
// unspecified IPv6 local address (a dual-stack socket) takes both.
func TestVXLANUnderlayFamilies(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("[::1]:0")
	for _, c := range []struct {
		local, remote string
		ok            bool
	}{
		{"127.0.0.1:0", "[::1]:4789", false},
		{"[::1]:0", "127.0.0.1:4789", false},
		{"0.0.0.0:0", "[::1]:4789", false},
		{"[::]:0", "127.0.0.1:4789", true},
		{"[::1]:0", "[::1]:4789", true},
	} {
		v, err := link.NewVXLAN(link.VXLANConfig{Local: netip.MustParseAddrPort(c.local), Remotes: []netip.AddrPort{netip.MustParseAddrPort(c.remote)}, VNI: 1})
		if (err == nil) != c.ok {
			t.Errorf("local %s remote %s: %v, want ok %v", c.local, c.remote, err, c.ok)
		}
		if err == nil {
			v.Close()
		}
	}
	a, err := link.NewVXLAN(link.VXLANConfig{Local: v4, VNI: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.AddRemote(v6); err == nil {
		t.Error("an IPv4 endpoint took an IPv6 remote")
	}
}
