// Package perf measures the five figures of BENCH.md (bulk, rr, conn,
// mem, udp) over any pair of hosts given as dial/listen functions: two
// sockstack hosts on an in-memory link, or the host kernel's loopback
// with Go's net (the reference column).
package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"sync/atomic"
	"syscall"
	"time"
)

// Env is one side-by-side pair of hosts: A dials, B listens.
type Env struct {
	Name         string
	ListenB      func(network, addr string) (net.Listener, error)
	DialA        func(ctx context.Context, network, addr string) (net.Conn, error)
	ListenPacket func(side byte, network, addr string) (net.PacketConn, error) // side 'A' or 'B'
	AddrB        string                                                        // B's IP address
	Drops        func() Drops                                                  // counters so far (nil: not known)
	Close        func()
}

// BulkResult is a throughput measurement.
type BulkResult struct {
	Bytes   int64
	Elapsed time.Duration
	CPU     time.Duration // process CPU time during the run
}

func (r BulkResult) Gbps() float64  { return float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e9 }
func (r BulkResult) Cores() float64 { return r.CPU.Seconds() / r.Elapsed.Seconds() }

// Bulk sends total bytes A→B in 64 KiB writes, read in 64 KiB reads.
// A warm-up (an eighth of total, at most 16 MiB) goes first and the
// clock starts when the receiver has it all: the handshake, slow start
// and buffer auto-tuning are not part of the figure.
func Bulk(env *Env, total int64) (BulkResult, error) {
	l, err := env.ListenB("tcp", net.JoinHostPort(env.AddrB, "0"))
	if err != nil {
		return BulkResult{}, err
	}
	defer l.Close()
	buf := make([]byte, 64<<10)
	warm := min(total/8, 16<<20) / int64(len(buf)) * int64(len(buf))
	done := make(chan error, 1)
	warmed := make(chan struct{})
	var got int64
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(warmed)
			done <- err
			return
		}
		defer c.Close()
		rbuf := make([]byte, 64<<10)
		signalled := false
		for {
			n, err := c.Read(rbuf)
			got += int64(n)
			if !signalled && got >= warm {
				signalled = true
				close(warmed)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				if !signalled {
					close(warmed)
				}
				done <- err
				return
			}
		}
	}()
	c, err := env.DialA(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		return BulkResult{}, err
	}
	for sent := int64(0); sent < warm; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return BulkResult{}, err
		}
	}
	<-warmed
	cpu0 := cpuTime()
	start := time.Now()
	for sent := int64(0); sent < total; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return BulkResult{}, err
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
	err = <-done
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	c.Close()
	if err != nil {
		return BulkResult{}, err
	}
	if got != warm+total {
		return BulkResult{}, fmt.Errorf("received %d of %d bytes", got, warm+total)
	}
	return BulkResult{Bytes: total, Elapsed: el, CPU: cpu}, nil
}

// RRResult holds round-trip latencies.
type RRResult struct{ Mean, P50, P99 time.Duration }

// RR does 1-byte ping-pong: warm round trips, then timed ones.
func RR(env *Env, warm, timed int) (RRResult, error) {
	l, err := env.ListenB("tcp", net.JoinHostPort(env.AddrB, "0"))
	if err != nil {
		return RRResult{}, err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := env.DialA(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		return RRResult{}, err
	}
	defer c.Close()
	if t, ok := c.(interface{ SetNoDelay(bool) error }); ok {
		t.SetNoDelay(true)
	}
	b := []byte{1}
	lat := make([]time.Duration, 0, timed)
	for i := 0; i < warm+timed; i++ {
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			return RRResult{}, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return RRResult{}, err
		}
		if i >= warm {
			lat = append(lat, time.Since(t0))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return RRResult{Mean: sum / time.Duration(len(lat)), P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
}

// Conn counts sequential connect+accept+1 byte each way+close per second.
// One connection goes first, untimed: neighbour resolution and the
// listener's first accept are not part of the figure.
func Conn(env *Env, d time.Duration) (float64, error) {
	l, err := env.ListenB("tcp", net.JoinHostPort(env.AddrB, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	go func() {
		b := make([]byte, 1)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := io.ReadFull(c, b); err == nil {
				c.Write(b)
				io.ReadFull(c, b) // wait for the client's close (EOF)
			}
			c.Close()
		}
	}()
	addr := l.Addr().String()
	b := []byte{1}
	one := func() error {
		c, err := env.DialA(context.Background(), "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(b); err != nil {
			return err
		}
		_, err = io.ReadFull(c, b)
		return err
	}
	if err := one(); err != nil {
		return 0, fmt.Errorf("warm-up connection: %w", err)
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if err := one(); err != nil {
			return 0, fmt.Errorf("connection %d: %w", n, err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Mem opens n idle connections and returns heap+stack bytes per connection
// (both ends counted together).
func Mem(env *Env, n int) (float64, error) {
	l, err := env.ListenB("tcp", net.JoinHostPort(env.AddrB, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	before := heapStack()
	accepted := make(chan net.Conn, n)
	go func() {
		for i := 0; i < n; i++ {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
		close(accepted)
	}()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := env.DialA(context.Background(), "tcp", l.Addr().String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			// Close what the acceptor already took, and stop it.
			l.Close()
			for c := range accepted {
				c.Close()
			}
			return 0, err
		}
		conns = append(conns, c)
	}
	for i := 0; i < n; i++ {
		c, ok := <-accepted
		if !ok {
			for _, c := range conns {
				c.Close()
			}
			return 0, errors.New("accept failed")
		}
		conns = append(conns, c)
	}
	after := heapStack()
	per := float64(after-before) / float64(n)
	if memIdleHook != nil {
		memIdleHook()
	}
	for _, c := range conns {
		c.Close()
	}
	return per, nil
}

// memIdleHook, when set (by tests), runs while Mem's connections are
// open and idle, so a test can take a heap profile of them.
var memIdleHook func()

func heapStack() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// UDPResult is the udp figure.
type UDPResult struct {
	Sent, Received int
	Elapsed        time.Duration
}

func (r UDPResult) Rate() float64 { return float64(r.Received) / r.Elapsed.Seconds() }
func (r UDPResult) Loss() float64 { return 100 * float64(r.Sent-r.Received) / float64(r.Sent) }

// UDP sends n 64-byte datagrams A→B as fast as the sender can. A
// warm-up first gets one datagram through (neighbour resolution, which
// may drop the first datagrams, is not part of the figure); the time
// runs from the first timed send to the last datagram received, so the
// receiver's wait for stragglers after a loss is not counted.
func UDP(env *Env, n int) (UDPResult, error) {
	rc, err := env.ListenPacket('B', "udp", net.JoinHostPort(env.AddrB, "0"))
	if err != nil {
		return UDPResult{}, err
	}
	defer rc.Close()
	if s, ok := rc.(interface{ SetReadBuffer(int) error }); ok {
		s.SetReadBuffer(4 << 20)
	}
	sc, err := env.ListenPacket('A', "udp", ":0")
	if err != nil {
		return UDPResult{}, err
	}
	defer sc.Close()
	dst := rc.LocalAddr()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	warmed := false
	for i := 0; i < 200 && !warmed; i++ {
		msg[0] = 0 // warm-up
		if _, err := sc.WriteTo(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
			return UDPResult{}, err
		}
		rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := rc.ReadFrom(buf); err == nil {
			warmed = true
		}
	}
	if !warmed {
		return UDPResult{}, errors.New("udp: no warm-up datagram arrived")
	}
	// The receiver reads without deadlines: a deadline set per datagram
	// costs each stack a timer update per read (gonet starts a new timer),
	// and a stall of the shared machine mid-run would end the count early.
	// Only when the sender is done does a quiet spell of udpQuiet end the
	// wait for stragglers.
	rc.SetReadDeadline(time.Time{})
	type result struct {
		k    int
		last time.Time
	}
	got := make(chan result, 1)
	var progress atomic.Int64
	go func() {
		var r result
		for r.k < n {
			k, _, err := rc.ReadFrom(buf)
			if err != nil {
				break
			}
			if k > 0 && buf[0] == 1 { // late warm-ups are not counted
				r.k++
				r.last = time.Now()
				progress.Store(int64(r.k))
			}
		}
		got <- r
	}()
	msg[0] = 1
	start := time.Now()
	for i := 0; i < n; i++ {
		for {
			_, err := sc.WriteTo(msg, dst)
			if err == nil {
				break
			}
			// A full kernel queue (ENOBUFS) pushes back: retry.
			if !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
				return UDPResult{}, err
			}
		}
	}
	r := waitQuiet(got, &progress, udpQuiet, func() { rc.SetReadDeadline(time.Now()) })
	el := r.last.Sub(start)
	if r.k == 0 {
		el = time.Since(start)
	}
	return UDPResult{Sent: n, Received: r.k, Elapsed: el}, nil
}

// udpQuiet is how long the udp receiver may go without a datagram, once
// the sender is done, before the rest counts as lost.
const udpQuiet = 300 * time.Millisecond

// waitQuiet returns what got delivers; if progress stops moving for quiet
// first, it calls stop (which must make the receiver deliver) and waits.
func waitQuiet[T any](got <-chan T, progress *atomic.Int64, quiet time.Duration, stop func()) T {
	t := time.NewTimer(quiet)
	defer t.Stop()
	last := progress.Load()
	for {
		select {
		case r := <-got:
			return r
		case <-t.C:
			if p := progress.Load(); p != last {
				last = p
				t.Reset(quiet)
				continue
			}
			stop()
			return <-got
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
