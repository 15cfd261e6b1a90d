package link

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on an OS thread that is inside the named network
// namespace (/run/netns/NAME), or directly when name is empty. Sockets and
// tun fds keep the namespace they were opened in, and then work from any
// thread; the caller's own threads stay where they are.
func InNetns(name string, fn func() error) error { return inNetns(name, fn) }

func inNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("link: bad network namespace name %q", name)
	}
	target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("link: network namespace %q not found (/run/netns/%s; ip netns add %s)", name, name, name)
		}
		return fmt.Errorf("link: open network namespace %q: %w", name, err)
	}
	defer unix.Close(target)

	// A fresh goroutine: if switching back fails, it exits with its thread
	// still locked and the runtime throws that thread away.
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res <- fmt.Errorf("link: save current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w (entering a network namespace needs root or CAP_SYS_ADMIN)", err)
			}
			res <- fmt.Errorf("link: enter network namespace %q: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			res <- errors.Join(ferr, fmt.Errorf("link: return from network namespace %q: %w", name, err))
			return // thread stays locked: it dies with this goroutine
		}
		runtime.UnlockOSThread()
		res <- ferr
	}()
	return <-res
}

// permErr adds a hint to permission errors.
func permErr(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("link: %s: %w (needs root or CAP_NET_ADMIN)", what, err)
	}
	return fmt.Errorf("link: %s: %w", what, err)
}

// randomMAC returns a random locally administered unicast address.
func randomMAC() (m [6]byte) {
	if _, err := unix.Getrandom(m[:], 0); err != nil {
		// Getrandom does not fail on Linux >= 3.17; a fixed fallback keeps
		// the address valid anyway.
		m = [6]byte{0, 0x53, 0x53, 0, 0, 1}
	}
	m[0] = m[0]&^1 | 2
	return m
}
