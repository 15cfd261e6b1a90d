package interop

import (
	"strings"
	"testing"
	"time"
)

// sockstack ping prints a router's ICMP errors as iputils does: the
// kernel in the namespace routes 10.99.0.0/24 to a neighbour that never
// answers ARP, so a request with TTL 1 comes back as Time to live
// exceeded and one with a TTL to spare as Destination Host Unreachable,
// both from the router 10.77.0.1.
func TestInteropToolPingShowsICMPErrors(t *testing.T) {
	l := newLab(t)
	l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	l.run(t, 5*time.Second, nil, "ip", "route", "add", "10.99.0.0/24", "via", "10.77.0.3")
	args := append([]string{"ping"}, l.tapArgs()...)
	args = append(args, "--gw", kernelIP.String(), "-c", "1", "-W", "5")

	out, err := l.sockstack(t, 30*time.Second, nil, append(args, "-t", "1", "10.99.0.1")...)
	if err == nil {
		t.Errorf("ping with no reply succeeded:\n%s", out)
	}
	wantContains(t, "ping -t 1", out, "From 10.77.0.1 icmp_seq=1 Time to live exceeded",
		"1 packets transmitted, 0 received, +1 errors, 100% packet loss")
	if n := strings.Count(out, "icmp_seq=1 "); n != 1 {
		t.Errorf("the error is shown %d times:\n%s", n, out)
	}
	if strings.Contains(out, "exit status") {
		t.Errorf("an internal message after the statistics:\n%s", out)
	}

	out, _ = l.sockstack(t, 30*time.Second, nil, append(args, "10.99.0.1")...)
	wantContains(t, "ping through the router", out, "From 10.77.0.1 icmp_seq=1 Destination Host Unreachable",
		"1 packets transmitted, 0 received, +1 errors, 100% packet loss")
	if n := strings.Count(out, "icmp_seq=1 "); n != 1 {
		t.Errorf("the error is shown %d times:\n%s", n, out)
	}
}
