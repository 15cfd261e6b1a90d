package socket

import (
	"strconv"
	"syscall"
	"time"
)

// The conveniences of Python's socket module that most modern tutorials
// start from: create_connection and create_server, with its rules.

// DefaultTimeout for CreateConnection leaves the socket blocking (the
// global default of Python's create_connection).
const DefaultTimeout time.Duration = -1

// CreateConnection is Python's socket.create_connection: it resolves
// host and port for TCP (getaddrinfo, any family), and tries each
// address in turn with a fresh socket (timeout set as SetTimeout sets
// it unless DefaultTimeout, bound to source when it is not nil) until
// one connects. All failing, it returns the last attempt's error;
// resolving failing, the getaddrinfo error.
func (n *Net) CreateConnection(host string, port int, timeout time.Duration, source Sockaddr) (*Socket, error) {
	ais, err := n.GetAddrInfo(host, strconv.Itoa(port), AF_UNSPEC, SOCK_STREAM, 0, 0)
	if err != nil {
		return nil, err
	}
	if len(ais) == 0 {
		return nil, gaiErr(EAI_NONAME, nil) // "getaddrinfo returns an empty list"
	}
	var last error
	for _, ai := range ais {
		s, err := n.Socket(ai.Family, ai.Type, ai.Proto)
		if err != nil {
			last = err
			continue
		}
		if timeout != DefaultTimeout {
			s.SetTimeout(timeout)
		}
		if source != nil {
			if err := s.Bind(source); err != nil {
				s.Close()
				last = err
				continue
			}
		}
		if err := s.Connect(ai.Addr); err != nil {
			s.Close()
			last = err
			continue
		}
		return s, nil
	}
	return nil, last
}

// CreateServer is Python's socket.create_server: a TCP socket of addr's
// family with SO_REUSEADDR, SO_REUSEPORT when reusePort, on AF_INET6
// IPV6_V6ONLY off when dualStack and on otherwise, bound to addr and
// listening with backlog (a negative backlog is Python's default, 128).
// dualStack on an AF_INET address is EINVAL (Python's ValueError).
func (n *Net) CreateServer(addr Sockaddr, backlog int, reusePort, dualStack bool) (*Socket, error) {
	if addr == nil {
		return nil, syscall.EINVAL
	}
	family := addr.Family()
	if dualStack && family != AF_INET6 {
		return nil, syscall.EINVAL
	}
	s, err := n.Socket(family, SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Socket, error) {
		s.Close()
		return nil, err
	}
	_ = s.SetSockOptInt(SOL_SOCKET, SO_REUSEADDR, 1) // Python ignores its failure
	if reusePort {
		if err := s.SetSockOptInt(SOL_SOCKET, SO_REUSEPORT, 1); err != nil {
			return fail(err)
		}
	}
	if family == AF_INET6 {
		if err := s.SetSockOptInt(IPPROTO_IPV6, IPV6_V6ONLY, b2i(!dualStack)); err != nil {
			return fail(err)
		}
	}
	if err := s.Bind(addr); err != nil {
		return fail(err)
	}
	if backlog < 0 {
		backlog = 128 // Python: min(SOMAXCONN, 128)
	}
	if err := s.Listen(backlog); err != nil {
		return fail(err)
	}
	return s, nil
}
