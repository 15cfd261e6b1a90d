package trace

import (
	"strings"
	"testing"
)

// filterFrames is every frame the filter tests use: the IPv4 captures
// and the IPv6 set, by name.
func filterFrames() (names []string, frames [][]byte) {
	for _, f := range []struct {
		n string
		b []byte
	}{{"arpRequest", arpRequest}, {"icmpEcho", icmpEcho}, {"dnsQuery", dnsQuery}, {"tcpSYN", tcpSYN},
		{"tcpSYNACK", tcpSYNACK}, {"igmp", igmpRouterAlert}, {"portUnreach", icmpPortUnreach}, {"vlanEchoReply", vlanEchoReply}} {
		names, frames = append(names, f.n), append(frames, f.b)
	}
	for _, f := range v6Frames() {
		names, frames = append(names, f.name), append(frames, f.frame)
	}
	return names, frames
}

// IPv6 in the filter: ip6, icmp6, hosts and nets of either family,
// portrange, ether addresses. Each expression's matches are written
// out, and where tcpdump is installed compared with what it selects
// from the same frames.
func TestFilter6(t *testing.T) {
	names, frames := filterFrames()
	all := tcpdumpLines(t, frames, "")
	if all != nil && len(all) != len(frames) {
		t.Fatalf("tcpdump printed %d lines for %d frames", len(all), len(frames))
	}
	v6icmp := []string{"echo request", "echo reply", "neighbor solicitation", "DAD solicitation", "neighbor advertisement",
		"router solicitation", "router advertisement", "redirect", "port unreachable", "no route", "packet too big",
		"time exceeded", "reassembly timeout", "parameter problem", "prohibited", "beyond scope",
		"address unreachable", "erroneous header field", "unrecognized option", "echo in a first fragment"} // not behind HBH, as libpcap
	for _, c := range []struct {
		expr string
		want []string // nil: not written out, tcpdump only
	}{
		{"icmp6", v6icmp},
		{"icmp", []string{"icmpEcho", "portUnreach"}},
		{"ip6 and udp", []string{"udp", "first fragment", "last fragment", "bad udp checksum"}},
		{"udp", []string{"dnsQuery", "udp", "first fragment", "last fragment", "bad udp checksum"}},
		{"tcp", []string{"tcpSYN", "tcpSYNACK", "tcp syn"}},
		{"port 80", []string{"tcpSYN", "tcpSYNACK", "tcp syn"}},
		{"ip6 and port 80", []string{"tcp syn"}},
		{"ip and tcp port 80", []string{"tcpSYN", "tcpSYNACK"}},
		{"host fe80::2", []string{"neighbor advertisement", "router advertisement", "redirect"}},
		{"src host fe80::1", []string{"neighbor solicitation", "router solicitation", "mldv2 report", "mld query"}},
		{"dst host ff02::1", []string{"router advertisement", "mld query"}},
		{"net ff02::/16", []string{"neighbor solicitation", "DAD solicitation", "router solicitation", "router advertisement", "mldv2 report", "mld query"}},
		{"net 2001:db8::/32 and not icmp6", []string{"udp", "tcp syn", "first fragment", "last fragment", "bad udp checksum",
			"no next header", "tcp after destination options", "unknown protocol"}},
		{"host ::", []string{"DAD solicitation"}},
		{"portrange 5000-5999", []string{"udp", "bad udp checksum"}},
		{"udp portrange 50-60", []string{"dnsQuery"}},
		{"src portrange 79-81", []string{"tcpSYNACK"}},
		{"ether host 52:54:00:ab:cd:ef", nil},
		{"ether src 52:54:00:12:34:56", nil},
		{"ether dst 33:33:00:00:00:01 or ether dst 01:00:5e:00:00:fb", []string{"igmp", "router advertisement", "mld query"}},
		{"ip6 and not ip6 host 2001:db8::1", nil},
		{"ip6 or arp", nil},
		{"not ip6", []string{"arpRequest", "icmpEcho", "dnsQuery", "tcpSYN", "tcpSYNACK", "igmp", "portUnreach", "vlanEchoReply"}},
		{"vlan", []string{"vlanEchoReply"}},
		{"vlan 100", []string{"vlanEchoReply"}},
		{"vlan 10", []string{}},
		{"vlan and icmp", []string{"vlanEchoReply"}},
		{"vlan 100 and host 192.168.1.1 and ether src 52:54:00:12:34:56", []string{"vlanEchoReply"}},
		{"icmp or vlan", []string{"icmpEcho", "portUnreach", "vlanEchoReply"}},
		{"not vlan and icmp", []string{}}, // after vlan, icmp looks inside the tag: nothing untagged passes
		{"vlan and ip6", []string{}},
	} {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		var got []string
		var gotLines []string
		for i, fr := range frames {
			if f.Match(fr, true) {
				got = append(got, names[i])
				if all != nil {
					gotLines = append(gotLines, all[i])
				}
			}
			// The same verdict on a bare packet, but for Ethernet matches.
			if !strings.Contains(c.expr, "ether") && !strings.Contains(c.expr, "vlan") && names[i] != "arpRequest" && names[i] != "vlanEchoReply" {
				if f.Match(fr[14:], false) != f.Match(fr, true) {
					t.Errorf("%q: bare %s differs", c.expr, names[i])
				}
			}
		}
		if c.want != nil && strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%q matches\n %v\nwant\n %v", c.expr, got, c.want)
		}
		if all == nil {
			continue
		}
		live := tcpdumpLines(t, frames, c.expr)
		if strings.Join(live, "\n") != strings.Join(gotLines, "\n") {
			t.Errorf("%q: tcpdump selects\n %s\nwe select\n %s", c.expr, strings.Join(live, "\n "), strings.Join(gotLines, "\n "))
		}
	}
	if all == nil {
		t.Log("tcpdump not installed: compared with the written-out matches only")
	}
}
