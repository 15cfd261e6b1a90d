package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// Flow is one unit of a workload (a TCP transfer, a request/response
// connection, a ping series, a UDP stream, a traceroute) and its results.
type Flow struct {
	ID       int    `json:"id"`
	Workload string `json:"workload"`
	Kind     string `json:"kind"`
	From     string `json:"from"`
	To       string `json:"to"`
	Client   string `json:"client,omitempty"`
	Server   string `json:"server,omitempty"`
	CC       string `json:"cc,omitempty"`

	Start time.Duration `json:"-"`
	End   time.Duration `json:"-"`

	Bytes     uint64 `json:"bytes"` // payload the workload asked for
	Sent      uint64 `json:"sent"`
	Received  uint64 `json:"received"`
	Completed bool   `json:"completed"`
	HashOK    bool   `json:"hash_ok"`
	Err       string `json:"error,omitempty"`
	SendHash  string `json:"send_sha256,omitempty"`
	RecvHash  string `json:"recv_sha256,omitempty"`

	// Filled by finish.
	StartS      float64 `json:"start_s"`
	DurationS   float64 `json:"duration_s"`
	GoodputBps  float64 `json:"goodput_bps"`
	Retransmits uint64  `json:"retransmitted_segments,omitempty"`
	SegsOut     uint64  `json:"segments_out,omitempty"`
	SRTTms      float64 `json:"srtt_ms,omitempty"`

	Requests  int     `json:"requests,omitempty"`
	LatMinMs  float64 `json:"latency_min_ms,omitempty"`
	LatMeanMs float64 `json:"latency_mean_ms,omitempty"`
	LatP50Ms  float64 `json:"latency_p50_ms,omitempty"`
	LatP99Ms  float64 `json:"latency_p99_ms,omitempty"`
	LatMaxMs  float64 `json:"latency_max_ms,omitempty"`

	DgramsSent uint64  `json:"datagrams_sent,omitempty"`
	DgramsRecv uint64  `json:"datagrams_received,omitempty"`
	Reordered  uint64  `json:"reordered,omitempty"`
	Duplicates uint64  `json:"duplicates,omitempty"`
	JitterMs   float64 `json:"jitter_ms,omitempty"`

	Hops []string `json:"hops,omitempty"`
	// FailedConns counts churn connections that failed (reset, timeout).
	FailedConns int    `json:"failed_connections,omitempty"`
	LastErr     string `json:"last_connection_error,omitempty"`

	lat     []time.Duration
	ep      *tcp.Endpoint // the sender's endpoint, sampled while it lives
	last    tcp.Info
	Samples []Sample `json:"-"`
	// udp receiver state
	seen        map[uint64]bool
	maxSeq      uint64
	transitPrev int64
	jitter      float64
}

// Sample is one point of a TCP sender's state over time.
type Sample struct {
	T          time.Duration
	Cwnd       int
	Ssthresh   int
	InFlight   int
	SRTT       time.Duration
	BytesAcked uint64
}

func (f *Flow) done(now time.Duration) bool { return f.Completed || f.Err != "" }

func (f *Flow) complete(now time.Duration) {
	if f.Completed || f.Err != "" {
		return
	}
	f.Completed = true
	f.End = now
}

func (f *Flow) finish(now time.Duration) {
	if f.End == 0 {
		f.End = now
		if f.Err == "" && !f.Completed {
			f.Err = "unfinished at end of run"
		}
	}
	f.StartS = f.Start.Seconds()
	f.DurationS = (f.End - f.Start).Seconds()
	if f.DurationS > 0 {
		f.GoodputBps = float64(f.Received) * 8 / f.DurationS
	}
	if f.ep != nil {
		f.snapInfo()
	}
	f.Retransmits = f.last.TotalRetrans
	f.SegsOut = f.last.SegsOut
	f.SRTTms = ms(f.last.RTT)
	if n := len(f.lat); n > 0 {
		s := slices.Clone(f.lat)
		slices.Sort(s)
		var sum time.Duration
		for _, v := range s {
			sum += v
		}
		f.LatMinMs, f.LatMaxMs = ms(s[0]), ms(s[n-1])
		f.LatMeanMs = ms(sum / time.Duration(n))
		f.LatP50Ms = ms(s[n/2])
		f.LatP99Ms = ms(s[min(n-1, n*99/100)])
	}
	f.JitterMs = f.jitter / 1e6
}

func (f *Flow) snapInfo() {
	if f.ep != nil {
		f.last = f.ep.Info()
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Workload is one entry of a scenario's workloads.
type Workload struct {
	Name        string
	Type        string // bulk, rr, http, churn, ping, udp, traceroute
	From        []*Host
	To          *Host
	Dst         netip.Addr // the address of To to use (default: its first)
	Port        uint16
	Bytes       uint64        // bulk: per flow; rr/churn: request size; udp: datagram size; ping: payload
	Response    uint64        // rr/http/churn: response size
	Count       int           // rr/http: requests per connection; churn: connections; ping: echoes; bulk: flows per client
	Concurrency int           // churn: connections at once
	Start       time.Duration // virtual time of the first action
	Interval    time.Duration // ping/udp: between sends; rr: think time
	Duration    time.Duration // udp: how long to send
	Rate        float64       // udp: bits per second (sets Interval)
	CC          string        // TCP congestion control
	MaxHops     int           // traceroute
	Trace       bool          // sample the TCP state of these flows
	Timeout     time.Duration // rr/http/churn: a request not answered by then aborts its connection (default 10s)
}

func (n *Net) newFlow(w *Workload, kind string, from *Host) *Flow {
	f := &Flow{ID: len(n.Flows), Workload: w.Name, Kind: kind, From: from.Name, To: w.To.Name, CC: w.CC, Bytes: w.Bytes}
	n.Flows = append(n.Flows, f)
	n.active++
	if w.Trace && len(n.traced) < n.MaxTraced {
		n.traced = append(n.traced, f)
	}
	return f
}

// flowDone is called once per flow when it completes or fails.
func (n *Net) flowDone(f *Flow) {
	if f.ep != nil {
		f.snapInfo()
	}
	n.active--
	if n.active == 0 && n.StopWhenDone {
		// Let the last FIN/ACKs reach the wire before stopping.
		n.S.After(n.Linger, n.S.Stop)
	}
}

func (n *Net) failFlow(f *Flow, err error) {
	if f.done(0) {
		return
	}
	f.fail(n.S.Now(), err)
	n.flowDone(f)
}

func (n *Net) completeFlow(f *Flow) {
	if f.done(0) {
		return
	}
	f.complete(n.S.Now())
	n.flowDone(f)
}

// Start schedules the workload.
func (n *Net) Start(w *Workload) error {
	switch w.Type {
	case "bulk":
		return n.startBulk(w)
	case "rr", "http", "churn":
		return n.startRR(w)
	case "ping":
		return n.startPing(w)
	case "udp":
		return n.startUDP(w)
	case "traceroute":
		return n.startTraceroute(w)
	}
	return fmt.Errorf("unknown workload type %q", w.Type)
}

func (n *Net) serverAddr(w *Workload) netip.AddrPort {
	return netip.AddrPortFrom(w.dst(), w.Port)
}

// dst is the address the workload sends to.
func (w *Workload) dst() netip.Addr {
	if w.Dst.IsValid() {
		return w.Dst
	}
	return w.To.Addr()
}

// anyAddr is the unspecified address of a's family, to bind to.
func anyAddr(a netip.Addr) netip.Addr {
	if a.Is6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// listenOnce starts one server per (host, port).
func (n *Net) listenOnce(h *Host, port uint16, serve func(*conn)) error {
	k := fmt.Sprintf("%s:%d", h.Name, port)
	if n.listening[k] {
		return nil
	}
	n.listening[k] = true
	return h.Listen(port, serve)
}

// --- bulk: the client sends Bytes, the server hashes what arrives ---

func (n *Net) startBulk(w *Workload) error {
	if err := n.listenOnce(w.To, w.Port, n.serveSink); err != nil {
		return err
	}
	for _, from := range w.From {
		for range max(w.Count, 1) {
			f := n.newFlow(w, "bulk", from)
			from := from
			n.S.At(w.Start, func() { n.dialBulk(w, f, from) })
		}
	}
	return nil
}

func (n *Net) dialBulk(w *Workload, f *Flow, from *Host) {
	f.Start = n.S.Now()
	if !from.alive {
		n.failFlow(f, fmt.Errorf("host %s is down", from.Name))
		return
	}
	c, err := from.Dial(n.serverAddr(w), w.CC, func(c *conn) {
		if c.stage == 0 {
			ok, err := c.established()
			if err != nil {
				n.failFlow(f, err)
				c.close()
				return
			}
			if !ok {
				return
			}
			c.stage = 1
		}
		if err := c.writeStream(w.Bytes); err != nil {
			n.failFlow(f, err)
			c.close()
			return
		}
		f.Sent = c.sent
		if c.sent == w.Bytes && !c.shut {
			c.shut = true
			f.SendHash = hexSum(c.hash)
			c.ep.Shutdown(tcp.ShutWr)
		}
		eof, err := c.readAll(nil)
		if err != nil {
			n.failFlow(f, err)
			c.close()
			return
		}
		if eof {
			f.snapInfo()
			c.close()
		}
	})
	if err != nil {
		n.failFlow(f, err)
		return
	}
	c.hash = newHash()
	c.flow = f
	f.ep = c.ep
	f.Client = c.ep.LocalAddr().String()
	f.Server = n.serverAddr(w).String()
	n.byClient[c.ep.LocalAddr()] = f
}

func (n *Net) serveSink(c *conn) {
	if c.flow == nil {
		ra, _ := c.ep.RemoteAddr()
		c.flow = n.byClient[ra]
		if c.flow == nil {
			c.flow = &Flow{} // an unknown client: read and drop
		}
		c.hash = newHash()
	}
	f := c.flow
	eof, err := c.readAll(func(b []byte) { c.hash.Write(b) })
	f.Received = c.recvd
	if err != nil {
		n.failFlow(f, err)
		c.close()
		return
	}
	if eof {
		f.RecvHash = hexSum(c.hash)
		f.HashOK = f.RecvHash == f.SendHash && f.Received == f.Bytes
		if f.HashOK {
			n.completeFlow(f)
		} else {
			n.failFlow(f, fmt.Errorf("received %d bytes, hash mismatch", f.Received))
		}
		c.close()
	}
}

// --- request/response, HTTP-like, connection churn ---

// An rr request is an 8-byte header (request length, response length)
// and filler; the server answers with response-length bytes.
func (n *Net) startRR(w *Workload) error {
	serve := n.serveRR
	if w.Type == "http" {
		serve = n.serveHTTP
	}
	if err := n.listenOnce(w.To, w.Port, serve); err != nil {
		return err
	}
	for _, from := range w.From {
		from := from
		if w.Type == "churn" {
			f := n.newFlow(w, "churn", from)
			st := &churnState{w: w, f: f, from: from}
			n.S.At(w.Start, func() {
				f.Start = n.S.Now()
				for range max(w.Concurrency, 1) {
					n.churnNext(st)
				}
			})
			continue
		}
		f := n.newFlow(w, w.Type, from)
		n.S.At(w.Start, func() {
			f.Start = n.S.Now()
			n.dialRR(w, f, from, max(w.Count, 1), nil)
		})
	}
	return nil
}

type churnState struct {
	w             *Workload
	f             *Flow
	from          *Host
	started, done int
}

func (n *Net) churnNext(st *churnState) {
	if st.started >= max(st.w.Count, 1) {
		return
	}
	st.started++
	n.dialRR(st.w, st.f, st.from, 1, func(ok bool) {
		st.done++
		if st.done == max(st.w.Count, 1) {
			st.f.HashOK = st.f.FailedConns == 0
			n.completeFlow(st.f)
			return
		}
		n.churnNext(st)
	})
}

func (n *Net) dialRR(w *Workload, f *Flow, from *Host, count int, onEnd func(ok bool)) {
	if !from.alive {
		n.failFlow(f, fmt.Errorf("host %s is down", from.Name))
		return
	}
	ended := false
	end := func(c *conn, err error) {
		if ended {
			return
		}
		ended = true
		if err != nil {
			// Abort: a reset tells the peer at once, as an application's
			// timeout with SO_LINGER 0 would.
			c.ep.SetLinger(true, 0)
		}
		c.close()
		if err != nil {
			if onEnd != nil {
				f.FailedConns++
				if f.Err == "" {
					f.LastErr = err.Error()
				}
			} else {
				n.failFlow(f, err)
			}
		}
		if onEnd != nil {
			onEnd(err == nil)
		} else if err == nil {
			f.HashOK = true
			n.completeFlow(f)
		}
	}
	var req []byte
	if w.Type == "http" {
		req = fmt.Appendf(nil, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", w.Response, w.To.Name)
	} else {
		req = make([]byte, max(w.Bytes, 8))
		binary.BigEndian.PutUint32(req, uint32(len(req)))
		binary.BigEndian.PutUint32(req[4:], uint32(w.Response))
	}
	var think bool
	c, err := from.dialRPC(n.serverAddr(w), w.CC, func(c *conn) {
		for {
			switch c.stage {
			case 0: // connecting
				ok, err := c.established()
				if err != nil {
					end(c, err)
					return
				}
				if !ok {
					return
				}
				c.stage = 1
			case 1: // sending the request
				if c.sent == 0 {
					c.reqStart = int64(n.S.Now())
				}
				if c.sent == 0 {
					id, timeout := c.done, w.Timeout
					if timeout == 0 {
						timeout = 10 * time.Second
					}
					n.S.After(timeout, func() {
						if c.done == id && !ended {
							end(c, syscall.ETIMEDOUT)
						}
					})
				}
				for c.sent < uint64(len(req)) {
					k, err := c.ep.Write(req[c.sent:])
					c.sent += uint64(k)
					f.Sent += uint64(k)
					if err != nil {
						if err == syscall.EAGAIN {
							return
						}
						end(c, err)
						return
					}
				}
				c.stage, c.need, c.hdr = 2, w.Response, c.hdr[:0]
				if w.Type == "http" {
					c.need = 0
					c.stage = 4
				}
			case 4: // http: reading the response header
				buf := c.s.scratch()[:256]
				k, err := c.ep.Read(buf, false)
				if k == 0 {
					if err == syscall.EAGAIN {
						return
					}
					end(c, fmt.Errorf("http: connection ended in header: %v", err))
					return
				}
				c.hdr = append(c.hdr, buf[:k]...)
				i := bytes.Index(c.hdr, []byte("\r\n\r\n"))
				if i < 0 {
					if len(c.hdr) > 8192 {
						end(c, fmt.Errorf("http: header too long"))
						return
					}
					continue
				}
				cl := contentLength(c.hdr[:i])
				if cl < 0 {
					end(c, fmt.Errorf("http: no Content-Length"))
					return
				}
				body := uint64(len(c.hdr) - i - 4)
				f.Received += body
				c.need = uint64(cl) - min(body, uint64(cl))
				c.stage = 2
			case 2: // reading the response
				buf := c.s.scratch()
				for c.need > 0 {
					k, err := c.ep.Read(buf[:min(uint64(len(buf)), c.need)], false)
					c.need -= uint64(k)
					f.Received += uint64(k)
					if k == 0 {
						if err == syscall.EAGAIN {
							return
						}
						if err == nil {
							err = syscall.ECONNRESET
						}
						end(c, err)
						return
					}
				}
				f.lat = append(f.lat, n.S.Now()-time.Duration(c.reqStart))
				f.Requests++
				c.done++
				if c.done >= count {
					end(c, nil)
					return
				}
				c.sent = 0
				c.stage = 1
				if w.Interval > 0 {
					c.stage = 3
					think = true
					n.S.After(w.Interval, func() { think = false; c.stage = 1; c.wake(0) })
					return
				}
			case 3: // thinking
				if think {
					return
				}
				c.stage = 1
			}
		}
	})
	if err != nil {
		n.failFlow(f, err)
		return
	}
	if f.ep == nil {
		f.ep = c.ep
		f.Client = c.ep.LocalAddr().String()
		f.Server = n.serverAddr(w).String()
	}
}

func contentLength(h []byte) int {
	for _, line := range bytes.Split(h, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			if x, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil && x >= 0 {
				return x
			}
		}
	}
	return -1
}

// dialRPC is Dial with TCP_NODELAY, as RPC clients set it: a response
// tail must not wait for the ACK of the segment before it (Nagle).
func (h *Host) dialRPC(to netip.AddrPort, cc string, fn func(c *conn)) (*conn, error) {
	c, err := h.Dial(to, cc, fn)
	if err == nil {
		c.ep.SetNoDelay(true)
	}
	return c, err
}

// serveRR answers rr requests: read the header, skip the body, write the
// response; never reads past the current request.
func (n *Net) serveRR(c *conn) {
	c.ep.SetNoDelay(true)
	buf := c.s.scratch()
	for {
		switch c.stage {
		case 0: // header
			k, err := c.ep.Read(buf[:8-len(c.hdr)], false)
			if k == 0 {
				if err != syscall.EAGAIN {
					c.close()
				}
				return
			}
			c.hdr = append(c.hdr, buf[:k]...)
			if len(c.hdr) < 8 {
				continue
			}
			reqLen := binary.BigEndian.Uint32(c.hdr)
			c.respLeft = uint64(binary.BigEndian.Uint32(c.hdr[4:]))
			c.hdr = c.hdr[:0]
			c.need = uint64(max(reqLen, 8) - 8)
			c.stage = 1
		case 1: // body
			for c.need > 0 {
				k, err := c.ep.Read(buf[:min(uint64(len(buf)), c.need)], false)
				c.need -= uint64(k)
				if k == 0 {
					if err != syscall.EAGAIN {
						c.close()
					}
					return
				}
			}
			c.stage, c.sent = 2, 0
		case 2: // response
			if err := c.writeStream(c.respLeft); err != nil {
				c.close()
				return
			}
			if c.sent < c.respLeft {
				return
			}
			c.stage = 0
		}
	}
}

// serveHTTP answers "GET /N" with N bytes.
func (n *Net) serveHTTP(c *conn) {
	c.ep.SetNoDelay(true)
	buf := c.s.scratch()
	for {
		switch c.stage {
		case 0:
			k, err := c.ep.Read(buf[:512], false)
			if k == 0 {
				if err != syscall.EAGAIN {
					c.close()
				}
				return
			}
			c.hdr = append(c.hdr, buf[:k]...)
			i := bytes.Index(c.hdr, []byte("\r\n\r\n"))
			if i < 0 {
				if len(c.hdr) > 8192 {
					c.close()
				}
				continue
			}
			line, _, _ := bytes.Cut(c.hdr, []byte("\r\n"))
			var size uint64
			if f := bytes.Fields(line); len(f) == 3 && string(f[0]) == "GET" && len(f[1]) > 1 {
				size, _ = strconv.ParseUint(string(f[1][1:]), 10, 32)
			}
			c.hdr = c.hdr[:0]
			c.hdr = fmt.Appendf(c.hdr, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", size)
			c.need = uint64(len(c.hdr))
			c.respLeft = size
			c.sent = 0
			c.stage = 1
		case 1: // header out
			for c.need > 0 {
				k, err := c.ep.Write(c.hdr[uint64(len(c.hdr))-c.need:])
				c.need -= uint64(k)
				if err != nil {
					if err != syscall.EAGAIN {
						c.close()
					}
					return
				}
			}
			c.stage = 2
		case 2:
			if err := c.writeStream(c.respLeft); err != nil {
				c.close()
				return
			}
			if c.sent < c.respLeft {
				return
			}
			c.hdr = c.hdr[:0]
			c.stage = 0
		}
	}
}

// --- datagram agents ---

// dgram binds a datagram endpoint to an event-driven handler.
type dgram struct {
	s       *Sim
	h       *Host
	gen     uint64
	ep      *stack.DgramEndpoint
	ent     waiter.Entry
	pending bool
	fn      func(d *dgram)
}

func (h *Host) watchDgram(ep *stack.DgramEndpoint, fn func(*dgram)) *dgram {
	d := &dgram{s: h.s, h: h, gen: h.gen, ep: ep, fn: fn}
	d.ent.Fn = func(waiter.EventMask) {
		if !d.pending {
			d.pending = true
			d.s.schedule(0, d, 0, nil)
		}
	}
	ep.Waiter().Register(&d.ent, waiter.EventIn|waiter.EventErr)
	return d
}

func (d *dgram) fire(uint64, *packet) {
	d.pending = false
	if d.h.gen == d.gen {
		d.fn(d)
	}
}

func (n *Net) startPing(w *Workload) error {
	for _, from := range w.From {
		f := n.newFlow(w, "ping", from)
		from := from
		n.S.At(w.Start, func() { n.runPing(w, f, from) })
	}
	return nil
}

func (n *Net) runPing(w *Workload, f *Flow, from *Host) {
	f.Start = n.S.Now()
	ep := from.Stack.NewDgram(stack.KindPing, 0)
	dstA := w.dst()
	v6 := dstA.Is6()
	echo, reply := wire.ICMPEcho, wire.ICMPEchoReply
	if v6 {
		ep.SetInet6() // ICMPv6 echo
		echo, reply = wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply
	}
	id := uint16(1000 + f.ID)
	if err := ep.Bind(netip.AddrPortFrom(anyAddr(dstA), id)); err != nil {
		n.failFlow(f, err)
		return
	}
	count := max(w.Count, 1)
	interval := w.Interval
	if interval == 0 {
		interval = time.Second
	}
	dst := netip.AddrPortFrom(dstA, 0)
	sentAt := make([]time.Duration, count)
	got := 0
	finish := func() {
		ep.Close()
		f.Received = uint64(got)
		if got == 0 {
			n.failFlow(f, fmt.Errorf("no echo reply"))
			return
		}
		f.HashOK = true
		n.completeFlow(f)
	}
	from.watchDgram(ep, func(d *dgram) {
		buf := d.s.scratch()
		for {
			k, _, _, err := ep.RecvFrom(buf, false)
			if err != nil || k < wire.ICMPv4HeaderLen {
				return
			}
			// Echo headers have the same layout in ICMPv4 and ICMPv6.
			m := wire.ICMPv4(buf[:k])
			if m.Type() != reply || int(m.Seq()) >= count || sentAt[m.Seq()] < 0 {
				continue
			}
			f.lat = append(f.lat, n.S.Now()-sentAt[m.Seq()])
			sentAt[m.Seq()] = -1
			got++
			f.DgramsRecv++
		}
	})
	size := max(int(w.Bytes), 0)
	msg := make([]byte, wire.ICMPv4HeaderLen+size)
	var send func(seq int)
	send = func(seq int) {
		if !from.alive {
			return
		}
		if seq == count {
			// The last reply gets two seconds (or one interval) to come back.
			n.S.After(max(2*time.Second, interval), finish)
			return
		}
		clear(msg)
		msg[0] = echo
		wire.ICMPv4(msg).SetSeq(uint16(seq))
		copy(msg[wire.ICMPv4HeaderLen:], n.S.pattern())
		sentAt[seq] = n.S.Now()
		if _, err := ep.SendTo(msg, dst, nil); err == nil {
			f.DgramsSent++
			f.Sent++
		}
		n.S.After(interval, func() { send(seq + 1) })
	}
	send(0)
}

// A UDP stream datagram starts with its sequence number and send time.
func (n *Net) startUDP(w *Workload) error {
	size := max(int(w.Bytes), 16)
	interval := w.Interval
	if w.Rate > 0 {
		interval = time.Duration(float64(size+28+14) * 8 * 1e9 / w.Rate)
	}
	if interval <= 0 {
		interval = time.Millisecond
	}
	dur := w.Duration
	if dur == 0 {
		dur = 10 * time.Second
	}
	dstA := w.dst()
	if dstA.Is6() {
		// IPv6 adds 20 header bytes to what the rate counts.
		if w.Rate > 0 {
			interval = time.Duration(float64(size+48+14) * 8 * 1e9 / w.Rate)
		}
	}
	rx := w.To.Stack.NewDgram(stack.KindUDP, 0)
	if dstA.Is6() {
		rx.SetInet6()
		rx.SetV6Only(true)
	}
	if err := rx.Bind(netip.AddrPortFrom(anyAddr(dstA), w.Port)); err != nil {
		return err
	}
	flows := map[netip.AddrPort]*Flow{}
	w.To.watchDgram(rx, func(d *dgram) {
		buf := d.s.scratch()
		for {
			k, _, from, err := rx.RecvFrom(buf, false)
			if err != nil || k == 0 {
				return
			}
			f := flows[from]
			if f == nil || k < 16 {
				continue
			}
			seq := binary.BigEndian.Uint64(buf)
			sent := int64(binary.BigEndian.Uint64(buf[8:]))
			now := int64(n.S.Now())
			if f.seen[seq] {
				f.Duplicates++
				continue
			}
			f.seen[seq] = true
			f.DgramsRecv++
			f.Received += uint64(k)
			if seq < f.maxSeq {
				f.Reordered++
			}
			f.maxSeq = max(f.maxSeq, seq)
			transit := now - sent
			f.lat = append(f.lat, time.Duration(transit))
			if f.DgramsRecv > 1 {
				// RFC 3550 interarrival jitter.
				dlt := float64(transit - f.transitPrev)
				if dlt < 0 {
					dlt = -dlt
				}
				f.jitter += (dlt - f.jitter) / 16
			}
			f.transitPrev = transit
		}
	})
	for i, from := range w.From {
		f := n.newFlow(w, "udp", from)
		f.seen = map[uint64]bool{}
		tx := from.Stack.NewDgram(stack.KindUDP, 0)
		if dstA.Is6() {
			tx.SetInet6()
			tx.SetV6Only(true)
		}
		sport := uint16(40000 + i)
		if err := tx.Bind(netip.AddrPortFrom(anyAddr(dstA), sport)); err != nil {
			return err
		}
		src := srcFor(from, dstA)
		flows[netip.AddrPortFrom(src, sport)] = f
		f.Client = netip.AddrPortFrom(src, sport).String()
		f.Server = n.serverAddr(w).String()
		dst := n.serverAddr(w)
		msg := make([]byte, size)
		copy(msg[16:], n.S.pattern())
		var seq uint64
		var tick func()
		tick = func() {
			now := n.S.Now()
			if now-f.Start >= dur || !from.alive {
				n.S.After(2*time.Second, func() {
					f.HashOK = f.DgramsRecv > 0
					n.completeFlow(f)
				})
				return
			}
			binary.BigEndian.PutUint64(msg, seq)
			binary.BigEndian.PutUint64(msg[8:], uint64(now))
			if _, err := tx.SendTo(msg, dst, nil); err == nil {
				f.DgramsSent++
				f.Sent += uint64(size)
			}
			seq++
			n.S.After(interval, tick)
		}
		n.S.At(w.Start, func() { f.Start = n.S.Now(); tick() })
	}
	return nil
}

// startTraceroute sends echo requests with growing TTL and records who
// answers: a router's time exceeded, or the destination's echo reply.
func (n *Net) startTraceroute(w *Workload) error {
	for _, from := range w.From {
		f := n.newFlow(w, "traceroute", from)
		from := from
		n.S.At(w.Start, func() { n.runTraceroute(w, f, from) })
	}
	return nil
}

func (n *Net) runTraceroute(w *Workload, f *Flow, from *Host) {
	f.Start = n.S.Now()
	maxHops := w.MaxHops
	if maxHops == 0 {
		maxHops = 16
	}
	id := uint16(2000 + f.ID)
	dst := w.dst()
	v6 := dst.Is6()
	ping := from.Stack.NewDgram(stack.KindPing, 0)
	var raw *stack.DgramEndpoint
	echo, reply, exceeded := wire.ICMPEcho, wire.ICMPEchoReply, wire.ICMPTimeExceeded
	if v6 {
		// ICMPv6 echo; the raw ICMPv6 socket gets messages without the
		// IP header (RFC 3542 3), the sender in its address.
		ping.SetInet6()
		raw = from.Stack.NewDgram(stack.KindRaw, wire.ProtoICMPv6)
		raw.SetInet6()
		echo, reply, exceeded = wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply, wire.ICMPv6TimeExceeded
	} else {
		raw = from.Stack.NewDgram(stack.KindRaw, wire.ProtoICMP)
	}
	if err := ping.Bind(netip.AddrPortFrom(anyAddr(dst), id)); err != nil {
		n.failFlow(f, err)
		return
	}
	ttl := 0
	answered := false
	var probe func()
	gen := 0
	next := func(hop string, last bool) {
		if answered {
			return
		}
		answered = true
		f.Hops = append(f.Hops, hop)
		if last {
			ping.Close()
			raw.Close()
			f.HashOK = true
			n.completeFlow(f)
			return
		}
		probe()
	}
	from.watchDgram(ping, func(d *dgram) {
		buf := d.s.scratch()
		for {
			k, _, src, err := ping.RecvFrom(buf, false)
			if err != nil || k == 0 {
				return // EAGAIN, or closed
			}
			m := wire.ICMPv4(buf[:k])
			if k >= 8 && m.Type() == reply && int(m.Seq()) == ttl {
				next(src.Addr().String(), true)
			}
		}
	})
	from.watchDgram(raw, func(d *dgram) {
		buf := d.s.scratch()
		for {
			k, _, from, err := raw.RecvFrom(buf, false)
			if err != nil || k == 0 {
				return
			}
			if v6 {
				// Time Exceeded: 8 bytes, then the invoking packet's
				// IPv6 header and our echo request.
				m := wire.ICMPv6(buf[:k])
				if k < wire.ICMPv6HeaderLen+wire.IPv6HeaderLen+8 || m.Type() != exceeded || m.Code() != 0 {
					continue
				}
				inner := m.Payload()
				if inner[6] != wire.ProtoICMPv6 {
					continue
				}
				em := wire.ICMPv6(inner[wire.IPv6HeaderLen:])
				if em.Type() == echo && em.ID() == id && int(em.Seq()) == ttl {
					next(from.Addr().WithZone("").String(), false)
				}
				continue
			}
			ip, err := wire.ParseIPv4(buf[:k])
			if err != nil {
				continue
			}
			m := wire.ICMPv4(ip.Payload())
			if len(m) < 8+20+8 || m.Type() != exceeded {
				continue
			}
			inner := m.Payload()
			ihl := int(inner[0]&0xf) * 4
			if len(inner) < ihl+8 {
				continue
			}
			em := wire.ICMPv4(inner[ihl:])
			if em.ID() == id && int(em.Seq()) == ttl {
				next(ip.Src().String(), false)
			}
		}
	})
	probe = func() {
		ttl++
		if ttl > maxHops {
			n.failFlow(f, fmt.Errorf("destination not reached in %d hops", maxHops))
			return
		}
		answered = false
		gen++
		g := gen
		if v6 {
			ping.SetHopLimit(ttl) // IPV6_UNICAST_HOPS
		} else {
			ping.SetTTL(ttl)
		}
		msg := make([]byte, 8+32)
		msg[0] = echo
		// The flow's seeded pattern as payload, as ping sends: another
		// seed, other bytes (IPv6 has no seeded IP identification).
		copy(msg[8:], n.S.pattern())
		wire.ICMPv4(msg).SetSeq(uint16(ttl))
		ping.SendTo(msg, netip.AddrPortFrom(dst, 0), nil)
		f.Sent++
		n.S.After(time.Second, func() {
			if g == gen && !answered {
				next("*", false)
			}
		})
	}
	probe()
}

// srcFor is the source address from gives packets to dst: its route's
// preferred source, else its first address of dst's family.
func srcFor(from *Host, dst netip.Addr) netip.Addr {
	if r, err := from.Stack.FindRoute(dst); err == nil && r.Src.IsValid() {
		return r.Src
	}
	if dst.Is6() {
		return from.AddrOf(6)
	}
	return from.AddrOf(4)
}
