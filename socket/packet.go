package socket

import "syscall"

func (n *Net) newPacket(typ, proto int) (endpoint, error) { return nil, syscall.EAFNOSUPPORT }
