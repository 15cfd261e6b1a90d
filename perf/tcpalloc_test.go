package perf

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// Allocations per TCP segment in steady state (issue 10): one connection
// between two sockstack hosts on the in-memory pipe, through the socket
// API, after a warm-up that has grown every pool and buffer. An op is one
// 64 KiB Send (BenchmarkTCPSteadySend) or 64 KiB of Recv calls
// (BenchmarkTCPSteadyRecv) while a goroutine does the other side; the
// heap counters are process-wide, so a figure counts both hosts, their
// link and both applications. allocs/seg divides the mallocs of the timed
// part by the MSS-sized segments that carried the data; allocs/op (from
// -benchmem) is per 64 KiB, about 45 segments.
//
//	go test -run NONE -bench TCPSteady -benchmem ./perf
//
// Sub-benchmarks: "gso", the pipe as it is (super-segments of up to
// 64 KB); "segments", the pipe with its offloads hidden, so that every
// 1448-byte segment crosses the link and both stacks on its own;
// "netconn", the pipe as it is through the net.Conn adapters that the
// peer harness (bench/gvisor) uses.

const (
	steadyOp   = 64 << 10
	steadyWarm = 64 << 20
	steadyMSS  = 1448 // MTU 1500 less IPv4, TCP and timestamp headers
)

func BenchmarkTCPSteadySend(b *testing.B) { benchTCPSteadyAll(b, true) }
func BenchmarkTCPSteadyRecv(b *testing.B) { benchTCPSteadyAll(b, false) }

func benchTCPSteadyAll(b *testing.B, send bool) {
	b.Run("gso", func(b *testing.B) {
		c, s := steadyConn(b, true)
		benchTCPSteady(b, c, s, send)
	})
	b.Run("segments", func(b *testing.B) {
		c, s := steadyConn(b, false)
		benchTCPSteady(b, c, s, send)
	})
	b.Run("netconn", func(b *testing.B) {
		c, s := steadyNetConn(b)
		benchTCPSteady(b, c, s, send)
	})
}

// sockRW gives a socket Read and Write.
type sockRW struct{ *socket.Socket }

func (s sockRW) Read(b []byte) (int, error)  { return s.Recv(b, 0) }
func (s sockRW) Write(b []byte) (int, error) { return s.Send(b, 0) }

// steadyNetConn returns a connected pair of net.Conns over the pipe.
func steadyNetConn(tb testing.TB) (c, s net.Conn) {
	env := Sockstack(1500)
	tb.Cleanup(env.Close)
	l, err := env.ListenB("tcp", "10.0.0.2:5001")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, _ := l.Accept()
		accepted <- s
	}()
	c, err = env.DialA(context.Background(), "tcp", "10.0.0.2:5001")
	if err != nil {
		tb.Fatal(err)
	}
	s = <-accepted
	if s == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// plainLink is a pipe end without its offloads: the stack sees a link
// that carries nothing above the MTU.
type plainLink struct{ link.Endpoint }

func (p plainLink) WaitRoom(done <-chan struct{}) { p.Endpoint.(link.Waiter).WaitRoom(done) }

// steadyConn returns a connected pair of sockets (client on A, accepted
// on B).
func steadyConn(tb testing.TB, gso bool) (c, s io.ReadWriter) {
	pa, pb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	var ea, eb link.Endpoint = pa, pb
	if !gso {
		ea, eb = plainLink{pa}, plainLink{pb}
	}
	sa, sb := stack.New(stack.Options{}), stack.New(stack.Options{})
	sa.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	tb.Cleanup(func() { sa.Close(); sb.Close() })
	na, nb := socket.New(sa), socket.New(sb)
	l, err := nb.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	if err := l.Bind(socket.Inet("10.0.0.2", 5001)); err != nil {
		tb.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		tb.Fatal(err)
	}
	cs, err := na.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cs.Connect(socket.Inet("10.0.0.2", 5001)); err != nil {
		tb.Fatal(err)
	}
	ss, _, err := l.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cs.Close(); ss.Close() })
	return sockRW{cs}, sockRW{ss}
}

// sendAll sends n bytes from buf in len(buf) calls.
func sendAll(c io.Writer, buf []byte, n int) error {
	for sent := 0; sent < n; {
		k, err := c.Write(buf)
		if err != nil {
			return err
		}
		sent += k
	}
	return nil
}

// recvAll receives n bytes.
func recvAll(s io.Reader, buf []byte, n int) error {
	for got := 0; got < n; {
		k, err := s.Read(buf[:min(len(buf), n-got)])
		if err != nil {
			return err
		}
		if k == 0 {
			return io.ErrUnexpectedEOF
		}
		got += k
	}
	return nil
}

func benchTCPSteady(b *testing.B, c, s io.ReadWriter, measureSend bool) {
	wbuf, rbuf := make([]byte, steadyOp), make([]byte, steadyOp)
	total := steadyWarm + b.N*steadyOp
	// The other side runs in its own goroutine for the whole transfer,
	// warm-up included.
	done := make(chan error, 1)
	if measureSend {
		go func() { done <- recvAll(s, rbuf, total) }()
	} else {
		go func() { done <- sendAll(c, wbuf, total) }()
	}
	var err error
	if measureSend {
		err = sendAll(c, wbuf, steadyWarm)
	} else {
		err = recvAll(s, rbuf, steadyWarm)
	}
	if err != nil {
		b.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.SetBytes(steadyOp)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if measureSend {
			err = sendAll(c, wbuf, steadyOp)
		} else {
			err = recvAll(s, rbuf, steadyOp)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	if err := <-done; err != nil && !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
	segs := float64(b.N) * steadyOp / steadyMSS
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/segs, "allocs/seg")
}
