package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sockstack/sockstack/wire"
)

// VXLAN (RFC 7348) carries Ethernet frames in UDP: an 8-byte header
// (flags with the I bit, a 24-bit VNI) in front of the inner frame.
const (
	VXLANPort      = 4789
	vxlanHeaderLen = 8
	vxlanFlagI     = 0x08
	// VXLANOverhead is what encapsulation adds on the underlay (outer
	// IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14): a 1500-byte
	// underlay carries a 1450-byte inner MTU, as Linux sets it.
	VXLANOverhead = 20 + 8 + vxlanHeaderLen + 14
	// VXLANOverhead6 is the same over an IPv6 underlay (outer header 40
	// bytes): a 1430-byte inner MTU, as Linux sets it.
	VXLANOverhead6 = 40 + 8 + vxlanHeaderLen + 14
)

// VXLANConfig configures a VXLAN endpoint.
type VXLANConfig struct {
	Local   netip.AddrPort   // UDP address to listen on (port 0: any free port; the IANA port is VXLANPort)
	Remotes []netip.AddrPort // flood list: every remote VTEP of the segment
	VNI     uint32
	MAC     wire.MAC // the endpoint's MAC (random when zero)
	MTU     int      // inner IP MTU, default 1450 over IPv4, 1430 over IPv6
	Netns   string   // network namespace to open the socket in (/run/netns/NAME)
}

// VXLAN is an Ethernet endpoint on a VXLAN segment. Like the Linux vxlan
// device it floods broadcast, multicast and unknown unicast to every
// remote and learns which remote holds a MAC from the frames it receives.
type VXLAN struct {
	cfg    VXLANConfig
	conn   *net.UDPConn
	stats  Stats
	recv   Receiver
	closed atomic.Bool
	done   chan struct{}

	mu    sync.Mutex
	fdb   map[wire.MAC]netip.AddrPort
	wbuf  []byte
	rlist []netip.AddrPort

	// Counters of the overlay.
	BadHeader, WrongVNI, Learned, FDBFull, Flooded atomic.Uint64
}

// MaxVXLANFDB bounds the learnt MAC table (FDBFull counts misses).
const MaxVXLANFDB = 4096

// vxlanUnderlay6 says whether the underlay is IPv6: a local IPv6
// address, or an unspecified local address and an IPv6 first remote. As
// a Linux vxlan device's, every remote must be of the local address's
// family (an unspecified IPv6 local address, a dual-stack socket, takes
// both).
func vxlanUnderlay6(local netip.AddrPort, remotes []netip.AddrPort) (bool, error) {
	la := local.Addr()
	if !la.IsValid() || la.IsUnspecified() {
		dual := la.Is6()
		for _, r := range remotes {
			if r.Addr().Unmap().Is6() && !dual {
				return false, fmt.Errorf("link: vxlan remote %v is IPv6 but the local address %v is IPv4", r, local)
			}
		}
		return len(remotes) > 0 && remotes[0].Addr().Unmap().Is6(), nil
	}
	six := la.Unmap().Is6()
	for _, r := range remotes {
		if r.Addr().Unmap().Is6() != six {
			return false, fmt.Errorf("link: vxlan remote %v and local address %v are of different families", r, local)
		}
	}
	return six, nil
}

// NewVXLAN opens the UDP socket and returns the endpoint.
func NewVXLAN(cfg VXLANConfig) (*VXLAN, error) {
	if cfg.VNI >= 1<<24 {
		return nil, fmt.Errorf("link: VNI %d does not fit 24 bits", cfg.VNI)
	}
	six, err := vxlanUnderlay6(cfg.Local, cfg.Remotes)
	if err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500 - VXLANOverhead
		if six {
			cfg.MTU = 1500 - VXLANOverhead6
		}
	}
	if cfg.MAC == (wire.MAC{}) {
		cfg.MAC = randomMAC()
	}
	v := &VXLAN{cfg: cfg, fdb: map[wire.MAC]netip.AddrPort{}, done: make(chan struct{}),
		rlist: append([]netip.AddrPort(nil), cfg.Remotes...)}
	err = inNetns(cfg.Netns, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.Local))
		v.conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("link: vxlan listen %v: %w", cfg.Local, err)
	}
	return v, nil
}

func (v *VXLAN) MTU() int               { return v.cfg.MTU }
func (v *VXLAN) Kind() Kind             { return KindEthernet }
func (v *VXLAN) HardwareAddr() wire.MAC { return v.cfg.MAC }
func (v *VXLAN) Stats() *Stats          { return &v.stats }

// LocalAddr is the bound UDP address.
func (v *VXLAN) LocalAddr() netip.AddrPort { return v.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Attach starts the receive goroutine.
func (v *VXLAN) Attach(r Receiver) {
	v.recv = r
	go v.readLoop()
}

func (v *VXLAN) readLoop() {
	defer close(v.done)
	buf := make([]byte, 65536)
	var one [1][]byte
	for {
		n, from, err := v.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if v.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := buf[:n]
		if n < vxlanHeaderLen+wire.EthernetHeaderLen || b[0]&vxlanFlagI == 0 {
			v.BadHeader.Add(1)
			v.stats.RxDropped.Add(1)
			continue
		}
		if vni := binary.BigEndian.Uint32(b[4:]) >> 8; vni != v.cfg.VNI {
			v.WrongVNI.Add(1)
			v.stats.RxDropped.Add(1)
			continue
		}
		f := b[vxlanHeaderLen:]
		src := wire.Ethernet(f).Src()
		if !src.IsMulticast() {
			v.mu.Lock()
			from = v.remoteFor(from)
			if cur, ok := v.fdb[src]; !ok || cur != from {
				if ok || len(v.fdb) < MaxVXLANFDB {
					v.fdb[src] = from
					v.Learned.Add(1)
				} else {
					v.FDBFull.Add(1)
				}
			}
			v.mu.Unlock()
		}
		v.stats.RxFrames.Add(1)
		v.stats.RxBytes.Add(uint64(len(f)))
		one[0] = f
		v.recv.DeliverFrames(one[:])
	}
}

// WriteFrames encapsulates each frame and sends it to the remote that
// holds its destination MAC, or floods it to every remote.
func (v *VXLAN) WriteFrames(frames [][]byte) (int, error) {
	if v.closed.Load() {
		return 0, ErrClosed
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, f := range frames {
		if len(f) < wire.EthernetHeaderLen || len(f) > v.cfg.MTU+wire.EthernetHeaderLen {
			v.stats.TxDropped.Add(1)
			continue
		}
		need := vxlanHeaderLen + len(f)
		if cap(v.wbuf) < need {
			v.wbuf = make([]byte, need, max(need, 9000))
		}
		p := v.wbuf[:need]
		clear(p[:vxlanHeaderLen])
		p[0] = vxlanFlagI
		binary.BigEndian.PutUint32(p[4:], v.cfg.VNI<<8)
		copy(p[vxlanHeaderLen:], f)
		dst := wire.Ethernet(f).Dst()
		targets := v.rlist
		if to, ok := v.fdb[dst]; ok && !dst.IsMulticast() {
			targets = []netip.AddrPort{to}
		} else {
			v.Flooded.Add(1)
		}
		sent := false
		for _, to := range targets {
			if _, err := v.conn.WriteToUDPAddrPort(p, to); err == nil {
				sent = true
			}
		}
		if !sent {
			v.stats.TxDropped.Add(uint64(len(frames) - i))
			if len(targets) == 0 {
				continue
			}
			return i, fmt.Errorf("link: vxlan send failed")
		}
		v.stats.TxFrames.Add(1)
		v.stats.TxBytes.Add(uint64(len(f)))
	}
	return len(frames), nil
}

// remoteFor maps a datagram's source to the VTEP to answer: senders
// pick their UDP source port by flow hash (RFC 7348 5), so a configured
// remote with that IP gives the port; otherwise the source port is used
// (another sockstack process sends from its listening port). v.mu is held.
func (v *VXLAN) remoteFor(from netip.AddrPort) netip.AddrPort {
	ip := from.Addr().Unmap()
	from = netip.AddrPortFrom(ip, from.Port())
	// An exact match first: several sockstack VTEPs may share an IP.
	for _, r := range v.rlist {
		if r == from {
			return r
		}
	}
	for _, r := range v.rlist {
		if r.Addr() == ip {
			return r
		}
	}
	return from
}

// AddRemote adds a VTEP to the flood list; one of another family than
// the local address is refused (vxlanUnderlay6).
func (v *VXLAN) AddRemote(r netip.AddrPort) error {
	if _, err := vxlanUnderlay6(v.cfg.Local, []netip.AddrPort{r}); err != nil {
		return err
	}
	v.mu.Lock()
	v.rlist = append(v.rlist, r)
	v.mu.Unlock()
	return nil
}

// FDB lists the learnt MACs and their remotes.
func (v *VXLAN) FDB() map[wire.MAC]netip.AddrPort {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := make(map[wire.MAC]netip.AddrPort, len(v.fdb))
	for k, a := range v.fdb {
		m[k] = a
	}
	return m
}

// Close stops the endpoint.
func (v *VXLAN) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	err := v.conn.Close()
	if v.recv != nil {
		<-v.done
	}
	return err
}

// receiverFunc adapts a function to Receiver.
type receiverFunc func(frames [][]byte)

func (f receiverFunc) DeliverFrames(frames [][]byte) { f(frames) }

// JoinSwitch makes v one port of sw, as a Linux bridge with a vxlan
// device on it: frames the switch sends to the port are encapsulated
// (flooded or sent to the learnt remote), frames from the segment enter
// the switch, which learns their MACs on this port. Close v first, then
// the returned port.
func (v *VXLAN) JoinSwitch(sw *Switch) *SwitchPort {
	p := sw.Port(v.cfg.MAC)
	p.Attach(receiverFunc(func(frames [][]byte) { v.WriteFrames(frames) }))
	v.Attach(receiverFunc(func(frames [][]byte) {
		// A full egress queue drops at the switch (counted there); the
		// segment is a lossy wire, as it is for the kernel's bridge.
		p.WriteFrames(frames)
	}))
	return p
}
