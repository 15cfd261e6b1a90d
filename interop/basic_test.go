package interop

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/echo"
)

// startEcho runs sockstack's echo service (TCP and UDP port 7).
func startEcho(t *testing.T, h *host) {
	t.Helper()
	s, err := echo.Serve(h.net, netip.AddrPortFrom(netip.IPv4Unspecified(), echo.Port), echo.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
}

func wantContains(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Fatalf("%s: output lacks %q:\n%s", what, s, out)
		}
	}
}

// TestInteropPing: the kernel's ping against sockstack, small and
// fragmented (a 4000-byte echo is fragmented by the kernel, reassembled by
// sockstack, and the reply fragmented by sockstack, reassembled by the
// kernel).
func TestInteropPing(t *testing.T) {
	l := newLab(t)
	needTools(t, "ping")
	h := l.startStack("")
	t.Run("iputils_ping_to_sockstack", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "ping", "-c", "3", "-i", "0.2", "-W", "2", stackIP.String())
		wantContains(t, "ping", out, "3 packets transmitted, 3 received", "ttl=64")
	})
	t.Run("iputils_ping_-s_4000_fragments_both_ways", func(t *testing.T) {
		reasm0, frag0 := h.st.Stats().IP.ReasmOKs.Load(), h.st.Stats().IP.FragCreates.Load()
		out := l.run(t, 15*time.Second, nil, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", stackIP.String())
		wantContains(t, "ping -s 4000", out, "3 packets transmitted, 3 received", "4008 bytes from")
		if got := h.st.Stats().IP.ReasmOKs.Load() - reasm0; got < 3 {
			t.Errorf("sockstack reassembled %d datagrams, want 3", got)
		}
		if got := h.st.Stats().IP.FragCreates.Load() - frag0; got < 9 {
			t.Errorf("sockstack created %d fragments for 3 replies of 4028 bytes, want >= 9", got)
		}
	})
}

// TestInteropSockstackPing: `sockstack ping` on the TAP against the kernel.
func TestInteropSockstackPing(t *testing.T) {
	l := newLab(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"sockstack_ping_to_kernel", nil, "64 bytes from 10.77.0.1"},
		{"sockstack_ping_-s_4000_to_kernel", []string{"-s", "4000"}, "4008 bytes from 10.77.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"ping"}, l.tapArgs()...)
			args = append(args, "-c", "3", "-i", "0.2")
			args = append(args, c.args...)
			args = append(args, kernelIP.String())
			out, err := l.sockstack(t, 20*time.Second, nil, args...)
			if err != nil {
				t.Fatalf("sockstack ping: %v\n%s", err, out)
			}
			wantContains(t, "sockstack ping", out, "3 packets transmitted, 3 received, 0% packet loss", c.want, "ttl=64", "rtt min/avg/max/mdev")
		})
	}
}

const pyUDPClient = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(sys.argv[1].encode(), ("10.77.0.2", int(sys.argv[2])))
data, addr = s.recvfrom(65536)
print("Received", data.decode(), "from", addr)
`

// TestInteropUDPEcho: UDP echo both ways.
func TestInteropUDPEcho(t *testing.T) {
	l := newLab(t)
	h := l.startStack("")
	startEcho(t, h)
	t.Run("socat_udp_client_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "socat")
		out := l.run(t, 10*time.Second, []byte("hello over udp\n"), "socat", "-t", "2", "-", "UDP:10.77.0.2:7")
		wantContains(t, "socat", out, "hello over udp")
	})
	t.Run("python3_udp_client_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "python3")
		out := l.run(t, 10*time.Second, nil, "python3", "-c", pyUDPClient, "Hello, world", "7")
		wantContains(t, "python3", out, "Received Hello, world from ('10.77.0.2', 7)")
	})
	t.Run("python3_udp_8000_bytes_fragmented_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "python3")
		msg := strings.Repeat("0123456789", 800)
		out := l.run(t, 10*time.Second, nil, "python3", "-c", pyUDPClient, msg, "7")
		wantContains(t, "python3", out, "Received "+msg+" from")
	})
}

// TestInteropSockstackUDPEcho: `sockstack echo --udp` against a kernel
// socat echo server.
func TestInteropSockstackUDPEcho(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	l.background(t, "socat", "UDP-RECVFROM:7,fork,reuseaddr", "PIPE")
	l.waitListen(t, "udp", 7)
	t.Run("sockstack_echo_udp_to_kernel_socat", func(t *testing.T) {
		args := append([]string{"echo", "--udp"}, l.tapArgs()...)
		out, err := l.sockstack(t, 20*time.Second, []byte("first line\nsecond line\n"), append(args, kernelIP.String())...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantContains(t, "sockstack echo --udp", out, "first line\nsecond line\n")
	})
}
