package stack_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// inNS runs fn on a thread inside network namespace ns; the thread is
// thrown away afterwards (its goroutine exits locked).
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func runCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestMultiQueueTAPConcurrentReceive: the stack on a TAP with 2 queues
// and offloads; 8 TCP connections from the kernel are received by both
// queues' goroutines at once, every stream whole and in order.
func TestMultiQueueTAPConcurrentReceive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for a network namespace and a TAP")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	var r [4]byte
	rand.Read(r[:])
	ns := "sst-" + hex.EncodeToString(r[:])
	runCmd(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	tap, err := link.OpenTAP("sstq0", link.TAPOptions{Netns: ns, Offload: true, Queues: 2,
		MAC: wire.MAC{2, 0x53, 0, 0, 2, r[1]}})
	if err != nil {
		t.Fatal(err)
	}
	sub := fmt.Sprintf("10.75.%d", r[0])
	runCmd(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.sstq0.disable_ipv6=1")
	runCmd(t, "ip", "-n", ns, "addr", "add", sub+".1/24", "dev", "sstq0")
	runCmd(t, "ip", "-n", ns, "link", "set", "sstq0", "up")
	st := stack.New(stack.Options{Name: "sockstack"})
	t.Cleanup(st.Close) // closes the TAP before the namespace goes (LIFO)
	st.AddNIC("sstq0", tap).AddAddress(netip.MustParsePrefix(sub + ".2/24"))
	ln, _ := socket.New(st).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet("0.0.0.0", 7200)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(16)
	ln.SetTimeout(30 * time.Second)

	const conns, size = 8, 2 << 20
	fds := make([]int, conns)
	inNS(t, ns, func() error {
		for i := range fds {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds[i] = fd
		}
		return nil
	})
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	var wg sync.WaitGroup
	sendErrs := make(chan error, conns)
	dst := netip.MustParseAddr(sub + ".2").As4()
	for i, fd := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 60})
			// A sockaddr each: Connect writes into it.
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 7200, Addr: dst}); err != nil {
				sendErrs <- fmt.Errorf("connect %d: %w", i, err)
				return
			}
			sendErrs <- sendPattern(i, size, func(b []byte) error {
				for len(b) > 0 {
					n, err := unix.Write(fd, b)
					if err == unix.EINTR {
						continue
					}
					if err != nil {
						return err
					}
					b = b[n:]
				}
				return nil
			})
			unix.Shutdown(fd, unix.SHUT_WR)
		}()
	}
	errs := sinkConns(t, ln, conns, size)
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	close(sendErrs)
	for err := range sendErrs {
		if err != nil {
			t.Error(err)
		}
	}
	q0, q1 := tap.QueueStats(0), tap.QueueStats(1)
	t.Logf("queue 0: %+v, queue 1: %+v", q0, q1)
	if q0.RxFrames == 0 || q1.RxFrames == 0 {
		t.Errorf("the kernel used one queue only (%d, %d frames)", q0.RxFrames, q1.RxFrames)
	}
}
