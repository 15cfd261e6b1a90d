package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

func netipPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }

// sockFamily is the socket family that reaches a.
func sockFamily(a netip.Addr) int {
	if a.Unmap().Is4() {
		return socket.AF_INET
	}
	return socket.AF_INET6
}

// resolveIn turns a host name or an IPv4 / IPv6 literal ("fe80::1%eth0"
// keeps its zone) into an address. family 4 or 6 takes only that
// family's addresses (as ping -4 / -6); 0 prefers IPv4 and falls back
// to IPv6 for a name that has only IPv6 addresses.
func (e *env) resolveIn(name string, family int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		if a.Is4In6() {
			a = a.Unmap()
		}
		switch {
		case family == 4 && !a.Is4():
			return netip.Addr{}, fmt.Errorf("%s: Address family for hostname not supported", name)
		case family == 6 && a.Is4():
			return netip.Addr{}, fmt.Errorf("%s: Address family for hostname not supported", name)
		}
		if a.Zone() != "" && e.st != nil && e.st.NICByName(a.Zone()) == nil {
			return netip.Addr{}, fmt.Errorf("%s: no interface %s", name, a.Zone())
		}
		return a, nil
	}
	if name == "" || strings.ContainsAny(name, " /:[]%") {
		return netip.Addr{}, fmt.Errorf("%q is not a host name or IP address", name)
	}
	fams := []int{4, 6}
	if family != 0 {
		fams = []int{family}
	}
	for _, fam := range fams {
		if e.net == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, fmt.Sprintf("ip%d", fam), name)
			cancel()
			if err == nil && len(addrs) > 0 {
				return addrs[0].Unmap(), nil
			}
			continue
		}
		af := socket.AF_INET
		if fam == 6 {
			af = socket.AF_INET6
		}
		ai, err := e.net.GetAddrInfo(name, "", af, socket.SOCK_STREAM, 0, 0)
		if err == nil && len(ai) > 0 {
			return ai[0].Addr.AddrPort.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: Name or service not known", name)
}

// dadWait bounds how long a tool waits for its link-local address.
const dadWait = 3 * time.Second

// ready6 turns IPv6 on for an IPv6 destination on a TAP NIC that has it
// off (its link-local address, for fe80::1%tap0 and neighbour
// discovery), and waits until duplicate address detection has let
// every address go (a tentative source cannot be used). A NIC with
// IPv6 on already, the kernel and IPv4 destinations are left alone.
func (e *env) ready6(dst netip.Addr) {
	if e.nic == nil || !dst.Is6() || dst.Is4In6() || dst.IsLoopback() {
		return
	}
	on := false
	for _, a := range e.nic.Addrs6() {
		on = on || a.Prefix.Addr().IsLinkLocalUnicast()
	}
	if !on && e.nic.EnableIPv6() != nil {
		return
	}
	// IPv6 may be on already (an IPv6 --addr), its addresses still
	// under duplicate address detection: a tentative address cannot be
	// a source, so wait for them either way.
	deadline := time.Now().Add(dadWait)
	for time.Now().Before(deadline) {
		tentative := false
		for _, a := range e.nic.Addrs6() {
			tentative = tentative || a.Tentative
		}
		if !tentative {
			return
		}
		// The stack has no DAD-done notification: look again shortly.
		time.Sleep(20 * time.Millisecond)
	}
}

// zoneIndex is the interface index a zone names: a NIC of st, or of the
// host kernel when st is nil; a number is taken as it is. 0: none.
func zoneIndex(st *stack.Stack, zone string) int {
	if zone == "" {
		return 0
	}
	if n, err := strconv.Atoi(zone); err == nil && n > 0 {
		return n
	}
	if st != nil {
		if n := st.NICByName(zone); n != nil {
			return n.ID()
		}
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return ifi.Index
	}
	return 0
}
