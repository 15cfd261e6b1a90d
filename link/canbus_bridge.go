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
// forwards to its peers, what a peer sends it queues on the bus like any
// node (so arbitration and the bit-rate model apply) and passes on to
// its other peers, so one bridge can be the hub of several processes.
// Peers are the one configured and those learned from the packets they
// send (at most MaxCANBridgePeers). It never sends a packet back where it
// came from, so bridges do not loop as long as they form a tree.
type CANBridge struct {
	node *CANIf
	conn *net.UDPConn

	mu     sync.Mutex
	peers  []netip.AddrPort // where frames go
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
	PeersFull   atomic.Uint64 // packets from a new sender not learned: peer table full
}

// MaxCANBridgePeers bounds the peers a bridge learns.
const MaxCANBridgePeers = 16

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
		pa = unmapAP(ua.AddrPort())
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	b := &CANBridge{conn: conn, done: make(chan struct{})}
	if pa.IsValid() {
		b.peers = append(b.peers, pa)
	}
	b.node = bus.Attach(name)
	b.node.AddReceiver(b)
	go b.readLoop()
	return b, nil
}

// LocalAddr is the UDP address the bridge listens on.
func (b *CANBridge) LocalAddr() netip.AddrPort { return b.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Node is the bridge's node on the local bus.
func (b *CANBridge) Node() *CANIf { return b.node }

// Peers lists where frames go.
func (b *CANBridge) Peers() []netip.AddrPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]netip.AddrPort(nil), b.peers...)
}

// ReceiveCAN forwards frames of the other nodes to the peer.
func (b *CANBridge) ReceiveCAN(_ *CANIf, f *wire.CANFrame, local bool, origin any) {
	if local || f.IsErr() || origin == any(b) || b.closed.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.peers) == 0 {
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
	b.sendLocked(pkt, netip.AddrPort{})
}

// sendLocked sends pkt to every peer but skip.
func (b *CANBridge) sendLocked(pkt []byte, skip netip.AddrPort) {
	for _, p := range b.peers {
		if p == skip {
			continue
		}
		if _, err := b.conn.WriteToUDPAddrPort(pkt, p); err != nil {
			b.TxErrors.Add(1)
			continue
		}
		b.TxPackets.Add(1)
	}
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
		from = unmapAP(from)
		p := buf[:n]
		if n == 8+wire.CANFDMTU && string(p[:8]) == CANFDBridgeMagic {
			if wire.ParseSocketCANPcap(p[8:], &f) != nil || !f.IsFD() || f.IsErr() {
				b.RxMalformed.Add(1)
				continue
			}
			// Peers first, so the sender is known before anyone sees the frame.
			b.relay(p, from)
			b.inject(&f)
			continue
		}
		cnt, err := wire.CANEthFrames(p)
		if err != nil {
			b.RxMalformed.Add(1)
			continue
		}
		b.relay(p, from)
		for i := range cnt {
			if wire.ParseCANEthFrame(p, i, &f) != nil {
				b.RxMalformed.Add(1)
				continue
			}
			b.inject(&f)
		}
	}
}

// unmapAP writes IPv4 addresses one way (an IPv4 socket may report
// them as IPv4-mapped IPv6), so a peer is recognised.
func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// relay learns the sender of a valid packet and passes the packet on to
// the other peers.
func (b *CANBridge) relay(p []byte, from netip.AddrPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	known := false
	for _, x := range b.peers {
		if x == from {
			known = true
			break
		}
	}
	if !known {
		if len(b.peers) < MaxCANBridgePeers {
			b.peers = append(b.peers, from)
		} else {
			b.PeersFull.Add(1)
		}
	}
	b.sendLocked(p, from)
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
