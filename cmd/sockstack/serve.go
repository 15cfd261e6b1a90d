package main

import (
	"errors"
	"slices"
	"strings"

	"github.com/sockstack/sockstack/apps"
	"github.com/sockstack/sockstack/socket"
)

// serviceOrder is the order "all" starts the services in.
var serviceOrder = []string{"echo", "discard", "daytime", "chargen", "chat", "http", "tftp", "dns"}

// startServices starts a list of services in the apps registry's syntax
// ("echo,http:8080,tftp"; "all" for every service of serviceOrder) on n.
// It returns what stops them all, and the list as started.
func startServices(n *socket.Net, list string, opts apps.Options) (func() error, []string, error) {
	known := apps.Names(nil)
	var items []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == "all":
			for _, k := range serviceOrder {
				if slices.Contains(known, k) {
					items = append(items, k)
				}
			}
		default:
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		return nil, nil, errors.New("no services given")
	}
	stop, err := apps.Start(n, strings.Join(items, ","), opts)
	if err != nil {
		return nil, nil, err
	}
	return func() error { stop(); return nil }, items, nil
}
