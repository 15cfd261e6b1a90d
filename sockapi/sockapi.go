// Package sockapi is the socket interface shared by sockstack (package
// socket) and the host kernel (package hostsock), so that tests, examples
// and commands can run on either.
package sockapi

import (
	"syscall"
	"time"

	"github.com/sockstack/sockstack/hostsock"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

// API creates sockets.
type API interface {
	Socket(family, typ, proto int) (Sock, error)
}

// Sock is one socket: the method set of *socket.Socket and
// *hostsock.Socket, with Accept and Dup returning Sock.
type Sock interface {
	Bind(a socket.Sockaddr) error
	Listen(backlog int) error
	Accept() (Sock, socket.Sockaddr, error)
	Connect(a socket.Sockaddr) error
	ConnectEx(a socket.Sockaddr) syscall.Errno
	Send(b []byte, flags int) (int, error)
	SendTo(b []byte, flags int, a socket.Sockaddr) (int, error)
	SendAll(b []byte, flags int) error
	Recv(b []byte, flags int) (int, error)
	RecvFrom(b []byte, flags int) (int, socket.Sockaddr, error)
	RecvMsg(b []byte, flags int) (n, rflags int, from socket.Sockaddr, err error)
	RecvInto(b []byte, flags int) (int, error)
	Shutdown(how int) error
	Close() error
	Dup() (Sock, error)
	GetSockName() (socket.Sockaddr, error)
	GetPeerName() (socket.Sockaddr, error)
	SetBlocking(b bool)
	SetTimeout(d time.Duration)
	Timeout() time.Duration
	SetSockOpt(level, name int, v any) error
	SetSockOptInt(level, name, v int) error
	GetSockOpt(level, name int) (any, error)
	GetSockOptInt(level, name int) (int, error)
	Ioctl(req uint, arg int) (int, error)
	Fileno() int
	Family() int
	Type() int
	Proto() int
}

// Stack is the API of a sockstack socket layer.
func Stack(n *socket.Net) API { return stackAPI{n} }

// Host is the API of the host kernel.
func Host() API { return hostAPI{hostsock.New()} }

type stackAPI struct{ n *socket.Net }

func (a stackAPI) Socket(f, t, p int) (Sock, error) {
	s, err := a.n.Socket(f, t, p)
	if err != nil {
		return nil, err
	}
	return StackSock{s}, nil
}

// StackSock adapts a *socket.Socket to Sock.
type StackSock struct{ *socket.Socket }

func (s StackSock) Accept() (Sock, socket.Sockaddr, error) {
	ns, from, err := s.Socket.Accept()
	if err != nil {
		return nil, nil, err
	}
	return StackSock{ns}, from, nil
}

func (s StackSock) Dup() (Sock, error) {
	ns, err := s.Socket.Dup()
	if err != nil {
		return nil, err
	}
	return StackSock{ns}, nil
}

type hostAPI struct{ n *hostsock.Net }

func (a hostAPI) Socket(f, t, p int) (Sock, error) {
	s, err := a.n.Socket(f, t, p)
	if err != nil {
		return nil, err
	}
	return HostSock{s}, nil
}

// HostSock adapts a *hostsock.Socket to Sock.
type HostSock struct{ *hostsock.Socket }

func (s HostSock) Accept() (Sock, socket.Sockaddr, error) {
	ns, from, err := s.Socket.Accept()
	if err != nil {
		return nil, nil, err
	}
	return HostSock{ns}, from, nil
}

func (s HostSock) Dup() (Sock, error) {
	ns, err := s.Socket.Dup()
	if err != nil {
		return nil, err
	}
	return HostSock{ns}, nil
}

// SendMsgControl is sendmsg(2) with a raw control buffer on the host
// kernel (socket.Socket.SendMsgControl on sockstack): the buffer goes to
// the kernel unchanged.
func (s HostSock) SendMsgControl(b, oob []byte, flags int, to socket.Sockaddr) (int, error) {
	var sa unix.Sockaddr
	if v, ok := to.(*socket.SockaddrInet); ok {
		a := v.AddrPort.Addr()
		if a.Is4() {
			sa = &unix.SockaddrInet4{Port: int(v.AddrPort.Port()), Addr: a.As4()}
		} else {
			sa = &unix.SockaddrInet6{Port: int(v.AddrPort.Port()), Addr: a.As16()}
		}
	} else if to != nil {
		return 0, syscall.EAFNOSUPPORT
	}
	return unix.SendmsgN(s.Fileno(), b, oob, sa, flags)
}
