package trace

import "testing"

func TestFilter(t *testing.T) {
	frames := map[string][]byte{
		"arpRequest": arpRequest, "icmpEcho": icmpEcho, "dnsQuery": dnsQuery, "tcpSYN": tcpSYN,
		"tcpSYNACK": tcpSYNACK, "vlanEchoReply": vlanEchoReply, "igmp": igmpRouterAlert, "portUnreach": icmpPortUnreach,
	}
	for _, c := range []struct {
		expr string
		want []string
	}{
		{"", []string{"arpRequest", "icmpEcho", "dnsQuery", "tcpSYN", "tcpSYNACK", "vlanEchoReply", "igmp", "portUnreach"}},
		{"tcp", []string{"tcpSYN", "tcpSYNACK"}},
		{"udp", []string{"dnsQuery"}},
		// As in tcpdump, a VLAN-tagged frame is not "ip" without "vlan".
		{"icmp", []string{"icmpEcho", "portUnreach"}},
		{"arp", []string{"arpRequest"}},
		{"ip", []string{"icmpEcho", "dnsQuery", "tcpSYN", "tcpSYNACK", "igmp", "portUnreach"}},
		{"port 80", []string{"tcpSYN", "tcpSYNACK"}},
		{"port 53", []string{"dnsQuery"}},
		{"port 9", nil}, // only inside an ICMP quote: not a port match
		{"host 224.0.0.251", []string{"igmp"}},
		{"host 192.168.1.1 and icmp", []string{"icmpEcho", "portUnreach"}},
		{"not ip", []string{"arpRequest", "vlanEchoReply"}},
		{"udp or tcp and port 80", []string{"tcpSYN", "tcpSYNACK"}}, // (udp or tcp) and port 80
		{"udp or (tcp and port 80)", []string{"dnsQuery", "tcpSYN", "tcpSYNACK"}},
		{"port 53 or 80", []string{"dnsQuery", "tcpSYN", "tcpSYNACK"}},
		{"dst port 80", []string{"tcpSYN"}},
		{"src port 80", []string{"tcpSYNACK"}},
		{"!tcp && !arp", []string{"icmpEcho", "dnsQuery", "vlanEchoReply", "igmp", "portUnreach"}},
		{"arp host 192.168.1.10", []string{"arpRequest"}},
		{"tcp and port 80 and host 192.168.1.10", []string{"tcpSYN", "tcpSYNACK"}},
		{"udp port 80", nil},
		{"  TCP   port 80 ", []string{"tcpSYN", "tcpSYNACK"}},
	} {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		want := map[string]bool{}
		for _, n := range c.want {
			want[n] = true
		}
		for name, fr := range frames {
			if got := f.Match(fr, true); got != want[name] {
				t.Errorf("%q on %s: %v, want %v", c.expr, name, got, want[name])
			}
			if name != "arpRequest" && name != "vlanEchoReply" {
				hl := 14
				if got := f.Match(fr[hl:], false); got != want[name] {
					t.Errorf("%q on bare %s: %v, want %v", c.expr, name, got, want[name])
				}
			}
		}
	}
	f, _ := ParseFilter("  tcp  port 80 ")
	if f.String() != "tcp port 80" {
		t.Errorf("String() = %q", f.String())
	}
}

func TestFilterErrors(t *testing.T) {
	for _, e := range []string{"tpc", "host", "host 1.2.3", "host fe80::1%eth0", "ip host ::1", "arp host ::1",
		"net 2001:db8::1/32", "portrange 1", "portrange a-b", "ether host 1:2:3", "ether net 1:2:3:4:5:6", "icmp6 port 80", "ether port 80", "ip6 port 80", "vlan 4096", "vlan and vlan", "port", "port 65536", "port -1", "port x", "or",
		"(tcp", "tcp)", "tcp and", "not", "icmp port 80", "tcp host 1.2.3.4", "net 10.0.0.1/8", "host 192.168.1.1 icmp"} {
		if _, err := ParseFilter(e); err == nil {
			t.Errorf("ParseFilter(%q) accepted", e)
		}
	}
}

func TestFilterMalformed(t *testing.T) {
	f, _ := ParseFilter("port 80")
	for n := 0; n < len(tcpSYN); n++ {
		want := n >= 14+20+4 // ports readable
		if got := f.Match(tcpSYN[:n], true); got != want {
			t.Errorf("%d-byte prefix: %v, want %v", n, got, want)
		}
	}
	var zero Filter
	if !zero.Match(nil, true) {
		t.Error("zero Filter must match everything")
	}
	h, _ := ParseFilter("host 192.168.1.1")
	if h.Match(tcpSYN[:20], true) || h.Match([]byte{0x60}, false) {
		t.Error("host matched a frame without an IPv4 header")
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"tcp and port 80", "not (src net 10.0.0 or dst host 1.2.3.4)", "port 53 or 67 and !udp", "((", "src or dst port 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err == nil {
			flt.Match(tcpSYN, true)
			flt.Match(arpRequest, true)
		}
	})
}
