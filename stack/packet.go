package stack

import "syscall"

// Packet taps give AF_PACKET sockets a copy of every frame a NIC sends
// or receives.

type packetTap struct {
	fn func(n *NIC, frame []byte, outgoing bool)
}

// AddPacketTap calls fn for every frame of every NIC until the returned
// function is called. fn runs on the link goroutine and must copy.
func (s *Stack) AddPacketTap(fn func(n *NIC, frame []byte, outgoing bool)) (remove func()) {
	t := &packetTap{fn}
	s.hooks.Lock()
	s.hooks.taps = append(s.hooks.taps, t)
	s.hooks.n.Add(1)
	s.hooks.Unlock()
	return func() {
		s.hooks.Lock()
		for i, o := range s.hooks.taps {
			if o == t {
				s.hooks.taps = append(s.hooks.taps[:i], s.hooks.taps[i+1:]...)
				s.hooks.n.Add(-1)
				break
			}
		}
		s.hooks.Unlock()
	}
}

func (n *NIC) tapFrame(f []byte, outgoing bool) {
	s := n.stack
	if s.hooks.n.Load() == 0 {
		return
	}
	s.hooks.RLock()
	defer s.hooks.RUnlock()
	for _, t := range s.hooks.taps {
		t.fn(n, f, outgoing)
	}
}

// SetPromiscuous counts a promiscuous user of the NIC.
func (n *NIC) SetPromiscuous(on bool) {
	if on {
		n.promisc.Add(1)
	} else {
		n.promisc.Add(-1)
	}
}

// WriteRawFrame sends a frame built by the caller (AF_PACKET SOCK_RAW
// injection). It must fit the link: MTU plus the link header.
func (n *NIC) WriteRawFrame(f []byte) error {
	max := n.mtu
	if n.ethernet {
		max += 14
	}
	if len(f) > max {
		return syscall.EMSGSIZE
	}
	if n.ethernet && len(f) < 14 {
		return syscall.EINVAL
	}
	n.writeFrame(f)
	return nil
}
