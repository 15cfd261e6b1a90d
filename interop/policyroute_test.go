package interop

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Policy routing against the kernel: the same interfaces, routes and
// rules in a network namespace of the test's own (two veth pairs whose
// far ends, without addresses, stay in it: nothing leaves it) and on a sockstack host; for each socket mark and
// destination, UDP connect, UDP sendto and a non-blocking TCP connect
// must give the same errno and, when they succeed, the same source
// address (which names the interface the route took).

// policyRules are the rules of both sides: Linux's errnos for the three
// refusing actions, a fwmark lookup, and wg-quick's split tunnel (main
// without its default route for everyone, the tunnel's table for all
// but the tunnel's own marked socket).
var policyRules = []struct {
	ip   string
	rule stack.Rule
}{
	{"pref 500 fwmark 10 blackhole", stack.Rule{Priority: 500, Mark: 10, Action: stack.RuleBlackhole}},
	{"pref 501 fwmark 11 unreachable", stack.Rule{Priority: 501, Mark: 11, Action: stack.RuleUnreachable}},
	{"pref 502 fwmark 12 prohibit", stack.Rule{Priority: 502, Mark: 12, Action: stack.RuleProhibit}},
	{"pref 1000 fwmark 0x1/0xff lookup 100", stack.Rule{Priority: 1000, Mark: 1, Mask: 0xff, Table: 100}},
	{"pref 1999 lookup main suppress_prefixlength 0", stack.Rule{Priority: 1999, Table: stack.TableMain, Suppress: true}},
	{"pref 2000 not fwmark 51820 lookup 51820", stack.Rule{Priority: 2000, Mark: 51820, Invert: true, Table: 51820}},
}

// policyNS makes a namespace with d0 (10.0.0.1/24, fd00::1/64: main's
// default routes) and d1 (10.1.0.1/24, fd01::1/64: tables 100 and
// 51820) and the rules; it is deleted when the test ends.
func policyNS(t *testing.T) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns := "sspr-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	steps := []string{
		"link set lo up",
		"link add d0 type veth peer name d0p", "link add d1 type veth peer name d1p",
		"link set d0p up", "link set d1p up", "link set d0 up", "link set d1 up",
		"addr add 10.0.0.1/24 dev d0", "addr add 10.1.0.1/24 dev d1",
		"addr add fd00::1/64 dev d0 nodad", "addr add fd01::1/64 dev d1 nodad",
		"route add default via 10.0.0.2 dev d0",
		"-6 route add default via fd00::2 dev d0",
		"route add default via 10.1.0.2 dev d1 table 100",
		"-6 route add default via fd01::2 dev d1 table 100",
		"route add default dev d1 table 51820",
		"-6 route add default dev d1 table 51820",
	}
	for _, r := range policyRules {
		steps = append(steps, "rule add "+r.ip, "-6 rule add "+r.ip)
	}
	for _, s := range steps {
		args := append([]string{"-n", ns}, strings.Fields(s)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return ns
}

// policyHost is the sockstack side of policyNS.
func policyHost(t *testing.T) *socket.Net {
	t.Helper()
	s := stack.New(stack.Options{DADTransmits: -1})
	t.Cleanup(s.Close)
	nic := func(name string, mac byte, addrs ...string) *stack.NIC {
		ep, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, mac}, wire.MAC{2, 0, 0, 0, 1, mac}, 1500)
		n := s.AddNIC(name, ep)
		for _, a := range addrs {
			if err := n.AddAddress(netip.MustParsePrefix(a)); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	d0 := nic("d0", 1, "10.0.0.1/24", "fd00::1/64")
	d1 := nic("d1", 2, "10.1.0.1/24", "fd01::1/64")
	pfx := netip.MustParsePrefix
	gw := netip.MustParseAddr
	for _, r := range []stack.Route{
		{Prefix: pfx("0.0.0.0/0"), Gateway: gw("10.0.0.2"), NIC: d0},
		{Prefix: pfx("::/0"), Gateway: gw("fd00::2"), NIC: d0},
		{Prefix: pfx("0.0.0.0/0"), Gateway: gw("10.1.0.2"), NIC: d1, Table: 100},
		{Prefix: pfx("::/0"), Gateway: gw("fd01::2"), NIC: d1, Table: 100},
		{Prefix: pfx("0.0.0.0/0"), NIC: d1, Table: 51820},
		{Prefix: pfx("::/0"), NIC: d1, Table: 51820},
	} {
		s.AddRoute(r)
	}
	for _, r := range policyRules {
		if err := s.AddRule(r.rule); err != nil {
			t.Fatalf("rule %s: %v", r.ip, err)
		}
	}
	return socket.New(s)
}

type policyCase struct {
	op   string // "udp-connect", "udp-sendto", "udp-cmsg" (the mark as an SO_MARK control message), "tcp-connect"
	dst  netip.AddrPort
	mark int
}

func (c policyCase) String() string { return fmt.Sprintf("%s %v mark %d", c.op, c.dst, c.mark) }

func policyCases() []policyCase {
	var cs []policyCase
	for _, dst := range []string{"192.0.2.7:53", "10.0.0.9:53", "[2001:db8::7]:53", "[fd00::9]:53"} {
		for _, mark := range []int{0, 1, 0x101, 2, 10, 11, 12, 51820} {
			for _, op := range []string{"udp-connect", "udp-sendto", "udp-cmsg", "tcp-connect"} {
				cs = append(cs, policyCase{op, netip.MustParseAddrPort(dst), mark})
			}
		}
	}
	return cs
}

func errName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// kernelPolicy runs one case on a kernel socket made inside ns.
func kernelPolicy(t *testing.T, nsfd int, c policyCase) string {
	fam := unix.AF_INET
	var sa unix.Sockaddr
	if c.dst.Addr().Is6() {
		fam = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(c.dst.Port()), Addr: c.dst.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(c.dst.Port()), Addr: c.dst.Addr().As4()}
	}
	typ := unix.SOCK_DGRAM
	if c.op == "tcp-connect" {
		typ = unix.SOCK_STREAM | unix.SOCK_NONBLOCK
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns: %v", err)
	}
	fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	// Back to the test's namespace before anything else: the socket
	// stays in ns.
	if e := unix.Setns(orig, unix.CLONE_NEWNET); e != nil {
		t.Fatalf("setns back: %v", e) // the thread stays locked and dies with the goroutine
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if c.mark != 0 && c.op != "udp-cmsg" {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, c.mark); err != nil {
			t.Fatalf("SO_MARK: %v", err)
		}
	}
	switch c.op {
	case "udp-cmsg":
		if _, err := unix.SendmsgN(fd, []byte("x"), markCmsg(c.mark), sa, 0); err != nil {
			return errName(err)
		}
		return "ok"
	case "udp-sendto":
		err = unix.Sendto(fd, []byte("x"), 0, sa)
		if err == nil {
			return "ok"
		}
		return errName(err)
	default:
		err = unix.Connect(fd, sa)
		if err != nil && err != unix.EINPROGRESS {
			return errName(err)
		}
		la, _ := unix.Getsockname(fd)
		switch a := la.(type) {
		case *unix.SockaddrInet4:
			return "src " + netip.AddrFrom4(a.Addr).String()
		case *unix.SockaddrInet6:
			return "src " + netip.AddrFrom16(a.Addr).String()
		}
		return "src ?"
	}
}

// stackPolicy runs one case on sockstack.
func stackPolicy(t *testing.T, n *socket.Net, c policyCase) string {
	fam := socket.AF_INET
	if c.dst.Addr().Is6() {
		fam = socket.AF_INET6
	}
	typ := socket.SOCK_DGRAM
	if c.op == "tcp-connect" {
		typ = socket.SOCK_STREAM
	}
	s, err := n.Socket(fam, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(0) // non-blocking
	if c.mark != 0 && c.op != "udp-cmsg" {
		if err := s.SetSockOpt(socket.SOL_SOCKET, socket.SO_MARK, c.mark); err != nil {
			t.Fatalf("SO_MARK: %v", err)
		}
	}
	dst := socket.InetAddr(c.dst)
	switch c.op {
	case "udp-cmsg":
		if _, err := s.SendMsgControl([]byte("x"), markCmsg(c.mark), 0, dst); err != nil {
			return errName(err)
		}
		return "ok"
	case "udp-sendto":
		if _, err := s.SendTo([]byte("x"), 0, dst); err != nil {
			return errName(err)
		}
		return "ok"
	default:
		if err := s.Connect(dst); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			return errName(err)
		}
		la, err := s.GetSockName()
		if err != nil {
			return errName(err)
		}
		return "src " + la.(*socket.SockaddrInet).AddrPort.Addr().String()
	}
}

func TestPolicyRoutingMatchesKernel(t *testing.T) {
	needRoot(t)
	needTools(t, "ip")
	ns := policyNS(t)
	nsfd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	host := policyHost(t)
	agree := 0
	for _, c := range policyCases() {
		k, s := kernelPolicy(t, nsfd, c), stackPolicy(t, host, c)
		if k != s {
			t.Errorf("%v: kernel %s, sockstack %s", c, k, s)
			continue
		}
		agree++
		t.Logf("%v: %s", c, k)
	}
	t.Logf("%d of %d cases agree", agree, len(policyCases()))
}

// markCmsg is an SO_MARK control message.
func markCmsg(mark int) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_MARK
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(mark))
	return b
}
