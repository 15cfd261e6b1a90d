package perf

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// TestLoopbackBulk moves 64 MiB over one host's loopback (MTU 65535: a
// full-size segment must still fit an IPv4 packet).
func TestLoopbackBulk(t *testing.T) {
	ea, _ := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	sa := stack.New(stack.Options{})
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	na := socket.New(sa)
	d := &netconn.Dialer{Net: na}
	env := &Env{AddrB: "127.0.0.1", ListenB: func(n, a string) (net.Listener, error) { return netconn.Listen(na, n, a) },
		DialA: func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) }}
	r, err := Bulk(env, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.2f Gbit/s", r.Gbps())
}
