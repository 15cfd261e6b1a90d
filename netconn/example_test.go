package netconn_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// twoHosts joins 10.0.0.1 and 10.0.0.2 with an in-memory Ethernet cable.
func twoHosts() (a, b *socket.Net, stop func()) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	sa, sb := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	return socket.New(sa), socket.New(sb), func() { sa.Close(); sb.Close() }
}

// Listen and Dial give net.Listener and net.Conn: any Go code written for
// package net runs on sockstack unchanged.
func ExampleDial() {
	a, b, stop := twoHosts()
	defer stop()

	l, err := netconn.Listen(b, "tcp", "10.0.0.2:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	go func() { // an echo server, one line
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, line)
	}()

	c, err := netconn.Dial(a, "tcp", "10.0.0.2:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Fprintln(c, "hello over sockstack")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(reply)
	fmt.Println(c.RemoteAddr())
	// Output:
	// hello over sockstack
	// 10.0.0.2:7
}

// ListenPacket gives a net.PacketConn for UDP.
func ExampleListenPacket() {
	a, b, stop := twoHosts()
	defer stop()

	srv, _ := netconn.ListenPacket(b, "udp", ":9000")
	defer srv.Close()
	cli, _ := netconn.ListenPacket(a, "udp", ":9001")
	defer cli.Close()

	cli.WriteTo([]byte("datagram"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9000})
	buf := make([]byte, 100)
	n, from, _ := srv.ReadFrom(buf)
	fmt.Printf("%q from %v\n", buf[:n], from)
	// Output:
	// "datagram" from 10.0.0.1:9001
}

// net/http over sockstack: the server takes a netconn listener, the
// client a Dialer's DialContext.
func ExampleDialer_DialContext() {
	a, b, stop := twoHosts()
	defer stop()

	l, _ := netconn.Listen(b, "tcp", ":80")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	})}
	go srv.Serve(l)
	defer srv.Close()

	d := &netconn.Dialer{Net: a}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://10.0.0.2/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))
	// Output:
	// 200 OK hello from 10.0.0.2
}
