// Package conformance is a differential test of sockstack's socket API
// against the host kernel: every case runs on both through the common
// interface of package sockapi and writes a transcript of return values
// and errno names; the test compares the transcripts.
package conformance

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"golang.org/x/sys/unix"
)

// Env is one side of the comparison.
type Env struct {
	Name     string
	API      sockapi.API
	Local    netip.Addr // where servers bind: 127.0.0.1 on both sides
	PortLow  int        // ephemeral port range of this side
	PortHigh int
	Root     bool // raw sockets allowed
	close    func()
}

// Close releases the environment (the sockstack host).
func (e *Env) Close() {
	if e.close != nil {
		e.close()
	}
}

// KernelEnv is the host kernel on loopback.
func KernelEnv() *Env {
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo, &hi)
	}
	return &Env{Name: "linux", API: sockapi.Host(), Local: netip.MustParseAddr("127.0.0.1"),
		PortLow: lo, PortHigh: hi, Root: os.Geteuid() == 0}
}

// StackEnv is a fresh sockstack host, used through its own loopback.
func StackEnv() *Env {
	st := stack.New(stack.Options{})
	return &Env{Name: "sockstack", API: sockapi.Stack(socket.New(st)), Local: netip.MustParseAddr("127.0.0.1"),
		PortLow: stack.EphemeralLow, PortHigh: stack.EphemeralHigh, Root: true, close: st.Close}
}

// Case is one differential case.
type Case struct {
	Name string
	Root bool // needs raw sockets on the kernel
	Run  func(t *T)
}

// T records a transcript.
type T struct {
	Env   *Env
	lines []string
	socks []sockapi.Sock
	ports map[uint16]string
}

type abort struct{}

// Run runs c on env and returns its transcript.
func Run(env *Env, c Case) (lines []string) {
	t := &T{Env: env, ports: map[uint16]string{}}
	defer func() {
		for _, s := range t.socks {
			s.Close()
		}
	}()
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(abort); !ok {
					t.Logf("panic: %v", r)
				}
			}
		}()
		c.Run(t)
	}()
	return t.lines
}

// Logf adds a line.
func (t *T) Logf(format string, args ...any) { t.lines = append(t.lines, fmt.Sprintf(format, args...)) }

// Stop ends the case.
func (t *T) Stop() { panic(abort{}) }

// ErrName names an error as the transcript shows it.
func ErrName(err error) string {
	if err == nil {
		return "ok"
	}
	var te *socket.TimeoutError
	if errors.As(err, &te) {
		return "timeout"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	return "error " + err.Error()
}

// Check logs step's result.
func (t *T) Check(step string, err error) error {
	t.Logf("%s: %s", step, ErrName(err))
	return err
}

// Must logs step's result and ends the case if it failed.
func (t *T) Must(step string, err error) {
	if t.Check(step, err) != nil {
		t.Stop()
	}
}

// Track closes s at the end of the case.
func (t *T) Track(s sockapi.Sock) sockapi.Sock {
	if s != nil {
		t.socks = append(t.socks, s)
	}
	return s
}

// TrySocket creates a socket and logs the result.
func (t *T) TrySocket(f, ty, p int) (sockapi.Sock, error) {
	s, err := t.Env.API.Socket(f, ty, p)
	t.Check("socket", err)
	return t.Track(s), err
}

// Socket creates a socket, ending the case on failure.
func (t *T) Socket(f, ty, p int) sockapi.Sock {
	s, err := t.Env.API.Socket(f, ty, p)
	if err != nil {
		t.Must("socket", err)
	}
	return t.Track(s)
}

func (t *T) TCP() sockapi.Sock { return t.Socket(socket.AF_INET, socket.SOCK_STREAM, 0) }
func (t *T) UDP() sockapi.Sock { return t.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0) }

// Loop is an address on the local address with a port.
func (t *T) Loop(port int) *socket.SockaddrInet {
	return socket.InetAddr(netip.AddrPortFrom(t.Env.Local, uint16(port)))
}

// Name is s's bound address, ending the case on failure.
func (t *T) Name(s sockapi.Sock) *socket.SockaddrInet {
	a, err := s.GetSockName()
	if err != nil {
		t.Must("getsockname", err)
	}
	in, ok := a.(*socket.SockaddrInet)
	if !ok {
		t.Logf("getsockname: %T", a)
		t.Stop()
	}
	return in
}

// Label names port in later transcript lines (ports differ per side).
func (t *T) Label(a socket.Sockaddr, label string) {
	if in, ok := a.(*socket.SockaddrInet); ok && in.AddrPort.Port() != 0 {
		t.ports[in.AddrPort.Port()] = label
	}
}

// Addr formats an address without its side-specific port number.
func (t *T) Addr(a socket.Sockaddr) string {
	in, ok := a.(*socket.SockaddrInet)
	if !ok {
		if a == nil {
			return "nil"
		}
		return fmt.Sprintf("%T", a)
	}
	p := int(in.AddrPort.Port())
	ps := ""
	switch l, ok := t.ports[uint16(p)]; {
	case ok:
		ps = l
	case p == 0:
		ps = "0"
	case p >= t.Env.PortLow && p <= t.Env.PortHigh:
		ps = "eph"
	default:
		ps = fmt.Sprintf("%d(outside ephemeral range)", p)
	}
	return in.AddrPort.Addr().String() + ":" + ps
}

// BindLocal binds s to the local address, port 0, and labels the port.
func (t *T) BindLocal(s sockapi.Sock, label string) *socket.SockaddrInet {
	t.Must("bind", s.Bind(t.Loop(0)))
	a := t.Name(s)
	t.Label(a, label)
	return a
}

// Listener is a TCP socket listening on the local address (label "L").
func (t *T) Listener(backlog int) (sockapi.Sock, *socket.SockaddrInet) {
	l := t.TCP()
	a := t.BindLocal(l, "L")
	t.Must("listen", l.Listen(backlog))
	return l, a
}

// Pair is a connected TCP pair: client and accepted server socket.
func (t *T) Pair() (cli, srv sockapi.Sock) {
	l, a := t.Listener(8)
	cli = t.TCP()
	cli.SetTimeout(5 * time.Second)
	t.Must("connect", cli.Connect(a))
	l.SetTimeout(5 * time.Second)
	srv, from, err := l.Accept()
	t.Must("accept", err)
	t.Track(srv)
	t.Label(from, "C")
	srv.SetTimeout(5 * time.Second)
	return cli, srv
}

// Accepted takes one connection from l, waiting up to d; step names the
// accept in the transcript. The accepted socket is tracked and has a 5 s
// timeout.
func (t *T) Accepted(step string, l sockapi.Sock, d time.Duration) sockapi.Sock {
	l.SetTimeout(d)
	s, _, err := l.Accept()
	t.Must(step, err)
	t.Track(s)
	s.SetTimeout(5 * time.Second)
	return s
}

// UDPPair is two UDP sockets bound on the local address (labels A and B).
func (t *T) UDPPair() (a, b sockapi.Sock, aa, ba *socket.SockaddrInet) {
	a, b = t.UDP(), t.UDP()
	aa = t.BindLocal(a, "A")
	ba = t.BindLocal(b, "B")
	a.SetTimeout(5 * time.Second)
	b.SetTimeout(5 * time.Second)
	return
}

// Recv logs one receive: count and data, or the error.
func (t *T) Recv(step string, s sockapi.Sock, size, flags int) int {
	buf := make([]byte, size)
	n, err := s.Recv(buf, flags)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return -1
	}
	if n > size {
		t.Logf("%s: %d", step, n)
		return n
	}
	t.Logf("%s: %d %q", step, n, buf[:n])
	return n
}

// RecvFrom logs one receive with the sender and flags.
func (t *T) RecvFrom(step string, s sockapi.Sock, size, flags int) int {
	buf := make([]byte, size)
	n, rfl, from, err := s.RecvMsg(buf, flags)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return -1
	}
	shown := buf[:min(n, size)]
	trunc := ""
	if rfl&socket.MSG_TRUNC != 0 {
		trunc = " MSG_TRUNC"
	}
	t.Logf("%s: %d %q from %s%s", step, n, shown, t.Addr(from), trunc)
	return n
}

// Send logs one send.
func (t *T) Send(step string, s sockapi.Sock, data []byte, flags int, to socket.Sockaddr) int {
	n, err := s.SendTo(data, flags, to)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return -1
	}
	t.Logf("%s: %d", step, n)
	return n
}

// GetInt logs an int option.
func (t *T) GetInt(step string, s sockapi.Sock, level, name int) {
	v, err := s.GetSockOptInt(level, name)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %d", step, v)
}

// GetOpt logs an option of any type.
func (t *T) GetOpt(step string, s sockapi.Sock, level, name int) {
	v, err := s.GetSockOpt(level, name)
	if err != nil {
		t.Logf("%s: %s", step, ErrName(err))
		return
	}
	t.Logf("%s: %s", step, FormatValue(v))
}

// FormatValue prints an option value the same way for both sides.
func FormatValue(v any) string {
	switch x := v.(type) {
	case socket.Linger:
		return fmt.Sprintf("linger{%v %d}", x.OnOff, x.Linger)
	case time.Duration:
		return fmt.Sprintf("%dus", x/time.Microsecond)
	case string:
		return fmt.Sprintf("%q", strings.TrimRight(x, "\x00"))
	}
	return fmt.Sprint(v)
}

// Ready waits up to d for s to become readable (out false) or writable
// (out true), or for an error or hang-up; it reports whether it did.
func Ready(s sockapi.Sock, out bool, d time.Duration) bool {
	switch v := s.(type) {
	case sockapi.HostSock:
		ev := int16(unix.POLLIN)
		if out {
			ev = unix.POLLOUT
		}
		deadline := time.Now().Add(d)
		for {
			fds := []unix.PollFd{{Fd: int32(v.Fileno()), Events: ev}}
			ms := int(time.Until(deadline) / time.Millisecond)
			if ms < 0 {
				ms = 0
			}
			n, err := unix.Poll(fds, ms)
			if err == unix.EINTR {
				continue
			}
			return err == nil && n > 0
		}
	case sockapi.StackSock:
		return stackReady(v.Socket, out, d)
	}
	return false
}
