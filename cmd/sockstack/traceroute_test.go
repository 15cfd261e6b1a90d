package main

import (
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// mplsStack is an RFC 4884 extension structure with one MPLS label
// stack object (RFC 4950) holding the given entries.
func mplsStack(entries ...uint32) []byte {
	b := []byte{0x20, 0, 0, 0, 0, byte(4 + 4*len(entries)), 1, 1}
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, e)
	}
	binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
	return b
}

func TestTracerouteExtText(t *testing.T) {
	two := mplsStack(24006<<12|0<<9|0<<8|1, 22<<12|5<<9|1<<8|255)
	other := append(mplsStack(16<<12|1<<8|1), 0, 8, 2, 3, 0xde, 0xad, 0xbe, 0xef)
	for _, c := range []struct {
		ext  []byte
		want string
	}{
		{mplsStack(16<<12 | 1<<8 | 1), " <MPLS:L=16,E=0,S=1,T=1>"},
		{two, " <MPLS:L=24006,E=0,S=0,T=1/L=22,E=5,S=1,T=255>"},
		{other, " <MPLS:L=16,E=0,S=1,T=1> <2/3:deadbeef>"},
		{two[:10], ""},                          // the object runs past the structure
		{two[:3], ""},                           // not even the header
		{[]byte{0x20, 0, 0, 0, 0, 2, 1, 1}, ""}, // an object shorter than its header
	} {
		if got := extText(c.ext); got != c.want {
			t.Errorf("%x: %q, want %q", c.ext, got, c.want)
		}
	}
	for cut := range two {
		extText(two[:cut]) // never panics
	}
}

// inject4884 sends, from a raw socket of api, a time exceeded to
// 127.0.0.1 from 127.0.0.1 quoting a 128-byte UDP datagram from
// 127.0.0.1:sport to 127.0.0.1:dport, with ext after it (RFC 4884).
func inject4884(t *testing.T, api sockapi.API, sport, dport int, ext []byte) {
	t.Helper()
	r, err := api.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	orig := make([]byte, 128)
	orig[0], orig[8], orig[9] = 0x45, 1, socket.IPPROTO_UDP
	binary.BigEndian.PutUint16(orig[2:], 128)
	copy(orig[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	binary.BigEndian.PutUint16(orig[10:], wire.Checksum(orig[:20]))
	binary.BigEndian.PutUint16(orig[20:], uint16(sport))
	binary.BigEndian.PutUint16(orig[22:], uint16(dport))
	binary.BigEndian.PutUint16(orig[24:], 108)
	icmp := append(append([]byte{11, 0, 0, 0, 0, 32, 0, 0}, orig...), ext...)
	binary.BigEndian.PutUint16(icmp[2:], wire.Checksum(icmp))
	p := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, socket.IPPROTO_ICMP, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}, icmp...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:20]))
	if _, err := r.SendTo(p, 0, socket.Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
}

// A time exceeded carrying an MPLS label stack, on sockstack and on the
// kernel: traceroute's socket (IP_RECVERR_RFC4884 on) finds the
// extension where ee_rfc4884 says and words it as traceroute -e; the
// hop does not end the trace. Without the option the labels are not
// shown.
func TestTracerouteMPLSBothSides(t *testing.T) {
	st := stack.New(stack.Options{})
	defer st.Close()
	apis := map[string]sockapi.API{"sockstack": sockapi.Stack(socket.New(st))}
	if os.Geteuid() == 0 {
		apis["kernel"] = sockapi.Host()
	} else {
		t.Log("not root: the kernel's side (a raw socket) is left out")
	}
	for name, api := range apis {
		for _, on := range []bool{true, false} {
			s, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1)
			if on {
				if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR_RFC4884, 1); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			if err := s.Bind(socket.Inet("127.0.0.1", 0)); err != nil {
				t.Fatal(err)
			}
			sa, _ := s.GetSockName()
			s.SetTimeout(5 * time.Second)
			inject4884(t, api, int(sa.(*socket.SockaddrInet).AddrPort.Port()), 33435, mplsStack(299824<<12|1<<8|1))
			q, ok := awaitHop(context.Background(), s, 33435, make([]byte, 64), make([]byte, 2048))
			s.Close()
			if !ok {
				t.Fatalf("%s: no answer", name)
			}
			want := "127.0.0.1 (127.0.0.1)"
			if on {
				want += " <MPLS:L=299824,E=0,S=1,T=1>"
			}
			if got := q.hopText(true); got != want {
				t.Errorf("%s, option %v: %q, want %q", name, on, got, want)
			}
			if last, _ := q.final(); last {
				t.Errorf("%s: a time exceeded ended the trace", name)
			}
		}
	}
}

// On the built-in virtual network the server is one hop away: its port
// unreachable ends the trace at hop 1.
func TestTracerouteCLI(t *testing.T) {
	out, err := runCLI(t, "", "traceroute", "-e", "-w", "5", "server")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "traceroute to server (10.0.0.2), 30 hops max, 60 byte packets\n") ||
		!strings.Contains(out, "\n 1  10.0.0.2 (10.0.0.2)  ") || strings.Contains(out, "\n 2 ") {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := runCLI(t, "", "traceroute", "-m", "0", "server"); err == nil {
		t.Fatal("-m 0 accepted")
	}
}
