package main

import (
	"net"

	"github.com/sockstack/sockstack/link"
)

// inNetns runs fn on a thread inside namespace netns (/run/netns/NAME),
// or directly for "" (link.InNetns).
func inNetns(netns string, fn func() error) error { return link.InNetns(netns, fn) }

// interfaceExists tells whether a network interface is in namespace netns.
func interfaceExists(name, netns string) bool {
	found := false
	inNetns(netns, func() error {
		_, err := net.InterfaceByName(name)
		found = err == nil
		return nil
	})
	return found
}
