package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sockstack/sockstack/stack"
)

// --route and --rule: routes and policy rules in ip route / ip rule
// words, for split tunnels and marked sockets (stack/route.go).

// parseTable reads a table: a number or main, default, local.
func parseTable(s string) (uint32, error) {
	switch s {
	case "main":
		return stack.TableMain, nil
	case "default":
		return stack.TableDefault, nil
	case "local":
		return stack.TableLocal, nil
	}
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("table %q: want a number or main, default, local", s)
	}
	return uint32(n), nil
}

func parseU32(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a number (0x.. for hex)", what, s)
	}
	return uint32(n), nil
}

// parsePrefix reads a prefix, an address (a host prefix) or "all"/"default".
func parsePrefix(s string) (netip.Prefix, error) {
	switch s {
	case "all", "default":
		return netip.Prefix{}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: want a prefix or an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseRoute reads "PREFIX [via GW] [dev NAME] [table T] [metric N]
// [src ADDR] [mtu N]"; dev defaults to def, PREFIX "default" to 0.0.0.0/0
// (::/0 with an IPv6 gateway).
func parseRoute(st *stack.Stack, def *stack.NIC, spec string) (stack.Route, error) {
	w := strings.Fields(spec)
	if len(w) == 0 {
		return stack.Route{}, fmt.Errorf("empty route")
	}
	r := stack.Route{NIC: def}
	dflt := w[0] == "default"
	if !dflt {
		p, err := parsePrefix(w[0])
		if err != nil {
			return r, err
		}
		r.Prefix = p
	}
	for i := 1; i < len(w); i += 2 {
		if i+1 >= len(w) {
			return r, fmt.Errorf("%q needs a value", w[i])
		}
		k, v := w[i], w[i+1]
		var err error
		switch k {
		case "via":
			r.Gateway, err = netip.ParseAddr(v)
		case "dev":
			if r.NIC = st.NICByName(v); r.NIC == nil {
				err = fmt.Errorf("no interface %q", v)
			}
		case "table":
			r.Table, err = parseTable(v)
		case "metric":
			r.Metric, err = parseU32("metric", v)
		case "src":
			r.Src, err = netip.ParseAddr(v)
		case "mtu":
			var n uint32
			n, err = parseU32("mtu", v)
			r.MTU = int(n)
		default:
			err = fmt.Errorf("unknown word %q (want via, dev, table, metric, src, mtu)", k)
		}
		if err != nil {
			return r, err
		}
	}
	if dflt {
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Gateway.Is6() {
			r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	}
	if r.NIC == nil {
		return r, fmt.Errorf("no interface for the route")
	}
	return r, nil
}

// parseRule reads ip rule's words: "[pref N] [not] [from P] [to P]
// [fwmark M[/MASK]] [iif D] [oif D] (lookup T [suppress_prefixlength N]
// | blackhole | unreachable | prohibit)".
func parseRule(spec string) (stack.Rule, error) {
	var r stack.Rule
	w := strings.Fields(spec)
	action := false
	for i := 0; i < len(w); i++ {
		k := w[i]
		switch k {
		case "not":
			r.Invert = true
			continue
		case "blackhole", "unreachable", "prohibit":
			r.Action = map[string]stack.RuleAction{"blackhole": stack.RuleBlackhole, "unreachable": stack.RuleUnreachable, "prohibit": stack.RuleProhibit}[k]
			action = true
			continue
		}
		if i+1 >= len(w) {
			return r, fmt.Errorf("%q needs a value", k)
		}
		i++
		v := w[i]
		var err error
		switch k {
		case "pref", "priority", "preference":
			r.Priority, err = parseU32("pref", v)
		case "from":
			r.From, err = parsePrefix(v)
		case "to":
			r.To, err = parsePrefix(v)
		case "fwmark":
			m, mask, has := strings.Cut(v, "/")
			if r.Mark, err = parseU32("fwmark", m); err == nil && has {
				r.Mask, err = parseU32("fwmark mask", mask)
			}
		case "iif":
			r.IIF = v
		case "oif":
			r.OIF = v
		case "lookup", "table":
			r.Table, err = parseTable(v)
			action = true
		case "suppress_prefixlength":
			var n uint32
			n, err = parseU32("suppress_prefixlength", v)
			r.Suppress, r.SuppressPrefixLen = true, int(n)
		default:
			err = fmt.Errorf("unknown word %q", k)
		}
		if err != nil {
			return r, err
		}
	}
	if !action {
		return r, fmt.Errorf("no action: want lookup TABLE, blackhole, unreachable or prohibit")
	}
	return r, nil
}

// applyRouting adds the --route and --rule values to st; nic is the
// default device of a route.
func applyRouting(st *stack.Stack, nic *stack.NIC, routes, rules []string) error {
	for _, s := range routes {
		r, err := parseRoute(st, nic, s)
		if err != nil {
			return fmt.Errorf("--route %q: %v", s, err)
		}
		st.AddRoute(r)
	}
	for _, s := range rules {
		r, err := parseRule(s)
		if err != nil {
			return fmt.Errorf("--rule %q: %v", s, err)
		}
		if err := st.AddRule(r); err != nil {
			return fmt.Errorf("--rule %q: %v", s, err)
		}
	}
	return nil
}
