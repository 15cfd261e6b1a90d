package sim

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Net is a simulated network: its nodes, links, workloads and results.
type Net struct {
	S        *Sim
	Hosts    []*Host
	Switches []*Switch
	Links    []*Link
	Flows    []*Flow

	hostByName map[string]*Host
	swByName   map[string]*Switch
	linkByName map[string]*Link
	byClient   map[netip.AddrPort]*Flow
	listening  map[string]bool
	traced     []*Flow
	macs       uint32
	active     int
	files      []*os.File
	pcaps      []*link.PcapWriter

	// StopWhenDone ends the run Linger after the last flow finishes.
	StopWhenDone bool
	Linger       time.Duration
	// MaxTraced bounds the flows whose TCP state is sampled.
	MaxTraced int
	// SampleEvery is the sampling period of flows and queues (0: none).
	SampleEvery time.Duration
	qsampled    []*Link
	capture     []string // links the scenario captures (captureAll: every one)
	captureAll  bool
	vxlans      []*vxlanEnd // real VXLAN ports: the run is in real time
	vxlanStats  []VXLANMetrics

	// PlotFormats are the formats of the report's charts (default
	// Formats: PNG and SVG).
	PlotFormats []string

	// Wall is the wall time the last Run took.
	Wall time.Duration
}

// QSample is a queue's backlog at one time.
type QSample struct {
	T       time.Duration
	Packets int
	Bytes   int
}

// NewNet makes an empty network seeded with seed.
func NewNet(seed uint64) *Net {
	return &Net{S: New(seed), hostByName: map[string]*Host{}, swByName: map[string]*Switch{},
		linkByName: map[string]*Link{}, byClient: map[netip.AddrPort]*Flow{}, listening: map[string]bool{},
		StopWhenDone: true, Linger: 100 * time.Millisecond, MaxTraced: 16}
}

// AddHost adds a host or (router true) a router.
func (n *Net) AddHost(name string, router bool, tc tcp.Config) (*Host, error) {
	if n.hostByName[name] != nil || n.swByName[name] != nil {
		return nil, fmt.Errorf("duplicate node name %q", name)
	}
	h := n.S.NewHost(name, router, tc)
	n.Hosts = append(n.Hosts, h)
	n.hostByName[name] = h
	return h, nil
}

// AddSwitch adds a learning switch.
func (n *Net) AddSwitch(name string) (*Switch, error) {
	if n.hostByName[name] != nil || n.swByName[name] != nil {
		return nil, fmt.Errorf("duplicate node name %q", name)
	}
	sw := n.S.NewSwitch(name)
	n.Switches = append(n.Switches, sw)
	n.swByName[name] = sw
	return sw, nil
}

// Host finds a host by name.
func (n *Net) Host(name string) *Host { return n.hostByName[name] }

// Link finds a link by name.
func (n *Net) Link(name string) *Link { return n.linkByName[name] }

// End is one side of a link: a host interface with an address, or a switch.
type End struct {
	Host   *Host
	Switch *Switch
	Iface  string       // interface name on a host (default ethN)
	Addr   netip.Prefix // host address on that interface
	More   []netip.Prefix
}

func (n *Net) nextMAC() wire.MAC {
	n.macs++
	return wire.MAC{0x02, 0x5e, byte(n.macs >> 24), byte(n.macs >> 16), byte(n.macs >> 8), byte(n.macs)}
}

// Connect makes a link between two ends.
func (n *Net) Connect(name string, cfg LinkConfig, a, b End) (*Link, error) {
	if n.linkByName[name] != nil {
		return nil, fmt.Errorf("duplicate link name %q", name)
	}
	l, err := n.S.NewLink(name, cfg)
	if err != nil {
		return nil, err
	}
	for i, e := range []End{a, b} {
		if err := n.attach(l, i, e); err != nil {
			return nil, err
		}
	}
	n.Links = append(n.Links, l)
	n.linkByName[name] = l
	return l, nil
}

// attach puts end i of l on a host interface or a switch port.
func (n *Net) attach(l *Link, i int, e End) error {
	pt := l.Ends[i]
	switch {
	case e.Host != nil:
		ifn := e.Iface
		if ifn == "" {
			ifn = fmt.Sprintf("eth%d", len(e.Host.ifaces))
		}
		pt.Name = e.Host.Name + ":" + ifn
		if _, err := e.Host.AddIface(ifn, pt, e.Addr, n.nextMAC(), e.More...); err != nil {
			return fmt.Errorf("link %s: %v", l.Name, err)
		}
	case e.Switch != nil:
		pt.Name = fmt.Sprintf("%s:p%d", e.Switch.Name, len(e.Switch.ports))
		e.Switch.AddPort(pt)
	default:
		return fmt.Errorf("link %s: end %d has no node", l.Name, i)
	}
	return nil
}

// CaptureScenario opens the captures the scenario asked for in dir.
func (n *Net) CaptureScenario(dir string) error {
	if !n.captureAll && len(n.capture) == 0 {
		return nil
	}
	return n.Capture(dir, n.capture)
}

// Capture writes a pcap file per link into dir (all links when names is
// empty), as tcpdump on the interface at the link's first end (a) would
// see it: frames a sends when they start onto the wire (so frames lost
// on the wire are in it), frames for a when they arrive.
func (n *Net) Capture(dir string, names []string) error {
	want := map[string]bool{}
	for _, nm := range names {
		want[nm] = true
	}
	for _, l := range n.Links {
		if len(names) > 0 && !want[l.Name] {
			continue
		}
		f, err := os.Create(filepath.Join(dir, l.Name+".pcap"))
		if err != nil {
			return err
		}
		w, err := link.NewPcapWriter(f, link.LinkTypeEthernet, link.PcapOptions{Nanosecond: true})
		if err != nil {
			f.Close()
			return err
		}
		l.pcap = w
		n.files = append(n.files, f)
		n.pcaps = append(n.pcaps, w)
	}
	return nil
}

// closeCaptures flushes and closes the pcap files.
func (n *Net) closeCaptures() error {
	var first error
	for i, w := range n.pcaps {
		if err := w.Flush(); err != nil && first == nil {
			first = err
		}
		if err := n.files[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	n.pcaps, n.files = nil, nil
	for _, l := range n.Links {
		l.pcap = nil
	}
	return first
}

// Run runs the network until every flow finished (plus Linger) or until.
func (n *Net) Run(until time.Duration) error {
	if n.SampleEvery > 0 {
		for _, l := range n.Links {
			if l.Cfg.Bandwidth > 0 && len(n.qsampled) < 32 {
				n.qsampled = append(n.qsampled, l)
			}
		}
		var tick func()
		tick = func() {
			n.sample()
			n.S.After(n.SampleEvery, tick)
		}
		n.S.After(0, tick)
	}
	start := time.Now()
	var err error
	if len(n.vxlans) > 0 {
		err = n.runRealTime(until)
	} else {
		err = n.S.Run(until)
	}
	n.Wall += time.Since(start)
	now := n.S.Now()
	for _, f := range n.Flows {
		f.finish(now)
	}
	if cerr := n.closeCaptures(); err == nil {
		err = cerr
	}
	return err
}

func (n *Net) sample() {
	now := n.S.Now()
	for _, f := range n.traced {
		if f.ep == nil || f.done(now) {
			continue
		}
		i := f.ep.Info()
		if i.State != tcp.StateEstablished && i.State != tcp.StateFinWait1 && i.State != tcp.StateCloseWait {
			continue
		}
		f.last = i
		f.Samples = append(f.Samples, Sample{T: now, Cwnd: i.CwndBytes, Ssthresh: ssthreshBytes(i), InFlight: i.BytesInFlight,
			SRTT: i.RTT, BytesAcked: i.BytesAcked})
	}
	for _, l := range n.qsampled {
		for d := range 2 {
			q := l.dirs[d].q
			l.qs[d] = append(l.qs[d], QSample{T: now, Packets: q.Len(), Bytes: q.Backlog()})
		}
	}
}

// ssthreshBytes converts TCP_INFO's segments to bytes; "infinite" is -1.
func ssthreshBytes(i tcp.Info) int {
	if i.SndSsthresh >= 1<<30 {
		return -1
	}
	return int(i.SndSsthresh) * max(i.SndMSS, 1)
}
