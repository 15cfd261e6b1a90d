package main

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// A tool's stack ends with the process: closeGracefully closes its
// sockets and returns only once the close handshake is done (our side in
// TIME_WAIT, having ACKed the peer's FIN), so the peer is not left in
// LAST_ACK.
func TestCloseGracefully(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 7, 1}, wire.MAC{2, 0, 0, 0, 7, 2}, 1500)
	mk := func(name, cidr string, ep link.Endpoint) (*stack.Stack, *socket.Net) {
		st := stack.New(stack.Options{Name: name})
		if err := st.AddNIC("eth0", ep).AddAddress(netip.MustParsePrefix(cidr)); err != nil {
			t.Fatal(err)
		}
		return st, socket.New(st)
	}
	sa, na := mk("tool", "10.0.0.1/24", ea)
	defer sa.Close()
	sb, nb := mk("server", "10.0.0.2/24", eb)
	defer sb.Close()

	l, err := nb.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(socket.Inet("0.0.0.0", 7)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { // read to end of stream, then close: the server's FIN
		defer close(served)
		c, _, err := l.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			n, err := c.Recv(buf, 0)
			if err != nil || n == 0 {
				break
			}
		}
		c.Close()
	}()

	c, err := na.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(socket.Inet("10.0.0.2", 7)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if left := closeGracefully(na, sa, 10*exitGrace); left != 0 {
		t.Fatalf("%d connection(s) still closing", left)
	}
	<-served
	var states []tcp.State
	for _, e := range sa.TCP.Table() {
		states = append(states, e.State)
	}
	if len(states) != 1 || states[0] != tcp.StateTimeWait {
		t.Errorf("tool's connections %v, want one in TIME_WAIT", states)
	}
}
