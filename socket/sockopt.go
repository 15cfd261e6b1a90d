package socket

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// SetSockOpt sets an option. Values: int (booleans as 0/1) for most,
// Linger for SO_LINGER, time.Duration for SO_RCVTIMEO/SO_SNDTIMEO,
// IPMreq for IP_ADD/DROP_MEMBERSHIP, netip.Addr for IP_MULTICAST_IF,
// string for TCP_CONGESTION and SO_BINDTODEVICE. Unknown options fail
// with ENOPROTOOPT, bad values with EINVAL, as in Linux.
func (s *Socket) SetSockOpt(level, name int, v any) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	v, err := OptionValue(v)
	if err != nil {
		return err
	}
	if level == SOL_SOCKET {
		switch name {
		case SO_RCVTIMEO, SO_SNDTIMEO:
			d, ok := v.(time.Duration)
			if !ok {
				i, ok2 := v.(int)
				if !ok2 {
					return syscall.EINVAL
				}
				d = time.Duration(i) * time.Microsecond
			}
			if d < 0 {
				d = 0 // Linux treats a negative timeout as none
			}
			s.mu.Lock()
			if name == SO_RCVTIMEO {
				s.ext().rcvTimeo = d
			} else {
				s.ext().sndTimeo = d
			}
			s.mu.Unlock()
			return nil
		case SO_TYPE, SO_ERROR, SO_ACCEPTCONN, SO_DOMAIN, SO_PROTOCOL, SO_SNDLOWAT:
			return syscall.ENOPROTOOPT
		case SO_BINDTODEVICE:
			return s.bindToDevice(v)
		case SO_BINDTOIFINDEX:
			return s.bindToIndex(v) // bindtodev.go
		case SO_MARK:
			return s.setMark(v) // mark.go
		case SO_RCVLOWAT:
			return s.setRcvLowat(v) // rcvlowat.go
		case SO_PEEK_OFF:
			return s.setPeekOff(v) // peekoff.go
		case SO_BUSY_POLL:
			return s.setBusyPoll(v) // busypoll.go
		case SO_PREFER_BUSY_POLL, SO_BUSY_POLL_BUDGET:
			return s.setBusyTune(name, v) // busypoll.go
		}
		if stampOpt(name) {
			if ok, err := s.setStampOpt(name, v); ok {
				return err // rxstamp.go
			}
		}
		if s.storedOpt(name) {
			return s.setStored(name, v)
		}
	}
	if ok, err := s.setTransparentOpt(level, name, v); ok {
		return err // transparent.go
	}
	if ok, err := s.setRecvOpt(level, name, v); ok {
		return err // inet_recvopts.go
	}
	if t := s.apartTCP(); t != nil && apartOpt(level, name) {
		return s.setApart(t, level, name, v) // inet6_apart.go
	}
	return s.ep.setOption(level, name, v)
}

// bindToDevice is SO_BINDTODEVICE: a NIC name ("" unbinds); an unknown
// name is ENODEV. Datagram sockets send through that NIC and take only
// what came in on it (stack/options.go); TCP sockets route through it and
// take segments from it only (tcp/bindtodev.go).
func (s *Socket) bindToDevice(v any) error {
	name, ok := v.(string)
	if !ok {
		return syscall.EINVAL
	}
	var nic *stack.NIC
	if name != "" {
		if nic = s.net.st.NICByName(name); nic == nil {
			return syscall.ENODEV
		}
	}
	s.setDevice(nic)
	return nil
}

// setDevice binds the socket to nic (nil: unbinds).
func (s *Socket) setDevice(nic *stack.NIC) {
	name := ""
	if nic != nil {
		name = nic.Name()
	}
	switch e := s.ep.(type) {
	case *dgramEP:
		e.ep.SetBindToDevice(nic)
	case *tcpEP:
		id := 0
		if nic != nil {
			id = nic.ID()
		}
		e.ep.SetBindToDevice(id)
	}
	s.mu.Lock()
	s.ext().device = name
	s.mu.Unlock()
}

// storedOpt reports SOL_SOCKET options this kind of socket accepts and
// reports back without acting on them, as Linux does (SO_DEBUG,
// SO_KEEPALIVE on UDP, SO_BROADCAST on TCP...).
func (s *Socket) storedOpt(name int) bool {
	switch name {
	case SO_DEBUG, SO_DONTROUTE, SO_OOBINLINE, SO_RCVLOWAT:
		return true
	case SO_KEEPALIVE, SO_LINGER:
		return !s.ep.stream()
	case SO_BROADCAST:
		return s.ep.stream()
	}
	return false
}

func (s *Socket) setStored(name int, v any) error {
	if name == SO_LINGER {
		if _, ok := v.(Linger); !ok {
			return syscall.EINVAL
		}
	} else {
		i, err := intOpt(v)
		if err != nil {
			return err
		}
		if name == SO_RCVLOWAT {
			if i < 0 {
				i = 1<<31 - 1 // Linux: a negative low-water mark means INT_MAX
			}
			v = max(i, 1)
		} else {
			v = b2i(i != 0)
		}
	}
	s.mu.Lock()
	x := s.ext()
	if x.stored == nil {
		x.stored = map[int]any{}
	}
	x.stored[name] = v
	s.mu.Unlock()
	s.oobInline(name, v) // socket/oob.go
	return nil
}

func (s *Socket) getStored(name int) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.rx().stored[name]; ok {
		return v
	}
	switch name {
	case SO_RCVLOWAT:
		return 1
	case SO_LINGER:
		return Linger{}
	}
	return 0
}

// OptionValue normalizes a SetSockOpt value: a struct-valued option may
// be passed by value or, as golang.org/x/sys/unix users do, by pointer;
// a nil pointer is EFAULT, as a bad optval is in Linux. Package hostsock
// can share it.
func OptionValue(v any) (any, error) {
	switch p := v.(type) {
	case *Linger:
		return derefOpt(p)
	case *IPMreq:
		return derefOpt(p)
	case *PacketMreq:
		return derefOpt(p)
	case *netip.Addr:
		return derefOpt(p)
	case *time.Duration:
		return derefOpt(p)
	case *int:
		return derefOpt(p)
	case *int32:
		return derefOpt(p)
	case *string:
		return derefOpt(p)
	}
	return v, nil
}

func derefOpt[T any](p *T) (any, error) {
	if p == nil {
		return nil, syscall.EFAULT
	}
	return *p, nil
}

// SetSockOptInt is SetSockOpt with an int value.
func (s *Socket) SetSockOptInt(level, name, v int) error { return s.SetSockOpt(level, name, v) }

// GetSockOpt reads an option (see SetSockOpt for the value types;
// TCP_INFO gives a tcp.Info).
func (s *Socket) GetSockOpt(level, name int) (any, error) {
	if s.closed.Load() {
		return nil, syscall.EBADF
	}
	if level == SOL_SOCKET {
		switch name {
		case SO_TYPE:
			return s.typ, nil
		case SO_DOMAIN:
			return s.family, nil
		case SO_PROTOCOL:
			return int(s.proto), nil
		case SO_ERROR:
			if err := s.ep.connectResult(); err != nil {
				if en, ok := err.(syscall.Errno); ok {
					return int(en), nil
				}
				return int(syscall.EIO), nil
			}
			return 0, nil
		case SO_RCVTIMEO:
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.rx().rcvTimeo, nil
		case SO_SNDTIMEO:
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.rx().sndTimeo, nil
		case SO_SNDLOWAT:
			return 1, nil
		case SO_BINDTODEVICE:
			d := s.device() // bindtodev.go
			if d.Name == "" && d.Index != 0 {
				return nil, syscall.ENODEV // bound to an index no NIC has, as Linux's netdev_get_name
			}
			return d.Name, nil
		case SO_BINDTOIFINDEX:
			return s.device().Index, nil
		case SO_MARK:
			return s.mark(), nil // mark.go
		case SO_RCVLOWAT:
			return s.rcvLowat(), nil // rcvlowat.go
		case SO_PEEK_OFF:
			return s.getPeekOff() // peekoff.go
		case SO_BUSY_POLL:
			return int(s.busyPollBudget() / time.Microsecond), nil // busypoll.go
		case SO_PREFER_BUSY_POLL:
			return s.busyPreferOpt(), nil // busypoll.go
		}
		if stampOpt(name) {
			if ok, v := s.getStampOpt(name); ok {
				return v, nil // rxstamp.go
			}
		}
		if s.storedOpt(name) {
			return s.getStored(name), nil
		}
	}
	if ok, v, err := s.getTransparentOpt(level, name); ok {
		return v, err // transparent.go
	}
	if ok, v, err := s.getRecvOpt(level, name); ok {
		return v, err // inet_recvopts.go
	}
	if ok, v, err := s.getMTUOpt(level, name); ok {
		return v, err // ipmtu.go
	}
	if s.apartTCP() != nil && apartOpt(level, name) {
		if v, ok := s.getApart(name); ok {
			return v, nil
		}
	}
	return s.ep.getOption(level, name)
}

// GetSockOptInt reads an int option.
func (s *Socket) GetSockOptInt(level, name int) (int, error) {
	v, err := s.GetSockOpt(level, name)
	if err != nil {
		return 0, err
	}
	return OptionInt(v)
}

// OptionInt reads an option value as getsockopt's int would give it:
// booleans as 0/1, durations in microseconds. Package hostsock shares it.
func OptionInt(v any) (int, error) {
	switch x := v.(type) {
	case time.Duration:
		return int(x / time.Microsecond), nil
	}
	return intOpt(v)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func intOpt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case bool:
		return b2i(x), nil
	case int32:
		return int(x), nil
	case uint8:
		return int(x), nil
	}
	return 0, syscall.EINVAL
}

func (d *dgramEP) setOption(level, name int, v any) error {
	e := d.ep
	if ok, err := d.setRecvErrOpt(level, name, v); ok {
		return err // recverr.go
	}
	if ssmOpt(level, name) {
		return d.setSSMOpt(level, name, v) // ssm.go
	}
	if level == IPPROTO_IPV6 || level == IPPROTO_ICMPV6 {
		return d.setOption6(level, name, v) // inet6.go
	}
	if level == SOL_UDP {
		return d.setOptionUDP(name, v) // udp_gso.go
	}
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_BROADCAST:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetBroadcast(i != 0)
		case SO_REUSEADDR:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetReuseAddr(i != 0)
		case SO_REUSEPORT:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetReusePort(i != 0)
		case SO_RCVBUF:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetRecvBuf(i)
		case SO_SNDBUF:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetSendBuf(i)
		default:
			return syscall.ENOPROTOOPT
		}
		return nil
	case SOL_IP:
		switch name {
		case IP_PKTINFO:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			setBit(&d.recvInfo, ipPktinfoBit, i != 0) // inet6_pktinfo.go
			return nil
		case IP_TTL:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			return e.SetTTL(i)
		case IP_TOS:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetTOS(i & 0xff)
			return nil
		case IP_HDRINCL:
			if !d.raw {
				return syscall.ENOPROTOOPT
			}
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetHdrIncl(i != 0)
			return nil
		case IP_MULTICAST_TTL:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			return e.SetMulticastTTL(i)
		case IP_MULTICAST_LOOP:
			i, err := intOpt(v)
			if err != nil {
				return err
			}
			e.SetMulticastLoop(i != 0)
			return nil
		case IP_MULTICAST_IF:
			a, ok := v.(netip.Addr)
			if !ok {
				return syscall.EINVAL
			}
			if !a.IsValid() || a.IsUnspecified() {
				e.SetMulticastIf(nil)
				return nil
			}
			nic := e.NICOf(a)
			if nic == nil {
				return syscall.EADDRNOTAVAIL
			}
			e.SetMulticastIf(nic)
			return nil
		case IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP:
			m, ok := v.(IPMreq)
			if !ok {
				return syscall.EINVAL
			}
			if name == IP_ADD_MEMBERSHIP {
				return e.JoinGroup(m.Multiaddr, m.Interface)
			}
			return e.LeaveGroup(m.Multiaddr, m.Interface)
		}
		return syscall.ENOPROTOOPT
	}
	return syscall.ENOPROTOOPT
}

func (d *dgramEP) getOption(level, name int) (any, error) {
	e := d.ep
	if ok, v, err := d.getRecvErrOpt(level, name); ok {
		return v, err // recverr.go
	}
	if ssmOpt(level, name) {
		return d.getSSMOpt(level, name) // ssm.go
	}
	if level == IPPROTO_IPV6 || level == IPPROTO_ICMPV6 {
		return d.getOption6(level, name) // inet6.go
	}
	if level == SOL_UDP {
		return d.getOptionUDP(name) // udp_gso.go
	}
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_BROADCAST:
			return b2i(e.Broadcast()), nil
		case SO_REUSEADDR:
			return b2i(e.ReuseAddr()), nil
		case SO_REUSEPORT:
			return b2i(e.ReusePort()), nil
		case SO_RCVBUF:
			return e.RecvBuf(), nil
		case SO_SNDBUF:
			return e.SendBuf(), nil
		case SO_ACCEPTCONN:
			return 0, nil
		}
		return nil, syscall.ENOPROTOOPT
	case SOL_IP:
		switch name {
		case IP_PKTINFO:
			return b2i(d.recvInfo.Load()&ipPktinfoBit != 0), nil
		case IP_TTL:
			return e.TTL(), nil
		case IP_TOS:
			return e.TOS(), nil
		case IP_HDRINCL:
			if !d.raw {
				return 0, nil // Linux reports 0 for non-raw sockets
			}
			return b2i(e.HdrIncl()), nil
		case IP_MULTICAST_TTL:
			return e.MulticastTTL(), nil
		case IP_MULTICAST_LOOP:
			return b2i(e.MulticastLoop()), nil
		case IP_MULTICAST_IF:
			if n := e.MulticastIf(); n != nil && len(n.Addrs()) > 0 {
				return n.Addrs()[0].Addr(), nil
			}
			return netip.IPv4Unspecified(), nil
		}
		return nil, syscall.ENOPROTOOPT
	case SOL_TCP:
		// Linux's UDP hands other levels to ip_getsockopt, which does
		// not know SOL_TCP: EOPNOTSUPP (setsockopt says ENOPROTOOPT).
		return nil, syscall.EOPNOTSUPP
	}
	return nil, syscall.EOPNOTSUPP
}

// TCP_USER_TIMEOUT (RFC 5482, Linux's number) bounds in milliseconds how
// long sent data may stay unacknowledged before the connection drops.
const TCP_USER_TIMEOUT = 18

func (t *tcpEP) setOption(level, name int, v any) error {
	e := t.ep
	if level == IPPROTO_IPV6 && t.v6 && ssmOpt(level, name) {
		return t.setSSMOpt6(name, v) // ssm.go
	}
	if level == IPPROTO_IPV6 {
		return t.setOption6(name, v) // inet6.go
	}
	if level == SOL_SOCKET && name == SO_LINGER {
		l, ok := v.(Linger)
		if !ok {
			return syscall.EINVAL
		}
		return e.SetLinger(l.OnOff, time.Duration(l.Linger)*time.Second)
	}
	if level == SOL_IP && (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) {
		return syscall.EPROTO // Linux: no multicast membership on connection sockets
	}
	if level == SOL_IP && ssmOpt(level, name) {
		return t.setSSMOpt(name, v) // ssm.go
	}
	if level == SOL_TCP && name == TCP_CONGESTION {
		n, ok := v.(string)
		if !ok {
			return syscall.EINVAL
		}
		return e.SetCongestion(n)
	}
	if level == SOL_IP && name == IP_RECVERR_RFC4884 {
		on, err := rfc4884Opt(v, false) // recverr.go
		if err == nil {
			e.SetRecvErrRFC4884(false, on)
		}
		return err
	}
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_REUSEADDR:
			e.SetReuseAddr(i != 0)
		case SO_REUSEPORT:
			e.SetReusePort(i != 0)
		case SO_KEEPALIVE:
			e.SetKeepAlive(i != 0)
		case SO_RCVBUF:
			return e.SetRecvBuf(i)
		case SO_SNDBUF:
			return e.SetSendBuf(i)
		default:
			return syscall.ENOPROTOOPT
		}
		return nil
	case SOL_IP:
		switch name {
		case IP_PKTINFO:
			setBit(&t.recvInfo, ipPktinfoBit, i != 0) // kept and reported, as Linux
			return nil
		case IP_RECVERR:
			e.SetRecvErr(false, i != 0) // soft ICMP errors become pending (tcp/input.go)
			return nil
		case IP_TTL:
			if i == 0 {
				return syscall.EINVAL // 0 is IPV6_UNICAST_HOPS's only
			}
			return e.SetTTL(i)
		case IP_TOS:
			return e.SetTOS(i)
		case IP_MULTICAST_TTL, IP_MULTICAST_LOOP:
			return nil
		case IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP:
			return syscall.EPROTO
		}
		return syscall.ENOPROTOOPT
	case SOL_TCP:
		switch name {
		case TCP_NODELAY:
			e.SetNoDelay(i != 0)
		case TCP_CORK:
			e.SetCork(i != 0)
		case TCP_MAXSEG:
			return e.SetMaxSeg(i)
		case TCP_KEEPIDLE:
			if i < 1 || i > 32767 {
				return syscall.EINVAL
			}
			return e.SetKeepIdle(time.Duration(i) * time.Second)
		case TCP_KEEPINTVL:
			if i < 1 || i > 32767 {
				return syscall.EINVAL
			}
			return e.SetKeepIntvl(time.Duration(i) * time.Second)
		case TCP_KEEPCNT:
			if i < 1 || i > 127 {
				return syscall.EINVAL
			}
			return e.SetKeepCnt(i)
		case TCP_USER_TIMEOUT:
			return e.SetUserTimeout(i)
		default:
			if ok, err := t.setTCPOpt(name, i); ok {
				return err // tcpopts.go
			}
			return syscall.ENOPROTOOPT
		}
		return nil
	}
	return syscall.ENOPROTOOPT
}

func (t *tcpEP) getOption(level, name int) (any, error) {
	if level == IPPROTO_IPV6 && t.v6 && name == IPV6_MULTICAST_ALL {
		return t.multicastAll(), nil // ssm.go
	}
	if level == IPPROTO_IPV6 {
		return t.getOption6(name) // inet6.go
	}
	e := t.ep
	switch level {
	case SOL_SOCKET:
		switch name {
		case SO_REUSEADDR:
			return b2i(e.ReuseAddr()), nil
		case SO_REUSEPORT:
			return b2i(e.ReusePort()), nil
		case SO_KEEPALIVE:
			return b2i(e.KeepAlive()), nil
		case SO_RCVBUF:
			return e.RecvBuf(), nil
		case SO_SNDBUF:
			return e.SendBuf(), nil
		case SO_ACCEPTCONN:
			return b2i(e.State() == tcp.StateListen), nil
		case SO_LINGER:
			on, d := e.Linger()
			return Linger{OnOff: on, Linger: int(d / time.Second)}, nil
		}
		return nil, syscall.ENOPROTOOPT
	case SOL_IP:
		switch name {
		case IP_PKTINFO:
			return b2i(t.recvInfo.Load()&ipPktinfoBit != 0), nil
		case IP_RECVERR:
			return b2i(e.RecvErr(false)), nil
		case IP_RECVERR_RFC4884:
			return b2i(e.RecvErrRFC4884(false)), nil
		case IP_TTL:
			return e.TTL(), nil
		case IP_TOS:
			return e.TOS(), nil
		case IP_MULTICAST_ALL:
			return t.multicastAll4(), nil // ssm.go
		}
		return nil, syscall.ENOPROTOOPT
	case SOL_TCP:
		switch name {
		case TCP_NODELAY:
			return b2i(e.NoDelay()), nil
		case TCP_CORK:
			return b2i(e.Cork()), nil
		case TCP_MAXSEG:
			return e.MaxSeg(), nil
		case TCP_KEEPIDLE:
			return int(e.KeepIdle() / time.Second), nil
		case TCP_KEEPINTVL:
			return int(e.KeepIntvl() / time.Second), nil
		case TCP_KEEPCNT:
			return e.KeepCnt(), nil
		case TCP_USER_TIMEOUT:
			return e.UserTimeout(), nil
		case TCP_INFO:
			return e.Info(), nil
		case TCP_CONGESTION:
			return e.Congestion(), nil
		}
		if v, ok := t.getTCPOpt(name); ok {
			return v, nil // tcpopts.go
		}
		return nil, syscall.ENOPROTOOPT
	}
	return nil, syscall.EOPNOTSUPP
}
