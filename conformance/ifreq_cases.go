package conformance

import (
	"fmt"
	"strings"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// Interface ioctls with a struct ifreq (socket/ifreq.go) on the loopback
// interface, which both sides have as "lo" with index 1: names and
// indexes, flags, MTU, hardware address, IPv4 address and mask, and the
// errnos of unknown names, of families that do not answer the address
// requests, and of requests nobody knows. SIOCGIFCONF lists every
// interface; only lo's entries are compared (the host has others).

type ifreqer interface {
	IoctlIfreq(req uint, r *socket.Ifreq) error
	IfConf() ([]socket.Ifreq, error)
}

var ifreqName = map[uint]string{
	socket.SIOCGIFNAME: "SIOCGIFNAME", socket.SIOCGIFINDEX: "SIOCGIFINDEX", socket.SIOCGIFFLAGS: "SIOCGIFFLAGS",
	socket.SIOCGIFMTU: "SIOCGIFMTU", socket.SIOCGIFMETRIC: "SIOCGIFMETRIC", socket.SIOCGIFTXQLEN: "SIOCGIFTXQLEN",
	socket.SIOCGIFHWADDR: "SIOCGIFHWADDR", socket.SIOCGIFADDR: "SIOCGIFADDR", socket.SIOCGIFNETMASK: "SIOCGIFNETMASK",
	socket.SIOCGIFBRDADDR: "SIOCGIFBRDADDR", socket.SIOCGIFDSTADDR: "SIOCGIFDSTADDR",
}

// Ifreq logs one ioctl with a struct ifreq naming name (or, for
// SIOCGIFNAME, index): the field the request fills, or the error.
func (t *T) Ifreq(s sockapi.Sock, req uint, name string, index int) {
	v, ok := s.(ifreqer)
	if !ok {
		t.Logf("%s: no ioctl on %T", ifreqName[req], s)
		return
	}
	r := socket.Ifreq{Name: name, Index: index}
	step := fmt.Sprintf("%s %q", ifreqName[req], name)
	if req == socket.SIOCGIFNAME {
		step = fmt.Sprintf("SIOCGIFNAME %d", index)
	}
	if err := v.IoctlIfreq(req, &r); err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	var got string
	switch req {
	case socket.SIOCGIFNAME:
		got = r.Name
	case socket.SIOCGIFINDEX:
		got = fmt.Sprint(r.Index)
	case socket.SIOCGIFFLAGS:
		got = fmt.Sprintf("%#x", r.Flags)
	case socket.SIOCGIFMTU:
		got = fmt.Sprint(r.MTU)
	case socket.SIOCGIFMETRIC:
		got = fmt.Sprint(r.Metric)
	case socket.SIOCGIFTXQLEN:
		got = fmt.Sprint(r.TxQLen)
	case socket.SIOCGIFHWADDR:
		got = fmt.Sprintf("family %d % x", r.HWFamily, r.HWAddr)
	default:
		got = r.Addr.String()
	}
	t.Logf("%s: %s", step, got)
}

func ifreqCases() []Case {
	all := []uint{socket.SIOCGIFINDEX, socket.SIOCGIFFLAGS, socket.SIOCGIFMTU, socket.SIOCGIFMETRIC, socket.SIOCGIFTXQLEN,
		socket.SIOCGIFHWADDR, socket.SIOCGIFADDR, socket.SIOCGIFNETMASK, socket.SIOCGIFBRDADDR, socket.SIOCGIFDSTADDR}
	each := func(t *T, s sockapi.Sock, name string) {
		for _, r := range all {
			t.Ifreq(s, r, name, 0)
		}
	}
	return []Case{
		{"ifreq/lo on udp", false, func(t *T) {
			s := t.UDP()
			each(t, s, "lo")
			t.Ifreq(s, socket.SIOCGIFNAME, "", 1)
		}},
		{"ifreq/lo on tcp", false, func(t *T) { each(t, t.TCP(), "lo") }},
		{"ifreq/lo on udp6", false, func(t *T) { each(t, t.Socket6(DGRAM), "lo") }},
		{"ifreq/lo on unix", false, func(t *T) {
			each(t, t.Socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0), "lo")
		}},
		{"ifreq/unknown interface", false, func(t *T) {
			s := t.UDP()
			each(t, s, "nosuch0")
			t.Ifreq(s, socket.SIOCGIFINDEX, "", 0)
			t.Ifreq(s, socket.SIOCGIFINDEX, "lo"+strings.Repeat("x", 20), 0)
			t.Ifreq(s, socket.SIOCGIFNAME, "", 0)
			t.Ifreq(s, socket.SIOCGIFNAME, "", 99999)
			t.Ifreq(s, socket.SIOCGIFNAME, "", -1)
		}},
		{"ifreq/SIOCGIFCONF", false, func(t *T) {
			s := t.UDP()
			v, ok := s.(ifreqer)
			if !ok {
				t.Logf("no ioctl on %T", s)
				return
			}
			rs, err := v.IfConf()
			if err != nil {
				t.Logf("SIOCGIFCONF: %s", ErrName(err))
				return
			}
			for _, r := range rs {
				if r.Name == "lo" {
					t.Logf("lo: %s", r.Addr)
				}
			}
		}},
	}
}
