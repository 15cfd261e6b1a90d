package perf

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// ManyResult is the outcome of Many.
type ManyResult struct {
	Conns            int
	Open             time.Duration // to establish every connection (both ends accepted)
	Echo             time.Duration // one byte there and back on every connection
	Close            time.Duration // both ends closed, no connection left established
	BytesPerConnPair float64       // heap+stack growth per idle established pair
	RSS              int64         // process resident set after opening (bytes; 0 if unknown)
	Resets           uint64        // RSTs sent by either host (a clean run has none)
	TimeWaitOverflow uint64
}

// Many opens n TCP connections between two sockstack hosts in this
// process (A 10.0.0.1 dials, B 10.0.0.2 listens on ports listening
// ports, so one client address has n/ports tuples per server port),
// holds them all established at once, echoes one byte on every one, and
// closes them all. workers goroutines connect and echo; no goroutine is
// kept per connection.
func Many(n, ports, workers int, progress func(string)) (ManyResult, error) {
	if progress == nil {
		progress = func(string) {}
	}
	per := (n + ports - 1) / ports
	if per > 16384 {
		return ManyResult{}, fmt.Errorf("%d connections need at least %d listening ports (16384 ephemeral ports per server port)", n, (n+16383)/16384)
	}
	// A queue of 64 Ki frames per direction: opening, echoing and closing
	// connections from many workers bursts far beyond the default 1024,
	// and every frame lost to a full queue costs its connection an RTO.
	pa, pb := link.NewPipeQueue(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500, 65536)
	cfg := tcp.Config{MaxTimeWait: n + 1024, MaxOrphans: n + 1024, SOMAXCONN: 65535}
	sa := stack.New(stack.Options{Name: "a", TCP: cfg})
	sb := stack.New(stack.Options{Name: "b", TCP: cfg})
	defer sa.Close()
	defer sb.Close()
	sa.AddNIC("eth0", pa).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", pb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	na, nb := socket.New(sa), socket.New(sb)

	base := heapStack()
	var res ManyResult
	res.Conns = n
	clients := make([]*socket.Socket, n)
	servers := make([]*socket.Socket, n)
	var accepted atomic.Int64
	var acceptErr atomic.Value
	var closing atomic.Bool
	var lwg sync.WaitGroup
	listeners := make([]*socket.Socket, ports)
	for j := range listeners {
		l, err := nb.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			return res, err
		}
		if err := l.Bind(socket.Inet("10.0.0.2", 10000+j)); err != nil {
			return res, err
		}
		if err := l.Listen(65535); err != nil {
			return res, err
		}
		listeners[j] = l
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for {
				c, _, err := l.Accept()
				if err != nil {
					if !closing.Load() {
						acceptErr.Store(err)
					}
					return
				}
				k := accepted.Add(1) - 1
				if k >= int64(n) {
					c.Close()
					continue
				}
				servers[k] = c
			}
		}()
	}
	closeListeners := func() {
		closing.Store(true)
		for _, l := range listeners {
			l.Close()
		}
		lwg.Wait()
	}

	// Open: workers take connection indices in turn.
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				c, err := na.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
				if err == nil {
					c.SetTimeout(30 * time.Second)
					err = c.Connect(socket.Inet("10.0.0.2", 10000+i%ports))
				}
				if err != nil {
					firstErr.Store(fmt.Errorf("connect %d: %w", i, err))
					return
				}
				clients[i] = c
				if i > 0 && i%100000 == 0 {
					progress(fmt.Sprintf("%d connected (%.1fs)", i, time.Since(start).Seconds()))
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		closeListeners()
		return res, e.(error)
	}
	for accepted.Load() < int64(n) {
		if e := acceptErr.Load(); e != nil {
			closeListeners()
			return res, e.(error)
		}
		if time.Since(start) > 5*time.Minute {
			closeListeners()
			return res, fmt.Errorf("only %d of %d accepted", accepted.Load(), n)
		}
		// Accepts run on their own goroutines; nothing to wait on here
		// but their count (bounded above).
		time.Sleep(time.Millisecond)
	}
	res.Open = time.Since(start)
	closeListeners()
	res.BytesPerConnPair = float64(heapStack()-base) / float64(n)
	res.RSS = rss()
	progress(fmt.Sprintf("%d established in %.1fs, %.0f bytes per idle pair", n, res.Open.Seconds(), res.BytesPerConnPair))
	lossInfo := func() string {
		return fmt.Sprintf("link queue full %d, retransmits %d", sa.Stats().Link.OutQueueFull.Load()+sb.Stats().Link.OutQueueFull.Load(),
			sa.TCP.Stats().RetransSegs+sb.TCP.Stats().RetransSegs)
	}

	// Echo: every client sends a byte; every server returns it; every
	// client reads it back.
	start = time.Now()
	each := func(socks []*socket.Socket, fn func(s *socket.Socket) error) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(socks) || firstErr.Load() != nil {
						return
					}
					if err := fn(socks[i]); err != nil {
						firstErr.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			return e.(error)
		}
		return nil
	}
	one := func(s *socket.Socket) error { _, err := s.Send([]byte{'x'}, 0); return err }
	if err := each(clients, one); err != nil {
		return res, fmt.Errorf("client send: %w", err)
	}
	if err := each(servers, func(s *socket.Socket) error {
		var b [1]byte
		s.SetTimeout(30 * time.Second)
		if k, err := s.Recv(b[:], 0); k != 1 || err != nil {
			info, _ := s.GetSockOpt(socket.IPPROTO_TCP, socket.TCP_INFO)
			peer, _ := s.GetPeerName()
			return fmt.Errorf("server recv from %v: %d %v; %+v; %s", peer, k, err, info, lossInfo())
		}
		_, err := s.Send(b[:], 0)
		return err
	}); err != nil {
		return res, err
	}
	if err := each(clients, func(s *socket.Socket) error {
		var b [1]byte
		if k, err := s.Recv(b[:], 0); k != 1 || err != nil || b[0] != 'x' {
			return fmt.Errorf("client recv: %d %v", k, err)
		}
		return nil
	}); err != nil {
		return res, err
	}
	res.Echo = time.Since(start)
	progress(fmt.Sprintf("echoed one byte on %d connections in %.1fs (%s)", n, res.Echo.Seconds(), lossInfo()))

	// Close: clients first (they go to TIME_WAIT), then servers.
	start = time.Now()
	cl := func(s *socket.Socket) error { return s.Close() }
	if err := each(clients, cl); err != nil {
		return res, err
	}
	if err := each(servers, cl); err != nil {
		return res, err
	}
	// Clean: no connection left in any state but TIME_WAIT on either
	// host (every FIN acknowledged; TIME_WAIT records expire on their own).
	notDone := func() int {
		k := 0
		for _, s := range []*stack.Stack{sa, sb} {
			for _, c := range s.TCP.Table() {
				if c.State != tcp.StateTimeWait {
					k++
				}
			}
		}
		return k
	}
	for {
		k := notDone()
		if k == 0 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return res, fmt.Errorf("%d connections still open after 5 minutes (%s)", k, lossInfo())
		}
		time.Sleep(100 * time.Millisecond) // the FIN exchange runs on the link goroutines
	}
	res.Close = time.Since(start)
	ta, tb := sa.TCP.Stats(), sb.TCP.Stats()
	res.Resets = ta.OutRsts + tb.OutRsts
	res.TimeWaitOverflow = ta.TimeWaitOverflow + tb.TimeWaitOverflow
	progress(fmt.Sprintf("closed in %.1fs; resets %d, TIME_WAIT overflow %d, TIME_WAIT records %d (%s)", res.Close.Seconds(), res.Resets, res.TimeWaitOverflow, ta.TimeWaitRecords+tb.TimeWaitRecords, lossInfo()))
	runtime.KeepAlive(clients)
	return res, nil
}

// rss is the process's resident set from /proc (0 when unknown).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				k, _ := strconv.ParseInt(f[1], 10, 64)
				return k << 10
			}
		}
	}
	return 0
}
