package sim

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// A VXLAN port is the one part of a network that is not simulated: one
// end of a link is a real VXLAN tunnel endpoint (RFC 7348, UDP on the
// host's network), so sockstack processes and Linux vxlan devices share
// a segment with the simulated nodes. A network with one runs in real
// time (virtual time follows the wall clock, as in a synctest bubble but
// on the real clock) and is not deterministic: what arrives from the
// segment, and when, depends on the world.

// VXLANConfig is a real VXLAN port's tunnel endpoint.
type VXLANConfig struct {
	Local   netip.AddrPort   // UDP address to listen on
	Remotes []netip.AddrPort // flood list
	VNI     uint32
}

// VXLANMetrics are a VXLAN port's counters (not a function of the seed).
type VXLANMetrics struct {
	Link      string `json:"link"`
	Local     string `json:"local"`
	RxFrames  uint64 `json:"rx_frames"`
	TxFrames  uint64 `json:"tx_frames"`
	Learned   uint64 `json:"learned"`
	Flooded   uint64 `json:"flooded"`
	WrongVNI  uint64 `json:"wrong_vni"`
	BadHeader uint64 `json:"bad_header"`
}

// vxlanConn is the platform's tunnel endpoint.
type vxlanConn interface {
	WriteFrames(frames [][]byte) (int, error)
	Close() error
	metrics() VXLANMetrics
}

// vxlanEnd is the sink at a link's VXLAN side.
type vxlanEnd struct {
	link *Link
	cfg  VXLANConfig
	mac  wire.MAC
	conn vxlanConn
	one  [1][]byte
}

// recvFrame sends a frame the link delivered out over the tunnel.
func (e *vxlanEnd) recvFrame(_ *Port, p *packet) {
	if e.conn != nil {
		e.one[0] = p.buf
		e.conn.WriteFrames(e.one[:])
		e.one[0] = nil
	}
	p.free()
}

// DeliverFrames takes frames from the segment (on the endpoint's
// goroutine) and hands them to the loop, which owns the link.
func (e *vxlanEnd) DeliverFrames(frames [][]byte) {
	pt := e.link.Ends[1]
	for _, f := range frames {
		e.link.s.schedule(0, pt, 0, newPacket(f))
	}
}

// ConnectVXLAN makes a link from a to a real VXLAN port. The link's
// parameters (bandwidth, delay, loss, queue) apply between a and the
// tunnel endpoint; the endpoint opens when Run starts and closes when it
// ends, and the network then runs in real time.
func (n *Net) ConnectVXLAN(name string, cfg LinkConfig, a End, vc VXLANConfig) (*Link, error) {
	if n.linkByName[name] != nil {
		return nil, fmt.Errorf("duplicate link name %q", name)
	}
	if vc.VNI >= 1<<24 {
		return nil, fmt.Errorf("link %s: VNI %d does not fit 24 bits", name, vc.VNI)
	}
	if !vc.Local.IsValid() {
		return nil, fmt.Errorf("link %s: no local tunnel address", name)
	}
	l, err := n.S.NewLink(name, cfg)
	if err != nil {
		return nil, err
	}
	if err := n.attach(l, 0, a); err != nil {
		return nil, err
	}
	e := &vxlanEnd{link: l, cfg: vc, mac: n.nextMAC()}
	l.Ends[1].Name = name + ":vxlan"
	l.Ends[1].sink = e
	n.vxlans = append(n.vxlans, e)
	// Peers outside come and go: a real-time network runs for its whole
	// duration rather than stopping when its own flows are done.
	n.StopWhenDone = false
	n.Links = append(n.Links, l)
	n.linkByName[name] = l
	return l, nil
}

// RealTime reports whether the network has a VXLAN port (and so runs in
// real time).
func (n *Net) RealTime() bool { return len(n.vxlans) > 0 }

// runRealTime opens the tunnel endpoints and runs the loop on the wall
// clock until until (or Stop).
func (n *Net) runRealTime(until time.Duration) error {
	n.vxlanStats = nil
	for i, e := range n.vxlans {
		c, err := openVXLAN(e)
		if err != nil {
			for _, o := range n.vxlans[:i] {
				o.conn.Close()
			}
			return fmt.Errorf("link %s: %w", e.link.Name, err)
		}
		e.conn = c
	}
	n.S.UseBubble()
	err := n.S.RunBubble(until)
	for _, e := range n.vxlans {
		n.vxlanStats = append(n.vxlanStats, e.conn.metrics())
		e.conn.Close()
		e.conn = nil
	}
	return err
}
