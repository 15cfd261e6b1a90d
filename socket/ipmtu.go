package socket

import "syscall"

// IP_MTU (linux/in.h): getsockopt only, the path MTU toward a connected
// socket's peer.
const IP_MTU = 14

// getMTUOpt answers getsockopt(SOL_IP, IP_MTU) on an AF_INET socket, as
// Linux's do_ip_getsockopt reads the socket's cached route: ENOTCONN
// without a peer (unconnected, a listener). IPV6_MTU is answered by the
// endpoints (inet6.go, tcp6 below).
func (s *Socket) getMTUOpt(level, name int) (bool, any, error) {
	switch {
	case level == SOL_IP && name == IP_MTU && s.family == AF_INET:
	case level == IPPROTO_IPV6 && name == IPV6_MTU && s.family == AF_INET6:
		if _, ok := s.ep.(*tcpEP); !ok {
			return false, nil, nil // datagram sockets: inet6.go
		}
	default:
		return false, nil, nil
	}
	switch s.ep.(type) {
	case *tcpEP, *dgramEP:
	default:
		return false, nil, nil
	}
	ra, err := s.ep.remoteAddr()
	if err != nil {
		return true, nil, syscall.ENOTCONN
	}
	sa, ok := ra.(*SockaddrInet)
	if !ok {
		return true, nil, syscall.ENOTCONN
	}
	dst := sa.AddrPort.Addr().Unmap()
	mtu := s.net.st.PathMTU(dst)
	if mtu == 0 {
		return true, nil, syscall.ENOTCONN
	}
	if dst.Is4() {
		mtu = min(mtu, 0xFFFF) // Linux's ipv4_mtu: no IPv4 packet is longer (lo's 65536 reads 65535)
	}
	return true, mtu, nil
}
