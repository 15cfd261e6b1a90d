package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on a locked thread moved into namespace netns
// (/run/netns/NAME), or directly for "". Sockets opened there stay in
// that namespace; the caller's threads stay where they are.
func inNetns(netns string, fn func() error) error {
	if netns == "" {
		return fn()
	}
	if strings.ContainsAny(netns, "/\x00") || netns == "." || netns == ".." {
		return fmt.Errorf("bad network namespace name %q", netns)
	}
	target, err := unix.Open("/run/netns/"+netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("no network namespace %s (ip netns add %s)", netns, netns)
	}
	defer unix.Close(target)
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("enter network namespace %s: %w (needs root or CAP_SYS_ADMIN)", netns, err)
			}
			res <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			res <- errors.Join(ferr, err)
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		res <- ferr
	}()
	return <-res
}

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
