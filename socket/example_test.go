package socket_test

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// twoHosts joins 10.0.0.1 and 10.0.0.2 with an in-memory Ethernet cable
// and returns their socket layers and a function that stops both.
func twoHosts() (a, b *socket.Net, stop func()) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	sa, sb := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	return socket.New(sa), socket.New(sb), func() { sa.Close(); sb.Close() }
}

// A UDP exchange between two hosts, as in every sockets tutorial.
func Example() {
	a, b, stop := twoHosts()
	defer stop()

	srv, _ := b.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	srv.Bind(socket.Inet("0.0.0.0", 7))

	cli, _ := a.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	cli.Bind(socket.Inet("0.0.0.0", 40000))
	cli.SendTo([]byte("hello"), 0, socket.Inet("10.0.0.2", 7))

	buf := make([]byte, 1500)
	n, from, _ := srv.RecvFrom(buf, 0)
	fmt.Printf("server got %q from %v\n", buf[:n], from)
	srv.SendTo(buf[:n], 0, from)

	n, from, _ = cli.RecvFrom(buf, 0)
	fmt.Printf("client got %q from %v\n", buf[:n], from)
	// Output:
	// server got "hello" from 10.0.0.1:40000
	// client got "hello" from 10.0.0.2:7
}

// A TCP server and client: listen, connect, accept, send, recv, and the
// end of the stream after the peer closes.
func ExampleSocket_Accept() {
	a, b, stop := twoHosts()
	defer stop()

	ls, _ := b.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	ls.Bind(socket.Inet("0.0.0.0", 80))
	ls.Listen(socket.SOMAXCONN)

	c, _ := a.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err := c.Connect(socket.Inet("10.0.0.2", 80)); err != nil {
		fmt.Println(err)
		return
	}
	conn, _, _ := ls.Accept()
	c.SendAll([]byte("GET /"), 0)
	c.Close()

	buf := make([]byte, 100)
	n, _ := conn.Recv(buf, 0)
	fmt.Printf("%q\n", buf[:n])
	n, err := conn.Recv(buf, 0)
	fmt.Println("after close:", n, err)
	local, _ := conn.GetSockName()
	fmt.Println("accepted on", local)
	// Output:
	// "GET /"
	// after close: 0 <nil>
	// accepted on 10.0.0.2:80
}

// Errors are syscall.Errno values, so errors.Is works as with the kernel.
func ExampleSocket_Connect_refused() {
	a, _, stop := twoHosts()
	defer stop()

	c, _ := a.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	err := c.Connect(socket.Inet("10.0.0.2", 81)) // nothing listens there
	fmt.Println(err, errors.Is(err, syscall.ECONNREFUSED))
	// Output:
	// connection refused true
}

// A non-blocking socket returns EAGAIN instead of waiting.
func ExampleSocket_SetBlocking() {
	a, _, stop := twoHosts()
	defer stop()

	s, _ := a.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	s.Bind(socket.Inet("0.0.0.0", 5000))
	s.SetBlocking(false)
	_, _, err := s.RecvFrom(make([]byte, 10), 0)
	fmt.Println(err, errors.Is(err, syscall.EAGAIN))
	// Output:
	// resource temporarily unavailable true
}

// A timeout, like Python's settimeout: the error matches EAGAIN (what
// SO_RCVTIMEO gives in C) and says it is a timeout.
func ExampleSocket_SetTimeout() {
	a, _, stop := twoHosts()
	defer stop()

	s, _ := a.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	s.Bind(socket.Inet("0.0.0.0", 5000))
	s.SetTimeout(10 * time.Millisecond)
	_, _, err := s.RecvFrom(make([]byte, 10), 0)
	var te *socket.TimeoutError
	fmt.Println(errors.Is(err, syscall.EAGAIN), errors.As(err, &te) && te.Timeout())
	// Output:
	// true true
}

// The poller watches many sockets from one goroutine, like epoll.
func ExamplePoller() {
	a, b, stop := twoHosts()
	defer stop()

	s1, _ := b.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	s1.Bind(socket.Inet("0.0.0.0", 1001))
	s2, _ := b.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	s2.Bind(socket.Inet("0.0.0.0", 1002))
	p := socket.NewPoller()
	defer p.Close()
	p.Add(s1, waiter.EventIn, 1) // the last argument comes back in each event
	p.Add(s2, waiter.EventIn, 2)

	c, _ := a.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	c.SendTo([]byte("x"), 0, socket.Inet("10.0.0.2", 1002))

	events := make([]socket.PollEvent, 8)
	n, _ := p.Wait(events, -1) // -1: until something is ready
	for _, ev := range events[:n] {
		fmt.Println("ready:", ev.Data, ev.Events&waiter.EventIn != 0)
	}
	// Output:
	// ready: 2 true
}

// getaddrinfo over the host's own hosts table.
func ExampleNet_GetAddrInfo() {
	a, _, stop := twoHosts()
	defer stop()

	a.Hosts().Add("db.lan", netip.MustParseAddr("10.0.0.9"))
	res, err := a.GetAddrInfo("db.lan", "http", socket.AF_INET, socket.SOCK_STREAM, 0, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ai := range res {
		fmt.Println(ai.Family == socket.AF_INET, ai.Type == socket.SOCK_STREAM, ai.Addr)
	}
	// Output:
	// true true 10.0.0.9:80
}

// A connected pair of AF_UNIX sockets, as socketpair(2) gives.
func ExampleNet_SocketPair() {
	a, _, stop := twoHosts()
	defer stop()

	x, y, _ := a.SocketPair(socket.SOCK_STREAM)
	x.Send([]byte("ping"), 0)
	buf := make([]byte, 8)
	n, _ := y.Recv(buf, 0)
	fmt.Printf("%s\n", buf[:n])
	// Output:
	// ping
}
