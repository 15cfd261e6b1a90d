package link

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// CANBridge carries a CAN bus over UDP, so buses in two processes (or
// machines) form one bus. Classic frames travel in the CAN-over-Ethernet
// format Wireshark decodes as "caneth" (magic "ISO11898", version 1, 15
// bytes a frame); CAN FD frames, which that format cannot hold, travel as
// "SSCANFD1" followed by the 72-byte canfd_frame with the id in network
// byte order. Error frames stay local: they are a controller's report,
// not bus traffic.
//
// The bridge is a node of the local bus: what other nodes send it
// forwards to the peer, what the peer sends it queues on the bus like
// any node (so arbitration and the bit-rate model apply). It never sends
// back what it received, so two bridges do not loop.
type CANBridge struct {
	node *CANIf
	conn *net.UDPConn

	mu     sync.Mutex
	peer   netip.AddrPort // where frames go; learned from the first packet if unset
	out    [wire.CANEthHeaderLen + wire.CANEthFrameLen]byte
	outFD  [8 + wire.CANFDMTU]byte
	closed atomic.Bool
	done   chan struct{}

	TxPackets   atomic.Uint64
	TxErrors    atomic.Uint64
	RxPackets   atomic.Uint64
	RxFrames    atomic.Uint64
	RxMalformed atomic.Uint64 // packets or frames that failed to parse
	RxDropped   atomic.Uint64 // frames the bus refused (queue full, bus-off)
}

// CANFDBridgeMagic starts a bridge packet carrying one CAN FD frame.
const CANFDBridgeMagic = "SSCANFD1"

// NewCANBridge attaches a node called name to bus, listens on listen
// (host:port; port 0 picks one) and sends to peer (may be empty: the
// first sender becomes the peer).
func NewCANBridge(bus *CANBus, name, listen, peer string) (*CANBridge, error) {
	la, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, err
	}
	var pa netip.AddrPort
	if peer != "" {
		ua, err := net.ResolveUDPAddr("udp", peer)
		if err != nil {
			return nil, err
		}
		pa = ua.AddrPort()
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	b := &CANBridge{conn: conn, peer: pa, done: make(chan struct{})}
	b.node = bus.Attach(name)
	b.node.AddReceiver(b)
	go b.readLoop()
	return b, nil
}

// LocalAddr is the UDP address the bridge listens on.
func (b *CANBridge) LocalAddr() netip.AddrPort { return b.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Node is the bridge's node on the local bus.
func (b *CANBridge) Node() *CANIf { return b.node }

// SetPeer sets where frames go.
func (b *CANBridge) SetPeer(p netip.AddrPort) {
	b.mu.Lock()
	b.peer = p
	b.mu.Unlock()
}

// ReceiveCAN forwards frames of the other nodes to the peer.
func (b *CANBridge) ReceiveCAN(_ *CANIf, f *wire.CANFrame, local bool, origin any) {
	if local || f.IsErr() || origin == any(b) || b.closed.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.peer.IsValid() {
		return
	}
	var pkt []byte
	if f.IsFD() {
		copy(b.outFD[:8], CANFDBridgeMagic)
		wire.PutSocketCANPcap(b.outFD[8:], f)
		pkt = b.outFD[:]
	} else {
		wire.PutCANEthHeader(b.out[:], 1)
		wire.PutCANEthFrame(b.out[wire.CANEthHeaderLen:], f)
		pkt = b.out[:]
	}
	if _, err := b.conn.WriteToUDPAddrPort(pkt, b.peer); err != nil {
		b.TxErrors.Add(1)
		return
	}
	b.TxPackets.Add(1)
}

func (b *CANBridge) readLoop() {
	defer close(b.done)
	buf := make([]byte, 2048)
	var f wire.CANFrame
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if b.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b.RxPackets.Add(1)
		b.mu.Lock()
		if !b.peer.IsValid() {
			b.peer = from
		}
		b.mu.Unlock()
		p := buf[:n]
		if n == 8+wire.CANFDMTU && string(p[:8]) == CANFDBridgeMagic {
			if wire.ParseSocketCANPcap(p[8:], &f) != nil || !f.IsFD() || f.IsErr() {
				b.RxMalformed.Add(1)
				continue
			}
			b.inject(&f)
			continue
		}
		cnt, err := wire.CANEthFrames(p)
		if err != nil {
			b.RxMalformed.Add(1)
			continue
		}
		for i := range cnt {
			if wire.ParseCANEthFrame(p, i, &f) != nil {
				b.RxMalformed.Add(1)
				continue
			}
			b.inject(&f)
		}
	}
}

func (b *CANBridge) inject(f *wire.CANFrame) {
	b.RxFrames.Add(1)
	if b.node.Send(f, b, false) != nil {
		b.RxDropped.Add(1)
	}
}

// Close stops the bridge and detaches its receiver.
func (b *CANBridge) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.node.RemoveReceiver(b)
	b.node.SetDown(true)
	err := b.conn.Close()
	<-b.done
	return err
}
