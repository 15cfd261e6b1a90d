// Command ifinfo asks the stack about itself with ioctl(2), as the
// classic C programs do before they open a server: which interfaces
// there are and their addresses (SIOCGIFCONF, then SIOCGIFFLAGS,
// SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFNETMASK for each, an `ifconfig` in
// twenty lines), and, on a datagram socket, how long the next datagram is
// before reading it (FIONREAD), so the buffer can be sized to fit.
//
//	go run ./examples/ifinfo
//	go run ./examples/ifinfo -kernel   # the host's interfaces and sockets
package main

import (
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// ifreqer is what socket.Socket and hostsock.Socket both have beyond
// sockapi.Sock: ioctl with a struct ifreq, and SIOCGIFCONF.
type ifreqer interface {
	IoctlIfreq(req uint, r *socket.Ifreq) error
	IfConf() ([]socket.Ifreq, error)
}

const port = 20012

func main() {
	vnet.KernelFlag()
	nw := vnet.New("server", "client")
	defer nw.Close()
	srv, cli := nw.Hosts[0], nw.Hosts[1]

	s, err := srv.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ifconfig(s)

	// FIONREAD: the next datagram's length, read before the datagram.
	if err := s.Bind(socket.Inet(srv.Addr, port)); err != nil {
		log.Fatal(err)
	}
	s.SetTimeout(5 * time.Second) // a lost datagram ends the demo, not hangs it
	c, err := cli.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"short", strings.Repeat("a longer datagram ", 20)} {
		if _, err := c.SendTo([]byte(m), 0, socket.Inet(srv.Addr, port)); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		// Wait for a datagram without taking it, then ask its size.
		if _, err := s.Recv(make([]byte, 1), socket.MSG_PEEK); err != nil {
			log.Fatal(err)
		}
		n, err := s.Ioctl(socket.FIONREAD, 0)
		if err != nil {
			log.Fatal(err)
		}
		buf := make([]byte, n) // exactly what it needs
		got, _, err := s.RecvFrom(buf, 0)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("server: FIONREAD said %d bytes, recvfrom read %d\n", n, got)
	}
}

// ifconfig prints every interface with an IPv4 address, as SIOCGIFCONF
// lists them, and what the other requests say of each.
func ifconfig(s sockapi.Sock) {
	x, ok := s.(ifreqer)
	if !ok {
		log.Fatalf("%T has no interface ioctls", s)
	}
	list, err := x.IfConf()
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range list {
		r := socket.Ifreq{Name: e.Name}
		must(x.IoctlIfreq(socket.SIOCGIFINDEX, &r))
		must(x.IoctlIfreq(socket.SIOCGIFFLAGS, &r))
		must(x.IoctlIfreq(socket.SIOCGIFMTU, &r))
		must(x.IoctlIfreq(socket.SIOCGIFHWADDR, &r))
		hw := net.HardwareAddr(r.HWAddr).String()
		must(x.IoctlIfreq(socket.SIOCGIFNETMASK, &r))
		mask := r.Addr
		fmt.Printf("%d: %s: flags=%#x<%s> mtu %d\n", r.Index, e.Name, r.Flags, flagNames(r.Flags), r.MTU)
		fmt.Printf("    inet %s netmask %s hwaddr %s (type %d)\n", e.Addr, mask, hw, r.HWFamily)
	}
}

func flagNames(f int) string {
	var out []string
	for _, x := range []struct {
		bit  int
		name string
	}{{socket.IFF_UP, "UP"}, {socket.IFF_BROADCAST, "BROADCAST"}, {socket.IFF_LOOPBACK, "LOOPBACK"},
		{socket.IFF_POINTOPOINT, "POINTOPOINT"}, {socket.IFF_RUNNING, "RUNNING"}, {socket.IFF_NOARP, "NOARP"},
		{socket.IFF_MULTICAST, "MULTICAST"}} {
		if f&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ",")
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
