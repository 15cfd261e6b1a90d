package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openTUNFd attaches to the TUN name of namespace ns, as the relay's
// link does: its carrier goes on.
func openTUNFd(t *testing.T, ns, name string) int {
	t.Helper()
	var fd int
	err := inNetns(ns, func() error {
		var err error
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		var req [unix.IFNAMSIZ + 24]byte
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
			unix.Close(fd)
			return e
		}
		return nil
	})
	if err != nil {
		t.Fatalf("open TUN %s: %v", name, err)
	}
	return fd
}

// testNetns makes a network namespace named prefix-<random>, deleted
// when the test ends, and runs `ip -n NS` with each of steps in it.
func testNetns(t *testing.T, prefix string, steps [][]string) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns := prefix + "-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, s := range steps {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, s...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %v: %v: %s", ns, s, err, out)
		}
	}
	return ns
}

// TestWaitTUNReady: a TUN the relay attaches to carries the kernel's
// packets once waitTUNReady returns. Each round attaches to a TUN that
// is up (its carrier off since the last round detached, as when a relay
// restarts), waits, and sends one UDP datagram from the namespace's
// kernel into it: the datagram must come out of the TUN. Without the
// wait the kernel, whose queueing discipline for the TUN is activated
// only later by its link-watch work, now and then dropped the first
// packets (TX dropped, QDISC_DROP): the flake of TestInteropRelayICMP.
func TestWaitTUNReady(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, TUN device)")
	}
	ns := testNetns(t, "sstun", [][]string{
		{"tuntap", "add", "dev", "tun0", "mode", "tun"},
		{"addr", "add", "10.77.0.1/24", "dev", "tun0"},
		{"link", "set", "tun0", "up"},
	})
	var udp int
	if err := inNetns(ns, func() (err error) {
		udp, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	// Nobody attached: the carrier is off, and the wait gives up.
	if w, err := waitTUNReady("tun0", ns, 200*time.Millisecond); err == nil || !w {
		t.Fatalf("no reader on the TUN: waited %v, %v; want a wait that gives up", w, err)
	}
	to := &unix.SockaddrInet4{Addr: [4]byte{10, 77, 0, 2}, Port: 9}
	const rounds = 30
	lost, waited := 0, 0
	buf := make([]byte, 2048)
	for i := range rounds {
		fd := openTUNFd(t, ns, "tun0")
		w, err := waitTUNReady("tun0", ns, tunReadyWait)
		if err != nil {
			unix.Close(fd)
			t.Fatalf("round %d: %v", i, err)
		}
		if w {
			waited++
		}
		msg := []byte{'r', byte(i)}
		if err := unix.Sendto(udp, msg, 0, to); err != nil {
			unix.Close(fd)
			t.Fatalf("round %d: send: %v", i, err)
		}
		// The datagram, among the kernel's own IPv6 packets; 5s is a
		// bound on a packet that crosses no wire, not a measure.
		got := false
		for !got {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(pfd, 5000); err == unix.EINTR {
				continue
			} else if err != nil || n == 0 {
				break
			}
			n, err := unix.Read(fd, buf)
			if err != nil {
				break
			}
			p := buf[:n]
			got = n >= 30 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP && string(p[n-2:]) == string(msg)
		}
		unix.Close(fd)
		if !got {
			lost++
		}
		// As when a relay restarts: the kernel has taken the carrier
		// down, and deactivated the TUN's queueing discipline.
		if _, err := waitOperState("tun0", ns, false, tunReadyWait); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	t.Logf("%d rounds: %d waited for the kernel, %d first datagrams lost", rounds, waited, lost)
	if lost != 0 {
		t.Fatalf("%d of %d first datagrams into a just-attached TUN were dropped", lost, rounds)
	}
}
