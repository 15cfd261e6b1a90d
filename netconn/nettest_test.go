package netconn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/sockstack/sockstack/socket"
)

// makePipe returns a nettest.MakePipe that connects a conn dialed from
// a to one accepted on b at listenAddr (dialed at dialAddr).
func makePipe(t *testing.T, a, b *socket.Net, listenAddr string, dialAddr netip.Addr, control func(string, string, *socket.Socket) error) nettest.MakePipe {
	return func() (c1, c2 net.Conn, stop func(), err error) {
		lc := ListenConfig{Net: b, Control: control}
		l, err := lc.Listen(context.Background(), "tcp", listenAddr)
		if err != nil {
			return nil, nil, nil, err
		}
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := l.Accept()
			ch <- res{c, err}
		}()
		port := l.Addr().(*net.TCPAddr).Port
		d := Dialer{Net: a, Timeout: 10 * time.Second, Control: control}
		c1, err = d.Dial("tcp", netip.AddrPortFrom(dialAddr, uint16(port)).String())
		if err != nil {
			l.Close()
			return nil, nil, nil, err
		}
		r := <-ch
		if r.err != nil {
			c1.Close()
			l.Close()
			return nil, nil, nil, r.err
		}
		stop = func() {
			c1.Close()
			r.c.Close()
			l.Close()
		}
		return c1, r.c, stop, nil
	}
}

// TestNettestConnPipe runs x/net's net.Conn conformance suite on TCP
// between two hosts joined by an Ethernet pipe.
func TestNettestConnPipe(t *testing.T) {
	p := newPair(t)
	nettest.TestConn(t, makePipe(t, p.a, p.b, "10.0.0.2:0", addrB, nil))
}

// TestNettestConnLoopback runs it on one host's loopback.
func TestNettestConnLoopback(t *testing.T) {
	n := newHost(t)
	nettest.TestConn(t, makePipe(t, n, n, "127.0.0.1:0", netip.MustParseAddr("127.0.0.1"), nil))
}

// TestNettestConnUnix runs it on AF_UNIX stream sockets.
func TestNettestConnUnix(t *testing.T) {
	n := newHost(t)
	i := 0
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		i++
		// The AF_UNIX name space is the Net's own, in memory.
		path := fmt.Sprintf("/run/netconn-test-%d.sock", i)
		l, err := Listen(n, "unix", path)
		if err != nil {
			return nil, nil, nil, err
		}
		ch := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			ch <- c
		}()
		c1, err = Dial(n, "unix", path)
		if err != nil {
			l.Close()
			return nil, nil, nil, err
		}
		c2 = <-ch
		if c2 == nil {
			c1.Close()
			l.Close()
			return nil, nil, nil, net.ErrClosed
		}
		return c1, c2, func() { c1.Close(); c2.Close(); l.Close() }, nil
	})
}
