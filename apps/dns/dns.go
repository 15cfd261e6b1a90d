// Package dns is a small authoritative DNS server for the virtual
// network, written against the socket API only. It answers A, AAAA, ANY
// and PTR queries from a table (for example a Net's hosts table) over
// UDP and TCP, with NXDOMAIN for unknown names and the TC bit when a UDP
// answer would exceed 512 bytes.
package dns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// Records is what the server answers from; *socket.Hosts is one.
type Records interface {
	LookupHost(name string) ([]netip.Addr, bool)
	LookupAddr(a netip.Addr) []string
}

// Stats are the server's counters.
type Stats struct {
	Queries, Answered, NXDomain, Truncated atomic.Uint64
	Malformed                              atomic.Uint64 // dropped: not a parsable query
	Refused                                atomic.Uint64 // FORMERR/NOTIMP answers
	TCPRejected                            atomic.Uint64 // connections over MaxTCPConns
}

// TTL of the answers.
const TTL = 300

// MaxTCPConns bounds concurrent TCP clients.
const MaxTCPConns = 64

// Server is a running DNS server.
type Server struct {
	udp, tcp *socket.Socket
	rec      Records
	stats    Stats
	wg       sync.WaitGroup
	conns    chan struct{}
}

// Serve starts a server on addr (UDP, and TCP when the stack's TCP
// works) answering from records.
func Serve(n *socket.Net, addr netip.AddrPort, records Records) (*Server, error) {
	s := &Server{rec: records, conns: make(chan struct{}, MaxTCPConns)}
	fam := socket.AF_INET
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		fam = socket.AF_INET6 // IPV6_V6ONLY: beside a server on 0.0.0.0
	}
	u, err := n.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	if fam == socket.AF_INET6 {
		u.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
	}
	if err := u.Bind(socket.InetAddr(addr)); err != nil {
		u.Close()
		return nil, err
	}
	s.udp = u
	if t, err := n.Socket(fam, socket.SOCK_STREAM, 0); err == nil {
		if fam == socket.AF_INET6 {
			t.SetSockOptInt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
		}
		err = t.Bind(socket.InetAddr(addr))
		if err == nil {
			err = t.Listen(16)
		}
		if err != nil {
			t.Close()
			if !errors.Is(err, syscall.ENOSYS) {
				u.Close()
				return nil, err
			}
		} else {
			s.tcp = t
		}
	}
	s.wg.Add(1)
	go s.serveUDP()
	if s.tcp != nil {
		s.wg.Add(1)
		go s.serveTCP()
	}
	return s, nil
}

// TCP reports whether the server also listens on TCP.
func (s *Server) TCP() bool { return s.tcp != nil }

// Stats are the counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.udp.Close()
	if s.tcp != nil {
		s.tcp.Close()
	}
	s.wg.Wait()
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	out := make([]byte, 0, 4096)
	for {
		k, from, err := s.udp.RecvFrom(buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EBADF) {
				return
			}
			continue
		}
		resp, ok := s.answer(buf[:k], out[:0], socket.DNSMaxUDP)
		if ok {
			s.udp.SendTo(resp, 0, from)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, _, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EINVAL) {
				return
			}
			continue
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.stats.TCPRejected.Add(1)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

// serveConn answers length-prefixed queries (RFC 1035 4.2.2) until the
// client closes or stays idle too long.
func (s *Server) serveConn(c *socket.Socket) {
	defer s.wg.Done()
	defer func() { <-s.conns }()
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	var lb [2]byte
	buf := make([]byte, 65535)
	for {
		if k, err := c.Recv(lb[:], socket.MSG_WAITALL); err != nil || k != 2 {
			return
		}
		q := buf[:binary.BigEndian.Uint16(lb[:])]
		if k, err := c.Recv(q, socket.MSG_WAITALL); err != nil || k != len(q) {
			return
		}
		resp, ok := s.answer(q, make([]byte, 2, 512), 65535+2)
		if !ok {
			return
		}
		binary.BigEndian.PutUint16(resp, uint16(len(resp)-2))
		if err := c.SendAll(resp, 0); err != nil {
			return
		}
	}
}

// answer builds the response to query, appended to out; limit is the
// largest response allowed (the UDP limit sets TC and drops answers).
func (s *Server) answer(query, out []byte, limit int) ([]byte, bool) {
	q, err := socket.ParseDNSMessage(query)
	if err != nil || q.Response {
		s.stats.Malformed.Add(1)
		return nil, false
	}
	s.stats.Queries.Add(1)
	r := &socket.DNSMessage{ID: q.ID, Response: true, Opcode: q.Opcode, Authoritative: true,
		RecursionDesired: q.RecursionDesired, Questions: q.Questions}
	switch {
	case q.Opcode != 0:
		r.RCode = socket.DNSRCodeNotImp
		s.stats.Refused.Add(1)
	case len(q.Questions) != 1:
		r.RCode = socket.DNSRCodeFormErr
		s.stats.Refused.Add(1)
	default:
		r.Answers, r.RCode = s.lookup(q.Questions[0])
		if r.RCode == socket.DNSRCodeNXDomain {
			s.stats.NXDomain.Add(1)
		}
	}
	start := len(out)
	b, err := r.Pack(out)
	if err != nil {
		return nil, false
	}
	if len(b)-start > limit {
		// Keep as many whole answers as fit, and say it was cut.
		s.stats.Truncated.Add(1)
		r.Truncated = true
		for len(r.Answers) > 0 {
			r.Answers = r.Answers[:len(r.Answers)-1]
			if b, err = r.Pack(out[:start]); err != nil {
				return nil, false
			}
			if len(b)-start <= limit {
				break
			}
		}
	}
	s.stats.Answered.Add(1)
	return b, true
}

func (s *Server) lookup(q socket.DNSQuestion) ([]socket.DNSRR, uint8) {
	if q.Class != socket.DNSClassINET && q.Class != 255 {
		return nil, socket.DNSRCodeRefused
	}
	if a, ok := socket.ParseReverseName(q.Name); ok {
		names := s.rec.LookupAddr(a)
		if len(names) == 0 {
			return nil, socket.DNSRCodeNXDomain
		}
		if q.Type != socket.DNSTypePTR && q.Type != socket.DNSTypeANY {
			return nil, socket.DNSRCodeSuccess
		}
		var rrs []socket.DNSRR
		for _, n := range names {
			rrs = append(rrs, socket.DNSRR{Name: q.Name, Type: socket.DNSTypePTR, Class: socket.DNSClassINET, TTL: TTL, Target: n})
		}
		return rrs, socket.DNSRCodeSuccess
	}
	addrs, ok := s.rec.LookupHost(strings.TrimSuffix(q.Name, "."))
	if !ok {
		return nil, socket.DNSRCodeNXDomain
	}
	var rrs []socket.DNSRR
	for _, a := range addrs {
		t := uint16(socket.DNSTypeA)
		if !a.Is4() {
			t = socket.DNSTypeAAAA
		}
		if q.Type == t || q.Type == socket.DNSTypeANY {
			rrs = append(rrs, socket.DNSRR{Name: q.Name, Type: t, Class: socket.DNSClassINET, TTL: TTL, Addr: a})
		}
	}
	return rrs, socket.DNSRCodeSuccess // no records of the type: NODATA
}
