package link

import (
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// Switch is an in-memory learning Ethernet switch. Frames to a learned
// unicast MAC go to its port; broadcast, multicast and unknown
// destinations are flooded to every other port.
type Switch struct {
	mu        sync.RWMutex
	ports     []*SwitchPort
	table     map[wire.MAC]*SwitchPort
	mtu       int
	Flooded   atomic.Uint64 // frames flooded
	Learned   atomic.Uint64 // table updates
	TableFull atomic.Uint64 // source addresses not learned: table full
}

// MaxSwitchTable bounds the MAC table; when it is full, new addresses
// are not learned (their frames are flooded) and TableFull counts them.
// Flood copies refused by a full port queue are counted in that port's
// RxDropped (a switch drops at the egress port).
const MaxSwitchTable = 4096

// NewSwitch returns a switch with no ports yet.
func NewSwitch(mtu int) *Switch {
	return &Switch{table: make(map[wire.MAC]*SwitchPort), mtu: mtu}
}

// SwitchPort is the endpoint a host attaches to one switch port.
type SwitchPort struct {
	sw     *Switch
	mac    wire.MAC
	stats  Stats
	in     *queue
	closed atomic.Bool
}

// Port adds a port for a host whose NIC has the given MAC.
func (s *Switch) Port(mac wire.MAC) *SwitchPort {
	p := &SwitchPort{sw: s, mac: mac}
	p.in = newQueue(DefaultQueueLen, s.mtu+wire.EthernetHeaderLen+4, &p.stats)
	s.mu.Lock()
	s.ports = append(s.ports, p)
	s.mu.Unlock()
	return p
}

func (p *SwitchPort) MTU() int               { return p.sw.mtu }
func (p *SwitchPort) Kind() Kind             { return KindEthernet }
func (p *SwitchPort) HardwareAddr() wire.MAC { return p.mac }
func (p *SwitchPort) Stats() *Stats          { return &p.stats }
func (p *SwitchPort) Attach(r Receiver)      { p.in.attach(r) }

// WriteFrames forwards each frame: learn the source, then deliver or flood.
func (p *SwitchPort) WriteFrames(frames [][]byte) (int, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	s := p.sw
	for i, f := range frames {
		if len(f) < wire.EthernetHeaderLen {
			p.stats.TxDropped.Add(1)
			continue
		}
		e := wire.Ethernet(f)
		src, dst := e.Src(), e.Dst()
		s.mu.RLock()
		known := s.table[src] == p
		out := s.table[dst]
		s.mu.RUnlock()
		if !known && !src.IsMulticast() {
			s.mu.Lock()
			if _, ok := s.table[src]; ok || len(s.table) < MaxSwitchTable {
				s.table[src] = p
				s.Learned.Add(1)
			} else {
				s.TableFull.Add(1)
			}
			s.mu.Unlock()
		}
		one := frames[i : i+1]
		p.stats.TxFrames.Add(1)
		p.stats.TxBytes.Add(uint64(len(f)))
		if out != nil && !dst.IsMulticast() {
			if out != p && !out.closed.Load() {
				if n, _ := out.in.push(one); n == 0 {
					// Refused at the destination's full queue: report the
					// frames from here on as not taken, so a sender that
					// waits for room can retry them.
					p.stats.TxFrames.Add(^uint64(0))
					p.stats.TxBytes.Add(^uint64(len(f) - 1))
					p.stats.TxDropped.Add(uint64(len(frames) - i))
					return i, ErrQueueFull
				}
			}
			continue
		}
		s.Flooded.Add(1)
		s.mu.RLock()
		for _, q := range s.ports {
			if q != p && !q.closed.Load() {
				if n, _ := q.in.push(one); n == 0 {
					q.stats.RxDropped.Add(1)
				}
			}
		}
		s.mu.RUnlock()
	}
	return len(frames), nil
}

// WaitRoom waits until every other port's queue has room; a sender that
// floods would otherwise overrun the slowest port.
func (p *SwitchPort) WaitRoom(done <-chan struct{}) {
	p.sw.mu.RLock()
	ports := append([]*SwitchPort(nil), p.sw.ports...)
	p.sw.mu.RUnlock()
	for _, q := range ports {
		if q != p {
			q.in.waitRoom(done)
		}
	}
}

// Close detaches the port.
func (p *SwitchPort) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.in.close()
	s := p.sw
	s.mu.Lock()
	for m, q := range s.table {
		if q == p {
			delete(s.table, m)
		}
	}
	s.mu.Unlock()
	return nil
}
