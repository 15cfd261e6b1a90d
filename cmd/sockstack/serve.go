package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sockstack/sockstack/apps/chargen"
	"github.com/sockstack/sockstack/apps/daytime"
	"github.com/sockstack/sockstack/apps/discard"
	"github.com/sockstack/sockstack/apps/echo"
	"github.com/sockstack/sockstack/socket"
)

// serviceStarters are the services `--serve` knows. The apps registry
// (apps.Start) replaces this table once it exists; until then the
// services that have landed are started directly.
var serviceStarters = map[string]func(n *socket.Net, root string) (func() error, error){
	"echo": func(n *socket.Net, _ string) (func() error, error) {
		s, err := echo.Serve(n, netip.AddrPortFrom(netip.IPv4Unspecified(), echo.Port), echo.Config{})
		return closer(s, err)
	},
	"discard": func(n *socket.Net, _ string) (func() error, error) {
		s, err := discard.Serve(n, netip.AddrPortFrom(netip.IPv4Unspecified(), discard.Port), discard.Config{})
		return closer(s, err)
	},
	"daytime": func(n *socket.Net, _ string) (func() error, error) {
		s, err := daytime.Serve(n, netip.AddrPortFrom(netip.IPv4Unspecified(), daytime.Port), daytime.Config{})
		return closer(s, err)
	},
	"chargen": func(n *socket.Net, _ string) (func() error, error) {
		s, err := chargen.Serve(n, netip.AddrPortFrom(netip.IPv4Unspecified(), chargen.Port), chargen.Config{})
		return closer(s, err)
	},
}

// serviceOrder is the order "all" starts them in.
var serviceOrder = []string{"echo", "discard", "daytime", "chargen", "chat", "http", "tftp"}

func closer[S interface{ Close() error }](s S, err error) (func() error, error) {
	if err != nil {
		return nil, err
	}
	return s.Close, nil
}

// startServices starts a comma-separated list of services ("all" for
// every known one) on n; root is the directory http and tftp serve. It
// returns one function that stops them all, and their names.
func startServices(n *socket.Net, list, root string) (func() error, []string, error) {
	var names []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == "all":
			for _, k := range serviceOrder {
				if serviceStarters[k] != nil {
					names = append(names, k)
				}
			}
		default:
			names = append(names, s)
		}
	}
	var stops []func() error
	stopAll := func() error {
		var err error
		for i := len(stops) - 1; i >= 0; i-- {
			err = errors.Join(err, stops[i]())
		}
		return err
	}
	for _, name := range names {
		start := serviceStarters[name]
		if start == nil {
			stopAll()
			return nil, nil, fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(knownServices(), ", "))
		}
		stop, err := start(n, root)
		if err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("service %s: %w", name, err)
		}
		stops = append(stops, stop)
	}
	return stopAll, names, nil
}

func knownServices() []string {
	var out []string
	for _, k := range serviceOrder {
		if serviceStarters[k] != nil {
			out = append(out, k)
		}
	}
	return out
}
