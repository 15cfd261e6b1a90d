package socket

import "syscall"

// unixSpace is the AF_UNIX name space of one Net (paths and abstract names).
type unixSpace struct{}

func newUnixSpace() *unixSpace { return &unixSpace{} }

func (n *Net) newUnix(typ, proto int) (endpoint, error) { return nil, syscall.EAFNOSUPPORT }
