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
	return ManyWith(ManyConfig{Conns: n, Ports: ports, Workers: workers}, progress)
}

// ManyConfig sets up ManyWith.
type ManyConfig struct {
	Conns, Ports, Workers int
	// Queue is the link's queue in frames each way (0: link.DefaultQueueLen).
	// A full queue pushes back on TCP (the segment waits, unsent), so a
	// deep one only adds queueing delay, which past the 200 ms minimum RTO
	// turns into spurious retransmissions.
	Queue int
	// Opened, if set, runs with every connection established and idle
	// (for a heap profile).
	Opened func()
}

// ManyWith is Many with every setting.
func ManyWith(mc ManyConfig, progress func(string)) (ManyResult, error) {
	n, ports, workers := mc.Conns, mc.Ports, mc.Workers
	if mc.Queue <= 0 {
		mc.Queue = link.DefaultQueueLen
	}
	if progress == nil {
		progress = func(string) {}
	}
	per := (n + ports - 1) / ports
	if per > 16384 {
		return ManyResult{}, fmt.Errorf("%d connections need at least %d listening ports (16384 ephemeral ports per server port)", n, (n+16383)/16384)
	}
	pa, pb := link.NewPipeQueue(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500, mc.Queue)
	cfg := tcp.Config{MaxTimeWait: n + 1024, MaxOrphans: n + 1024, SOMAXCONN: 65535}
	sa := stack.New(stack.Options{Name: "a", TCP: cfg})
	sb := stack.New(stack.Options{Name: "b", TCP: cfg})
	defer sa.Close()
	defer sb.Close()
	sa.AddNIC("eth0", pa).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	sb.AddNIC("eth0", pb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	na, nb := socket.New(sa), socket.New(sb)

	var res ManyResult
	res.Conns = n
	clients := make([]*socket.Socket, n)
	cport := make([]uint16, n) // each client's local port
	// The accepted sockets by listening port and client port, so that
	// each connection's two ends are paired (slot(j, port)).
	servers := make([]*socket.Socket, ports<<16)
	slot := func(j int, port uint16) int { return j<<16 | int(port) }
	base := heapStack() // after the harness's own tables
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
				c, peer, err := l.Accept()
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
				pa, _ := peer.(*socket.SockaddrInet)
				if pa == nil {
					acceptErr.Store(fmt.Errorf("accept: peer %v", peer))
					return
				}
				servers[slot(j, pa.AddrPort.Port())] = c
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

	lossInfo := func() string {
		ta, tb := sa.TCP.Stats(), sb.TCP.Stats()
		return fmt.Sprintf("link queue full %d (TCP waited %d, wake-ups %d), retransmits %d (SYN %d, timeouts %d, probes %d)",
			sa.Stats().Link.OutQueueFull.Load()+sb.Stats().Link.OutQueueFull.Load(),
			ta.LinkQueueFull+tb.LinkQueueFull, ta.LinkRoomWakeups+tb.LinkRoomWakeups,
			ta.RetransSegs+tb.RetransSegs, ta.SynRetransmits+tb.SynRetransmits, ta.Timeouts+tb.Timeouts, ta.TLPProbes+tb.TLPProbes) +
			fmt.Sprintf(", buffer memory %d+%d bytes (dropped for it %d)", ta.MemBytes, tb.MemBytes, ta.RcvMemDrops+tb.RcvMemDrops)
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
				la, _ := c.GetSockName()
				if sa, ok := la.(*socket.SockaddrInet); ok {
					cport[i] = sa.AddrPort.Port()
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
	progress("opened: " + lossInfo())
	if mc.Opened != nil {
		mc.Opened()
	}
	res.RSS = rss()
	progress(fmt.Sprintf("%d established in %.1fs, %.0f bytes per idle pair", n, res.Open.Seconds(), res.BytesPerConnPair))

	// Echo: every client sends a byte, its server returns it, the client
	// reads it back; workers take connections in turn, so at most one
	// exchange per worker is under way (an application's pattern, not a
	// burst of a million segments at once).
	each := func(fn func(c, s *socket.Socket) error) error {
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
					s := servers[slot(i%ports, cport[i])]
					if s == nil {
						firstErr.Store(fmt.Errorf("connection %d: no accepted socket for client port %d", i, cport[i]))
						return
					}
					if err := fn(clients[i], s); err != nil {
						firstErr.Store(fmt.Errorf("connection %d: %w (%s)", i, err, lossInfo()))
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
	start = time.Now()
	if err := each(func(c, s *socket.Socket) error {
		var b [1]byte
		if _, err := c.Send([]byte{'x'}, 0); err != nil {
			return fmt.Errorf("client send: %w", err)
		}
		s.SetTimeout(30 * time.Second)
		if k, err := s.Recv(b[:], 0); k != 1 || err != nil {
			return fmt.Errorf("server recv: %d %v", k, err)
		}
		if _, err := s.Send(b[:], 0); err != nil {
			return fmt.Errorf("server send: %w", err)
		}
		if k, err := c.Recv(b[:], 0); k != 1 || err != nil || b[0] != 'x' {
			ci, _ := c.GetSockOpt(socket.IPPROTO_TCP, socket.TCP_INFO)
			si, _ := s.GetSockOpt(socket.IPPROTO_TCP, socket.TCP_INFO)
			return fmt.Errorf("client recv: %d %v; client %+v; server %+v", k, err, ci, si)
		}
		return nil
	}); err != nil {
		return res, err
	}
	res.Echo = time.Since(start)
	progress(fmt.Sprintf("echoed one byte on %d connections in %.1fs (%s)", n, res.Echo.Seconds(), lossInfo()))

	// A collection now, outside the timed phase: closing allocates the
	// TIME_WAIT records, and a collection of a heap of gigabytes started
	// by them would mark for seconds on this loaded 2-core machine,
	// stalling the links past the 200 ms minimum RTO (the retransmitted
	// FINs then draw resets). Opening ends with one (heapStack) too.
	runtime.GC()

	// Close, as an application does: the client shuts down its sending
	// side, the server reads the end of the stream and closes, the client
	// reads the server's end and closes (the client keeps TIME_WAIT).
	start = time.Now()
	if err := each(func(c, s *socket.Socket) error {
		var b [1]byte
		if err := c.Shutdown(socket.SHUT_WR); err != nil {
			return fmt.Errorf("client shutdown: %w", err)
		}
		if k, err := s.Recv(b[:], 0); k != 0 || err != nil {
			return fmt.Errorf("server recv at the end: %d %v", k, err)
		}
		if err := s.Close(); err != nil {
			return fmt.Errorf("server close: %w", err)
		}
		if k, err := c.Recv(b[:], 0); k != 0 || err != nil {
			return fmt.Errorf("client recv at the end: %d %v", k, err)
		}
		return c.Close()
	}); err != nil {
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
	if res.Resets != 0 {
		progress(fmt.Sprintf("resets: a %d (abort on close %d, on data %d, no port %d), b %d (abort on close %d, on data %d, no port %d)",
			ta.OutRsts, ta.AbortOnClose, ta.AbortOnData, ta.NoPortDrops, tb.OutRsts, tb.AbortOnClose, tb.AbortOnData, tb.NoPortDrops))
	}
	res.TimeWaitOverflow = ta.TimeWaitOverflow + tb.TimeWaitOverflow
	progress(fmt.Sprintf("closed in %.1fs; resets %d, TIME_WAIT overflow %d, TIME_WAIT records %d (%s)", res.Close.Seconds(), res.Resets, res.TimeWaitOverflow, ta.TimeWaitRecords+tb.TimeWaitRecords, lossInfo()))
	runtime.KeepAlive(clients)
	return res, nil
}

// rss is the process's resident set from /proc (0 when unknown).
func rss() int64 { return procStatus("VmRSS:") }

// PeakRSS is the process's largest resident set so far (0 when unknown).
func PeakRSS() int64 { return procStatus("VmHWM:") }

// procStatus reads a size in kB from /proc/self/status, in bytes.
func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				k, _ := strconv.ParseInt(f[1], 10, 64)
				return k << 10
			}
		}
	}
	return 0
}
