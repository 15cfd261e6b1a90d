package tcp

import (
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// cookieMSS are the MSS values a SYN cookie can encode (2 bits).
var cookieMSS = [4]int{536, 1300, 1440, 1460}

const cookieWindow = 64 * time.Second // cookie clock tick

// cookieTime is the 8-bit cookie clock.
func cookieTime(now time.Duration) uint32 { return uint32(now/cookieWindow) & 0xff }

// cookie builds a SYN cookie ISN (the Linux layout: hash + peer ISN +
// time in the top 8 bits + (hash2 + MSS index) in the low 24).
func (p *Protocol) cookie(k connKey, peerISN uint32, mssIdx int, t uint32) uint32 {
	return p.hash4(k.local, k.remote, 0xc001) + peerISN + t<<24 +
		((p.hash4(k.local, k.remote, 0xc0020000|t) + uint32(mssIdx)) & 0xffffff)
}

// checkCookie validates a cookie; it returns the MSS index.
func (p *Protocol) checkCookie(k connKey, peerISN, cookie uint32, now time.Duration) (int, bool) {
	c := cookie - p.hash4(k.local, k.remote, 0xc001) - peerISN
	tc := c >> 24
	if (cookieTime(now)-tc)&0xff > 2 {
		return 0, false
	}
	idx := (c - p.hash4(k.local, k.remote, 0xc0020000|tc)) & 0xffffff
	if idx >= uint32(len(cookieMSS)) {
		return 0, false
	}
	return int(idx), true
}

// handleListen processes a segment for a listening endpoint.
func (l *Endpoint) handleListen(k connKey, s *segment) {
	p := l.p
	if s.has(wire.TCPFlagRST) {
		l.heldReset(k, s) // a held request's client gave up (holdsyn.go)
		return
	}
	now := p.now()
	if s.has(wire.TCPFlagACK) {
		if !s.has(wire.TCPFlagSYN) && l.cookieCheck(k, s, now) {
			return
		}
		p.sendResetFor(k, s)
		return
	}
	if !s.has(wire.TCPFlagSYN) {
		return
	}
	l.lock()
	if l.state != StateListen {
		l.unlock()
		p.sendResetFor(k, s)
		return
	}
	if l.ls.hold != nil {
		l.holdSYN(k, s) // the application answers (holdsyn.go)
		return
	}
	if len(l.ls.acceptQ) > l.ls.backlog {
		p.st.ListenOverflows.Add(1)
		p.st.ListenDrops.Add(1)
		l.unlock()
		return
	}
	if int(l.synQLen.Load()) >= l.ls.backlog {
		if p.cfg.NoSynCookies {
			p.st.ListenDrops.Add(1)
			l.unlock()
			return
		}
		l.ls.cookieAt = now
		c := l.newChild(k, s, now)
		l.unlock()
		if c == nil {
			p.st.ListenDrops.Add(1) // no route back (a SYN from ::, say), as Linux counts it
			return
		}
		l.sendCookie(c, k, s, now)
		return
	}
	c := l.newChild(k, s, now)
	if c == nil {
		p.st.ListenDrops.Add(1) // no route back (a SYN from ::, say), as Linux counts it
		l.unlock()
		return
	}
	c.parent = l
	c.inSynQ = true
	l.synQLen.Add(1)
	c.lock()
	if !p.addConn(c) {
		l.synQLen.Add(-1)
		c.unlock()
		l.unlock()
		return
	}
	p.addChild(c)
	l.unlock()
	p.st.PassiveOpens.Add(1)
	c.sendSYN(now, false)
	c.armRTO(now)
	c.unlock()
}

// newChild makes a SYN_RCVD endpoint for a SYN, inheriting the
// listener's options (l.mu held).
func (l *Endpoint) newChild(k connKey, s *segment, now time.Duration) *Endpoint {
	p := l.p
	o := l.epOpts
	if ra := k.remote.Addr(); o.dev == 0 && !s.anyDev && !s.loop && ra.Is6() && ra.IsLinkLocalUnicast() {
		// A link-local peer is reached through the link it came from:
		// the child is bound to it, as Linux's tcp_v6_init_req gives
		// the request that interface (bindtodev.go).
		x := *o
		x.dev = s.dif
		o = &x
	}
	rt, err := p.routeFor(l.routeTo(k.remote.Addr()), k.local.Addr(), o) // mark.go, ext6.go
	if err != nil {
		return nil
	}
	c := &Endpoint{p: p}
	c.initOptions()
	c.noDelay, c.cork, c.keepAlive = l.noDelay, l.cork, l.keepAlive
	// Keepalive times, linger, TTL, TOS, MSS, buffers, congestion
	// control and TCP_USER_TIMEOUT (tcpcc) are inherited, as in Linux: the child
	// shares the listener's options, which no one writes in place.
	c.epOpts = l.epOpts
	c.inheritRxStamp() // rxstamp.go
	if o.dev != l.dev {
		c.setOpt(func(x epOpts) epOpts { x.dev = o.dev; return x })
	}
	if ls := l.ls; ls != nil && ls.set4 && k.remote.Addr().Is4() {
		c.setOpt(func(o epOpts) epOpts { o.ttl, o.tos, o.hopZero = ls.ttl4, ls.tos4, false; return o })
	}
	if echo, _ := s.replyOpts(); c.ipOpts != echo {
		// Not the listener's IP_OPTIONS: the SYN's options echoed, or
		// none, as Linux's child takes ireq_opt (ipopts.go).
		c.setOpt(func(o epOpts) epOpts { o.ipOpts = echo; return o })
	}
	c.reuseAddr, c.reusePort = l.reuseAddr, l.reusePort
	c.tproxy = l.tproxy // inherited, as Linux clones the socket's flags
	c.urg.inline = l.urg.inline
	c.rcvLowat = l.rcvLowat // SO_RCVLOWAT, as the kernel clones the listener's sock
	if l.userRcvBuf > 0 {
		c.rcvCap = l.rcvCap
	} else if lw := int(l.rcvLowat) + 1; lw > c.rcvCap {
		c.rcvCap = lw // room for the inherited mark (rcvlowat.go)
	}
	if l.userSndBuf > 0 {
		c.sndCap = l.sndCap
	}
	c.local, c.remote = k.local, k.remote
	c.pmtu = rt.MTU
	c.gsoMax, c.txDefer, c.txHold = int32(rt.GSOMax), rt.Defer, holdID(rt.Hold)
	c.setupMSS()
	c.chooseRcvWScale()
	c.irs = s.seq
	c.rcvNxt = s.seq + 1
	c.rcvAdv = c.rcvNxt
	c.negotiate(&s.opts)
	c.ecnSynReceived(s)
	if c.tsOK {
		c.tsRecent, c.tsRecentAt = s.opts.TSVal, now
	}
	c.tsOffset = c.tsOffsetFor(now)
	c.iss = p.isn(c.local, c.remote, now)
	c.sndUna, c.sndNxt, c.sndMax, c.sndSml = c.iss, c.iss+1, c.iss+1, c.iss
	c.sbSeq = c.iss + 1
	c.sndWnd = int(s.wnd)
	c.maxSndWnd = c.sndWnd
	c.sndWl1, c.sndWl2 = s.seq, c.iss
	c.state = StateSynRcvd
	return c
}

// sendCookie answers a SYN statelessly with a SYN cookie; the options
// the cookie cannot hold are encoded in the low 6 bits of TSval
// (4 bits window scale, 15 = none, and 1 bit SACK), like Linux.
func (l *Endpoint) sendCookie(c *Endpoint, k connKey, s *segment, now time.Duration) {
	p := l.p
	idx := 0
	for i := len(cookieMSS) - 1; i >= 0; i-- {
		if cookieMSS[i] <= int(c.peerMSS) {
			idx = i
			break
		}
	}
	t := cookieTime(now)
	c.iss = p.cookie(k, s.seq, idx, t)
	if c.tsOK {
		opt := uint32(0xf)
		if c.wsOK {
			opt = uint32(c.sndWScale)
		}
		if c.sackOK {
			opt |= 0x10
		}
		if c.ecn.ok {
			opt |= 0x20 // perf: ECN rides in the cookie too, as in Linux
		}
		ts := c.tsNow(now)
		v := ts&^0x3f | opt
		if seqGT(v, ts) {
			v -= 0x40
		}
		c.cookieTS = v
	} else {
		// Without timestamps the cookie cannot carry these options.
		c.wsOK, c.sackOK, c.ecn.ok = false, false, false
		c.rcvWScale = 0
	}
	p.st.SynCookiesSent.Add(1)
	c.xmit(c.iss, 0, wire.TCPFlagSYN|wire.TCPFlagACK, now)
}

// cookieCheck tries to complete a connection from a SYN cookie ACK; it
// reports whether the segment was consumed (false: reset it).
func (l *Endpoint) cookieCheck(k connKey, s *segment, now time.Duration) bool {
	p := l.p
	l.lock()
	defer l.unlock()
	if l.state != StateListen || l.ls.cookieAt == 0 || now-l.ls.cookieAt > 2*cookieWindow {
		return false
	}
	idx, ok := p.checkCookie(k, s.seq-1, s.ack-1, now)
	if !ok {
		// Dropped, not reset (Linux resets): the cookie encodes the
		// peer's ISN+1, so a cookie connection whose handshake ACK and
		// first data were lost fails here on its later segments, and a
		// RST would kill it. Its sender retransmits from ISN+1, which
		// passes. Only while cookies are in use (a forged ACK then gets
		// no answer either); otherwise a stray ACK is still reset.
		p.st.SynCookiesFailed.Add(1)
		return true
	}
	if len(l.ls.acceptQ) > l.ls.backlog {
		p.st.ListenOverflows.Add(1)
		p.st.ListenDrops.Add(1)
		return true
	}
	// Rebuild the SYN the cookie stands for.
	var syn segment
	syn.seq = s.seq - 1
	syn.flags = wire.TCPFlagSYN
	syn.wnd = s.wnd
	// The child's IP options are the completing ACK's echoed, as
	// Linux's cookie_v4_check (ipopts_reply.go).
	syn.echo, _ = s.replyOpts()
	syn.opts.HasMSS, syn.opts.MSS = true, uint16(cookieMSS[idx])
	if s.opts.HasTS {
		opt := s.opts.TSEcr & 0x3f
		syn.opts.HasTS, syn.opts.TSVal = true, s.opts.TSVal
		if ws := opt & 0xf; ws != 0xf {
			syn.opts.HasWScale, syn.opts.WScale = true, uint8(min(ws, 14))
		}
		syn.opts.SACKPermitted = opt&0x10 != 0
		if opt&0x20 != 0 {
			syn.flags |= wire.TCPFlagECE | wire.TCPFlagCWR
		}
	}
	c := l.newChild(k, &syn, now)
	if c == nil {
		return true
	}
	c.clearListenOpts() // a cookie's ACK completes at once (tcpopts.go)
	c.iss = s.ack - 1
	c.sndUna, c.sndNxt, c.sndMax, c.sndSml = c.iss, c.iss+1, c.iss+1, c.iss
	c.sbSeq = c.iss + 1
	c.sndWl1, c.sndWl2 = syn.seq, c.iss
	c.rcvAdv = c.rcvNxt + uint32(min(c.rcvCap, 65535))
	c.parent = l
	c.lock()
	if !p.addConn(c) {
		c.unlock()
		return true
	}
	p.addChild(c)
	p.st.SynCookiesRecv.Add(1)
	p.st.PassiveOpens.Add(1)
	c.inSynQ = false
	c.input(s, now)
	if c.state != StateClosed {
		l.ls.acceptQ = append(l.ls.acceptQ, c)
		l.acceptN.Store(int32(len(l.ls.acceptQ)))
	}
	c.unlock()
	l.notify(waiter.EventIn)
	return true
}

// acceptFull is Linux's sk_acceptq_is_full: backlog+1 connections may
// wait. It is read without l.mu (children hold their own lock).
func (l *Endpoint) acceptFull() bool {
	return l.acceptN.Load() > l.backlogN.Load()
}

// childOverflow reports (and counts) that a SYN_RCVD child's handshake
// cannot complete because its listener's accept queue is full. Like
// Linux (tcp_abort_on_overflow=0) the final ACK is then dropped and the
// child stays in SYN_RCVD: its SYN-ACK retransmissions make the client
// ACK again, and the connection completes once accept makes room.
func (e *Endpoint) childOverflow() bool {
	l := e.parent
	if l == nil || !e.inSynQ || !l.acceptFull() {
		return false
	}
	e.p.st.ListenOverflows.Add(1)
	e.p.st.ListenDrops.Add(1)
	return true
}

// deliverChild moves a child whose handshake completed to the accept
// queue, or resets it when the listener is gone. A full queue was
// checked before the handshake completed (childOverflow); a child that
// raced past that check is still queued, as in Linux.
func (l *Endpoint) deliverChild(c *Endpoint) {
	l.lock()
	ok := l.state == StateListen
	if ok {
		l.ls.acceptQ = append(l.ls.acceptQ, c)
		l.acceptN.Store(int32(len(l.ls.acceptQ)))
	}
	l.unlock()
	if ok {
		l.notify(waiter.EventIn)
		return
	}
	c.lock()
	c.parent = nil
	c.userClosed = true
	if c.state != StateClosed {
		c.sendReset()
		c.abortLocked(nil)
	}
	c.unlock()
}
