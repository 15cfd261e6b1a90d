package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sockstack/sockstack/tcp"
)

// Scenario is a parsed scenario file.
type Scenario struct {
	File        string      `yaml:"-"`
	Name        string      `yaml:"name"`
	Description string      `yaml:"description"`
	Duration    Duration    `yaml:"duration"`
	Seed        uint64      `yaml:"seed"`
	Sample      Duration    `yaml:"sample"`
	Capture     []string    `yaml:"capture"` // link names; empty: all; ["none"]: none
	TCP         TCPSpec     `yaml:"tcp"`
	Hosts       []NodeSpec  `yaml:"hosts"`
	Routers     []NodeSpec  `yaml:"routers"`
	Switches    []NodeSpec  `yaml:"switches"`
	Groups      []GroupSpec `yaml:"groups"`
	Links       []LinkSpec  `yaml:"links"`
	Workloads   []WorkSpec  `yaml:"workloads"`
	Events      []EventSpec `yaml:"events"`
	DAD         bool        `yaml:"dad"` // IPv6 duplicate address detection (one probe, one virtual second)
	lines       fieldLines
}

// fieldLines remembers the line of each key of a mapping, for errors.
type fieldLines struct {
	line  int
	field map[string]int
}

func (fl *fieldLines) of(field string) int {
	if l, ok := fl.field[field]; ok {
		return l
	}
	return fl.line
}

func (fl *fieldLines) record(n *yaml.Node) {
	fl.line = n.Line
	fl.field = map[string]int{}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			fl.field[n.Content[i].Value] = n.Content[i].Line
		}
	}
}

// strict decodes a mapping into v, refusing unknown keys.
func strict(n *yaml.Node, v any, fl *fieldLines, known func(string) bool) error {
	fl.record(n)
	if n.Kind != yaml.MappingNode {
		return &ScenarioError{Line: n.Line, Why: "expected a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !known(n.Content[i].Value) {
			return &ScenarioError{Line: n.Content[i].Line, Field: n.Content[i].Value, Why: "unknown field"}
		}
	}
	err := n.Decode(v)
	var se *ScenarioError
	if errors.As(err, &se) && se.Field == "" {
		// A value's own decoder (duration, rate, probability) knows its
		// line, not its key: name the key whose scalar value it refused.
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if val.Kind == yaml.ScalarNode && val.Line == se.Line && strings.Contains(se.Why, strconv.Quote(val.Value)) {
				se.Field = k.Value
				break
			}
		}
	}
	return err
}

// ScenarioError is a validation error: file, line, field and reason.
type ScenarioError struct {
	File  string
	Line  int
	Field string
	Why   string
}

func (e *ScenarioError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Why)
	return b.String()
}

// TCPSpec tunes TCP on a host (or everywhere, at the top level).
type TCPSpec struct {
	CC      string `yaml:"cc"`
	SendBuf Size   `yaml:"send_buf"`
	RecvBuf Size   `yaml:"recv_buf"`
	MaxBuf  Size   `yaml:"max_buf"`
}

// NodeSpec is a host, router or switch.
type NodeSpec struct {
	Name    string      `yaml:"name"`
	Gateway AddrList    `yaml:"gateway"` // one per family
	Routes  []RouteSpec `yaml:"routes"`
	TCP     *TCPSpec    `yaml:"tcp"`
	lines   fieldLines
}

// RouteSpec is a static route.
type RouteSpec struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
	Dev string `yaml:"dev"`
}

// GroupSpec makes count hosts named prefix1..prefixN, each linked to a
// switch with an address from subnet.
type GroupSpec struct {
	Prefix  string   `yaml:"prefix"`
	Count   int      `yaml:"count"`
	Switch  string   `yaml:"switch"`
	Subnet  AddrList `yaml:"subnet"` // one per family
	First   int      `yaml:"first"`  // host offset in the subnet of the first member, default 10
	Gateway AddrList `yaml:"gateway"`
	Link    LinkSpec `yaml:"link"`
	lines   fieldLines
}

// LinkSpec is a link between two nodes.
type LinkSpec struct {
	Name       string     `yaml:"name"`
	A          string     `yaml:"a"`
	AAddr      AddrList   `yaml:"a_addr"`
	B          string     `yaml:"b"`
	BAddr      AddrList   `yaml:"b_addr"`
	Bandwidth  Rate       `yaml:"bandwidth"`
	Delay      Duration   `yaml:"delay"`
	Jitter     Duration   `yaml:"jitter"`
	MTU        int        `yaml:"mtu"`
	Loss       Prob       `yaml:"loss"`
	Gilbert    *GESpec    `yaml:"gilbert"`
	Reorder    Prob       `yaml:"reorder"`
	ReorderGap Duration   `yaml:"reorder_gap"`
	Duplicate  Prob       `yaml:"duplicate"`
	Corrupt    Prob       `yaml:"corrupt"`
	BlockICMP  bool       `yaml:"block_icmp"`
	Queue      *QueueSpec `yaml:"queue"`
	VXLAN      *VXLANSpec `yaml:"vxlan"`
	lines      fieldLines
}

// VXLANSpec makes a link's b side a real VXLAN port (real time, not
// simulated): local tunnel address, the remotes to flood to, the VNI.
type VXLANSpec struct {
	Local   string    `yaml:"local"`
	Remotes StringSet `yaml:"remotes"`
	VNI     *int64    `yaml:"vni"`
	lines   fieldLines
}

func (s *VXLANSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain VXLANSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}

// RealTime reports whether the scenario has a VXLAN link: it then runs
// in real time and is not deterministic.
func (sc *Scenario) RealTime() bool {
	for _, l := range sc.Links {
		if l.VXLAN != nil {
			return true
		}
	}
	return false
}

// vxlanConfig validates a VXLAN link's tunnel parameters.
func (l *LinkSpec) vxlanConfig() (VXLANConfig, error) {
	v := l.VXLAN
	var c VXLANConfig
	if l.B != "" || len(l.BAddr) > 0 {
		return c, errAt(&l.lines, "b", "a vxlan link has one node end (a); its b side is the VXLAN segment")
	}
	if v.Local == "" {
		return c, errAt(&v.lines, "local", "missing: the local tunnel address, like 127.0.0.1:4789")
	}
	a, err := netip.ParseAddrPort(v.Local)
	if err != nil || !a.Addr().Is4() {
		return c, errAt(&v.lines, "local", "%q is not an IPv4 HOST:PORT like 127.0.0.1:4789", v.Local)
	}
	c.Local = a
	for _, r := range v.Remotes {
		ra, err := netip.ParseAddrPort(r)
		if err != nil || !ra.Addr().Is4() || ra.Port() == 0 {
			return c, errAt(&v.lines, "remotes", "%q is not an IPv4 HOST:PORT like 127.0.0.1:4789", r)
		}
		c.Remotes = append(c.Remotes, ra)
	}
	if v.VNI == nil {
		return c, errAt(&v.lines, "vni", "missing: the segment's identifier (0..16777215)")
	}
	if *v.VNI < 0 || *v.VNI >= 1<<24 {
		return c, errAt(&v.lines, "vni", "%d is outside 0..16777215", *v.VNI)
	}
	c.VNI = uint32(*v.VNI)
	return c, nil
}

// GESpec is Gilbert-Elliott bursty loss.
type GESpec struct {
	P        Prob `yaml:"p"`
	R        Prob `yaml:"r"`
	LossGood Prob `yaml:"loss_good"`
	LossBad  Prob `yaml:"loss_bad"`
}

// QueueSpec is a queue discipline.
type QueueSpec struct {
	Type       string   `yaml:"type"`
	Limit      int      `yaml:"limit"`
	LimitBytes Size     `yaml:"limit_bytes"`
	Target     Duration `yaml:"target"`
	Interval   Duration `yaml:"interval"`
	MinTh      int      `yaml:"min_th"`
	MaxTh      int      `yaml:"max_th"`
	MaxP       Prob     `yaml:"max_p"`
	Quantum    int      `yaml:"quantum"`
	Flows      int      `yaml:"flows"`
}

// WorkSpec is a workload.
type WorkSpec struct {
	Name        string    `yaml:"name"`
	Type        string    `yaml:"type"`
	From        StringSet `yaml:"from"`
	To          string    `yaml:"to"`
	Family      string    `yaml:"family"` // ipv4 or ipv6: which of to's addresses (default: its first)
	Port        int       `yaml:"port"`
	Bytes       Size      `yaml:"bytes"`
	Request     Size      `yaml:"request"`
	Response    Size      `yaml:"response"`
	Size        Size      `yaml:"size"`
	Count       int       `yaml:"count"`
	Concurrency int       `yaml:"concurrency"`
	Start       Duration  `yaml:"start"`
	Interval    Duration  `yaml:"interval"`
	Duration    Duration  `yaml:"duration"`
	Rate        Rate      `yaml:"rate"`
	CC          string    `yaml:"cc"`
	MaxHops     int       `yaml:"max_hops"`
	Timeout     Duration  `yaml:"timeout"`
	Trace       *bool     `yaml:"trace"`
	lines       fieldLines
}

// EventSpec is a scheduled change.
type EventSpec struct {
	At        Duration  `yaml:"at"`
	LinkDown  string    `yaml:"link_down"`
	LinkUp    string    `yaml:"link_up"`
	Partition StringSet `yaml:"partition"`
	Heal      StringSet `yaml:"heal"`
	Link      string    `yaml:"link"`
	Bandwidth Rate      `yaml:"bandwidth"`
	Crash     string    `yaml:"crash"`
	Restart   string    `yaml:"restart"`
	lines     fieldLines
}

func knownTags(v any) func(string) bool {
	return func(k string) bool { return hasYAMLTag(v, k) }
}

// The UnmarshalYAML methods record each key's line and refuse unknown keys.

func (s *Scenario) UnmarshalYAML(n *yaml.Node) error {
	type plain Scenario
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *NodeSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain NodeSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *GroupSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain GroupSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *LinkSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain LinkSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *WorkSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain WorkSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *EventSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain EventSpec
	return strict(n, (*plain)(s), &s.lines, knownTags(plain{}))
}
func (s *QueueSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain QueueSpec
	var fl fieldLines
	return strict(n, (*plain)(s), &fl, knownTags(plain{}))
}
func (s *GESpec) UnmarshalYAML(n *yaml.Node) error {
	type plain GESpec
	var fl fieldLines
	return strict(n, (*plain)(s), &fl, knownTags(plain{}))
}
func (s *TCPSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain TCPSpec
	var fl fieldLines
	return strict(n, (*plain)(s), &fl, knownTags(plain{}))
}
func (s *RouteSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain RouteSpec
	var fl fieldLines
	return strict(n, (*plain)(s), &fl, knownTags(plain{}))
}

// Duration is a Go duration string ("10ms", "1.5s").
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &ScenarioError{Line: n.Line, Why: fmt.Sprintf("%q is not a duration (like 10ms, 1.5s)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// Rate is bits per second: "100Mbit", "1.5Gbit", "64kbit", or a number.
type Rate float64

func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return &ScenarioError{Line: n.Line, Why: err.Error()}
	}
	*r = Rate(v)
	return nil
}

// ParseRate reads a bit rate.
func ParseRate(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "ps")
	t = strings.TrimSuffix(t, "bit")
	mul := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mul, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mul, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mul, t = 1e9, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a rate (like 10Mbit, 1Gbit)", s)
	}
	return v * mul, nil
}

// Size is a byte count: "10MB", "64KiB", "1500".
type Size uint64

func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return &ScenarioError{Line: n.Line, Why: err.Error()}
	}
	*z = Size(v)
	return nil
}

// ParseSize reads a byte count (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suf string
		mul float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suf) {
			mul, t = u.mul, strings.TrimSpace(strings.TrimSuffix(t, u.suf))
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mul > 1<<50 {
		return 0, fmt.Errorf("%q is not a size (like 1500, 64KiB, 10MB)", s)
	}
	return uint64(v * mul), nil
}

// Prob is a probability: 0.01 or "1%".
type Prob float64

func (p *Prob) UnmarshalYAML(n *yaml.Node) error {
	t := strings.TrimSpace(n.Value)
	div := 1.0
	if strings.HasSuffix(t, "%") {
		t, div = strings.TrimSuffix(t, "%"), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v/div < 0 || v/div > 1 {
		return &ScenarioError{Line: n.Line, Why: fmt.Sprintf("%q is not a probability (0..1 or 0%%..100%%)", n.Value)}
	}
	*p = Prob(v / div)
	return nil
}

// StringSet is one name or a list of names.
type StringSet []string

func (s *StringSet) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = []string{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return &ScenarioError{Line: n.Line, Why: "expected a list of names"}
		}
		*s = l
		return nil
	}
	return &ScenarioError{Line: n.Line, Why: "expected a name or a list of names"}
}

// AddrList is one address (or prefix) or a list of them: a dual-stack
// interface, host or group has one of each family.
type AddrList []string

func (s *AddrList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = []string{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err == nil {
			*s = l
			return nil
		}
	}
	return &ScenarioError{Line: n.Line, Why: "expected an address or a list of addresses (one per family)"}
}

// family names an address's family for errors.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseAddrs reads a list of addresses with prefix length, at most one
// per family.
func parseAddrs(fl *fieldLines, field string, l AddrList, what string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range l {
		p, err := netip.ParsePrefix(a)
		if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return nil, errAt(fl, field, "%q is not an IPv4 or IPv6 %s with prefix length (like 10.0.0.1/24, fd00::1/64)", a, what)
		}
		for _, q := range out {
			if q.Addr().Is4() == p.Addr().Is4() {
				return nil, errAt(fl, field, "two %s %ses (%v, %v): give one per family", family(p.Addr()), what, q, p)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(file string) (*Scenario, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	sc, err := ParseScenario(b)
	if err != nil {
		var se *ScenarioError
		if errors.As(err, &se) {
			se.File = file
			return nil, se
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	sc.File = file
	return sc, nil
}

// ParseScenario parses YAML text; Build validates what refers to what.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		var se *ScenarioError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, err
	}
	if sc.Name == "" {
		return nil, &ScenarioError{Line: sc.lines.line, Field: "name", Why: "a scenario needs a name"}
	}
	return &sc, nil
}

func errAt(fl *fieldLines, field, format string, a ...any) error {
	return &ScenarioError{Line: fl.of(field), Field: field, Why: fmt.Sprintf(format, a...)}
}

func (t TCPSpec) apply(c *tcp.Config) {
	if t.CC != "" {
		c.CongestionControl = t.CC
	}
	if t.SendBuf > 0 {
		c.SendBuf = int(t.SendBuf)
	}
	if t.RecvBuf > 0 {
		c.RecvBuf = int(t.RecvBuf)
	}
	if t.MaxBuf > 0 {
		c.MaxRecvBuf, c.MaxSendBuf = int(t.MaxBuf), int(t.MaxBuf)
	}
}

func (l *LinkSpec) config() (LinkConfig, error) {
	c := LinkConfig{Bandwidth: float64(l.Bandwidth), Delay: time.Duration(l.Delay), Jitter: time.Duration(l.Jitter),
		MTU: l.MTU, Loss: float64(l.Loss), Reorder: float64(l.Reorder), ReorderGap: time.Duration(l.ReorderGap),
		Duplicate: float64(l.Duplicate), Corrupt: float64(l.Corrupt), BlockICMP: l.BlockICMP}
	if l.MTU != 0 && (l.MTU < 576 || l.MTU > 65535) {
		return c, errAt(&l.lines, "mtu", "%d is outside 576..65535", l.MTU)
	}
	if g := l.Gilbert; g != nil {
		c.GE = &GilbertElliott{P: float64(g.P), R: float64(g.R), LossGood: float64(g.LossGood), LossBad: float64(g.LossBad)}
		if g.LossBad == 0 {
			c.GE.LossBad = 1
		}
	}
	if q := l.Queue; q != nil {
		c.Queue = QueueConfig{Type: q.Type, Limit: q.Limit, LimitBytes: int(q.LimitBytes), Target: time.Duration(q.Target),
			Interval: time.Duration(q.Interval), MinTh: q.MinTh, MaxTh: q.MaxTh, MaxP: float64(q.MaxP), Quantum: q.Quantum, Flows: q.Flows}
		if q.Limit < 0 {
			return c, errAt(&l.lines, "queue", "limit must not be negative")
		}
	}
	return c, nil
}

// Build makes the network a scenario describes, seeded with seed.
func (sc *Scenario) Build(seed uint64) (*Net, error) {
	n, err := sc.build(seed)
	if err != nil {
		var se *ScenarioError
		if errors.As(err, &se) && se.File == "" {
			se.File = sc.File
		}
	}
	return n, err
}

func (sc *Scenario) build(seed uint64) (*Net, error) {
	n := NewNet(seed)
	n.S.DAD = sc.DAD
	n.SampleEvery = time.Duration(sc.Sample)
	var base tcp.Config
	sc.TCP.apply(&base)
	gw := map[*Host]*fieldLines{}
	gwAddr := map[*Host]AddrList{}
	routes := map[*Host]*NodeSpec{}
	addNode := func(ns *NodeSpec, router bool) error {
		if ns.Name == "" || strings.ContainsAny(ns.Name, ":/ *") {
			return errAt(&ns.lines, "name", "%q is not a valid node name", ns.Name)
		}
		tc := base
		if ns.TCP != nil {
			ns.TCP.apply(&tc)
		}
		h, err := n.AddHost(ns.Name, router, tc)
		if err != nil {
			return errAt(&ns.lines, "name", "%v", err)
		}
		if len(ns.Gateway) > 0 {
			gw[h], gwAddr[h] = &ns.lines, ns.Gateway
		}
		routes[h] = ns
		return nil
	}
	for i := range sc.Hosts {
		if err := addNode(&sc.Hosts[i], false); err != nil {
			return nil, err
		}
	}
	for i := range sc.Routers {
		if err := addNode(&sc.Routers[i], true); err != nil {
			return nil, err
		}
	}
	for i := range sc.Switches {
		s := &sc.Switches[i]
		if _, err := n.AddSwitch(s.Name); err != nil {
			return nil, errAt(&s.lines, "name", "%v", err)
		}
	}
	end := func(fl *fieldLines, field, ref, addrField string, addr AddrList) (End, error) {
		node, ifn, _ := strings.Cut(ref, ":")
		var e End
		if h := n.hostByName[node]; h != nil {
			e.Host, e.Iface = h, ifn
			if len(addr) == 0 {
				return e, errAt(fl, field, "host end %q needs %s (an address like 10.0.0.1/24 or fd00::1/64, or a list of one of each)", ref, addrField)
			}
			ps, err := parseAddrs(fl, addrField, addr, "address")
			if err != nil {
				return e, err
			}
			e.Addr, e.More = ps[0], ps[1:]
			return e, nil
		}
		if sw := n.swByName[node]; sw != nil {
			if len(addr) > 0 {
				return e, errAt(fl, addrField, "a switch port has no address")
			}
			e.Switch = sw
			return e, nil
		}
		return e, errAt(fl, field, "unknown node %q", node)
	}
	for i := range sc.Links {
		l := &sc.Links[i]
		if l.Name == "" && l.VXLAN != nil {
			l.Name = strings.ReplaceAll(l.A, ":", ".") + "-vxlan"
		}
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s-%s", strings.ReplaceAll(l.A, ":", "."), strings.ReplaceAll(l.B, ":", "."))
		}
		a, err := end(&l.lines, "a", l.A, "a_addr", l.AAddr)
		if err != nil {
			return nil, err
		}
		if l.VXLAN != nil {
			vc, err := l.vxlanConfig()
			if err != nil {
				return nil, err
			}
			cfg, err := l.config()
			if err != nil {
				return nil, err
			}
			if _, err := n.ConnectVXLAN(l.Name, cfg, a, vc); err != nil {
				return nil, errAt(&l.lines, "name", "%v", err)
			}
			continue
		}
		b, err := end(&l.lines, "b", l.B, "b_addr", l.BAddr)
		if err != nil {
			return nil, err
		}
		cfg, err := l.config()
		if err != nil {
			return nil, err
		}
		if _, err := n.Connect(l.Name, cfg, a, b); err != nil {
			return nil, errAt(&l.lines, "name", "%v", err)
		}
	}
	for i := range sc.Groups {
		g := &sc.Groups[i]
		if g.Count <= 0 || g.Count > 100000 {
			return nil, errAt(&g.lines, "count", "count must be 1..100000")
		}
		sw := n.swByName[g.Switch]
		if sw == nil {
			return nil, errAt(&g.lines, "switch", "unknown switch %q", g.Switch)
		}
		if len(g.Subnet) == 0 {
			return nil, errAt(&g.lines, "subnet", "missing: a prefix like 10.0.0.0/24 or fd00::/64, or a list of one of each")
		}
		subs, err := parseAddrs(&g.lines, "subnet", g.Subnet, "prefix")
		if err != nil {
			return nil, err
		}
		first := g.First
		if first == 0 {
			first = 10
		}
		for _, sub := range subs {
			if hb := sub.Addr().BitLen() - sub.Bits(); hb < 40 && uint64(first+g.Count) >= 1<<hb {
				return nil, errAt(&g.lines, "count", "%d hosts from offset %d do not fit in %v", g.Count, first, sub)
			}
		}
		cfg, err := g.Link.config()
		if err != nil {
			return nil, err
		}
		for k := 1; k <= g.Count; k++ {
			name := fmt.Sprintf("%s%d", g.Prefix, k)
			h, err := n.AddHost(name, false, base)
			if err != nil {
				return nil, errAt(&g.lines, "prefix", "%v", err)
			}
			e := End{Host: h}
			for i, sub := range subs {
				addr := netip.PrefixFrom(addrPlus(sub.Masked().Addr(), uint64(first+k-1)), sub.Bits())
				if i == 0 {
					e.Addr = addr
				} else {
					e.More = append(e.More, addr)
				}
			}
			if _, err := n.Connect(name, cfg, e, End{Switch: sw}); err != nil {
				return nil, errAt(&g.lines, "prefix", "%v", err)
			}
			if len(g.Gateway) > 0 {
				gw[h], gwAddr[h] = &g.lines, g.Gateway
			}
		}
	}
	// Routes after all interfaces exist.
	for _, h := range n.Hosts {
		if ns := routes[h]; ns != nil {
			for _, r := range ns.Routes {
				to, err := netip.ParsePrefix(r.To)
				if err != nil {
					return nil, errAt(&ns.lines, "routes", "%q is not a prefix", r.To)
				}
				via, err := netip.ParseAddr(r.Via)
				if err != nil || via.Is4In6() {
					return nil, errAt(&ns.lines, "routes", "%q is not an address", r.Via)
				}
				if to.Addr().Is4() != via.Is4() {
					return nil, errAt(&ns.lines, "routes", "route to %v via %v: the gateway must be of the prefix's family", to, via)
				}
				if err := h.AddRoute(RouteConfig{To: to, Via: via, Dev: r.Dev}); err != nil {
					return nil, errAt(&ns.lines, "routes", "%v", err)
				}
			}
		}
		if fl := gw[h]; fl != nil {
			var seen netip.Addr
			for _, g := range gwAddr[h] {
				a, err := netip.ParseAddr(g)
				if err != nil || a.Is4In6() {
					return nil, errAt(fl, "gateway", "%q is not an address", g)
				}
				if seen.IsValid() && seen.Is4() == a.Is4() {
					return nil, errAt(fl, "gateway", "two %s gateways (%v, %v): give one per family", family(a), seen, a)
				}
				seen = a
				def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				if a.Is6() {
					def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				}
				if err := h.AddRoute(RouteConfig{To: def, Via: a}); err != nil {
					return nil, errAt(fl, "gateway", "%v", err)
				}
			}
		}
	}
	for i := range sc.Workloads {
		w, err := sc.workload(n, &sc.Workloads[i], i)
		if err != nil {
			return nil, err
		}
		if err := n.Start(w); err != nil {
			return nil, errAt(&sc.Workloads[i].lines, "type", "%v", err)
		}
	}
	for i := range sc.Events {
		if err := sc.event(n, &sc.Events[i]); err != nil {
			return nil, err
		}
	}
	if len(sc.Capture) == 1 && sc.Capture[0] == "none" {
		n.capture = nil
	} else {
		for _, c := range sc.Capture {
			if n.linkByName[c] == nil {
				return nil, errAt(&sc.lines, "capture", "unknown link %q", c)
			}
		}
		n.capture = append([]string{}, sc.Capture...)
		n.captureAll = len(sc.Capture) == 0
	}
	return n, nil
}

// hostsMatching resolves names and shell patterns ("w*") to hosts.
func (n *Net) hostsMatching(names []string) ([]*Host, error) {
	var out []*Host
	for _, nm := range names {
		if h := n.hostByName[nm]; h != nil {
			out = append(out, h)
			continue
		}
		found := false
		for _, h := range n.Hosts {
			if ok, err := path.Match(nm, h.Name); err == nil && ok {
				out = append(out, h)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no host matches %q", nm)
		}
	}
	return out, nil
}

var workTypes = map[string]bool{"bulk": true, "rr": true, "http": true, "churn": true, "ping": true, "udp": true, "traceroute": true}

func (sc *Scenario) workload(n *Net, ws *WorkSpec, i int) (*Workload, error) {
	fl := &ws.lines
	if !workTypes[ws.Type] {
		return nil, errAt(fl, "type", "unknown workload type %q (bulk, rr, http, churn, ping, udp, traceroute)", ws.Type)
	}
	if ws.Name == "" {
		ws.Name = fmt.Sprintf("%s%d", ws.Type, i)
	}
	from, err := n.hostsMatching(ws.From)
	if err != nil || len(from) == 0 {
		return nil, errAt(fl, "from", "%v", err)
	}
	to := n.hostByName[ws.To]
	var dst netip.Addr
	if a, err := netip.ParseAddr(ws.To); err == nil && to == nil {
		// An address: the host that has it.
		for _, h := range n.Hosts {
			if h.HasAddr(a) {
				to, dst = h, a
				break
			}
		}
		if to == nil {
			return nil, errAt(fl, "to", "no host has address %v", a)
		}
	}
	if to == nil {
		return nil, errAt(fl, "to", "unknown host %q", ws.To)
	}
	switch ws.Family {
	case "":
		if !dst.IsValid() {
			dst = to.Addr()
		}
	case "ipv4", "ipv6", "4", "6":
		fam := 4
		if strings.HasSuffix(ws.Family, "6") {
			fam = 6
		}
		if dst.IsValid() && dst.Is6() != (fam == 6) {
			return nil, errAt(fl, "family", "%s, but to is the %s address %v", ws.Family, family(dst), dst)
		}
		if !dst.IsValid() {
			dst = to.AddrOf(fam)
		}
		if !dst.IsValid() {
			return nil, errAt(fl, "to", "host %q has no IPv%d address", ws.To, fam)
		}
	default:
		return nil, errAt(fl, "family", "%q is not ipv4 or ipv6", ws.Family)
	}
	if !dst.IsValid() {
		return nil, errAt(fl, "to", "host %q has no address", ws.To)
	}
	fam := 4
	if dst.Is6() {
		fam = 6
	}
	for _, h := range from {
		if !h.AddrOf(fam).IsValid() {
			return nil, errAt(fl, "from", "host %q has no %s address to reach %v from", h.Name, family(dst), dst)
		}
	}
	if ws.Port < 0 || ws.Port > 65535 {
		return nil, errAt(fl, "port", "%d is not a port", ws.Port)
	}
	port := uint16(ws.Port)
	if port == 0 {
		port = uint16(5000 + i)
	}
	w := &Workload{Name: ws.Name, Type: ws.Type, From: from, To: to, Dst: dst, Port: port, Count: ws.Count,
		Concurrency: ws.Concurrency, Start: time.Duration(ws.Start), Interval: time.Duration(ws.Interval),
		Duration: time.Duration(ws.Duration), Rate: float64(ws.Rate), CC: ws.CC, MaxHops: ws.MaxHops, Trace: true, Timeout: time.Duration(ws.Timeout)}
	if ws.Trace != nil {
		w.Trace = *ws.Trace
	}
	switch ws.Type {
	case "bulk":
		w.Bytes = uint64(ws.Bytes)
		if w.Bytes == 0 {
			return nil, errAt(fl, "bytes", "a bulk transfer needs bytes > 0")
		}
	case "rr", "churn":
		w.Bytes, w.Response = uint64(max(ws.Request, 8)), uint64(ws.Response)
	case "http":
		w.Response = uint64(ws.Response)
	case "udp":
		w.Bytes = uint64(ws.Size)
		if w.Bytes == 0 {
			w.Bytes = 1200
		}
		if w.Bytes < 16 || w.Bytes > 65000 {
			return nil, errAt(fl, "size", "datagram size must be 16..65000")
		}
	case "ping":
		w.Bytes = uint64(ws.Size)
		if w.Bytes == 0 {
			w.Bytes = 56
		}
	}
	if ws.CC != "" && ws.CC != "cubic" && ws.CC != "reno" && ws.CC != "newreno" {
		return nil, errAt(fl, "cc", "unknown congestion control %q (cubic, reno)", ws.CC)
	}
	return w, nil
}

func (sc *Scenario) event(n *Net, es *EventSpec) error {
	fl := &es.lines
	at := time.Duration(es.At)
	links := func(field string, names []string) ([]*Link, error) {
		var out []*Link
		for _, nm := range names {
			l := n.linkByName[nm]
			if l == nil {
				return nil, errAt(fl, field, "unknown link %q", nm)
			}
			out = append(out, l)
		}
		return out, nil
	}
	host := func(field, nm string) (*Host, error) {
		h := n.hostByName[nm]
		if h == nil {
			return nil, errAt(fl, field, "unknown host %q", nm)
		}
		return h, nil
	}
	acts := 0
	if es.LinkDown != "" {
		ls, err := links("link_down", []string{es.LinkDown})
		if err != nil {
			return err
		}
		n.S.At(at, func() { ls[0].SetUp(false) })
		acts++
	}
	if es.LinkUp != "" {
		ls, err := links("link_up", []string{es.LinkUp})
		if err != nil {
			return err
		}
		n.S.At(at, func() { ls[0].SetUp(true) })
		acts++
	}
	if len(es.Partition) > 0 {
		ls, err := links("partition", es.Partition)
		if err != nil {
			return err
		}
		n.S.At(at, func() {
			for _, l := range ls {
				l.SetUp(false)
			}
		})
		acts++
	}
	if len(es.Heal) > 0 {
		ls, err := links("heal", es.Heal)
		if err != nil {
			return err
		}
		n.S.At(at, func() {
			for _, l := range ls {
				l.SetUp(true)
			}
		})
		acts++
	}
	if es.Link != "" || es.Bandwidth > 0 {
		if es.Link == "" || es.Bandwidth <= 0 {
			return errAt(fl, "bandwidth", "a bandwidth change needs link and bandwidth")
		}
		ls, err := links("link", []string{es.Link})
		if err != nil {
			return err
		}
		bw := float64(es.Bandwidth)
		n.S.At(at, func() { ls[0].SetBandwidth(bw) })
		acts++
	}
	if es.Crash != "" {
		h, err := host("crash", es.Crash)
		if err != nil {
			return err
		}
		n.S.At(at, h.Crash)
		acts++
	}
	if es.Restart != "" {
		h, err := host("restart", es.Restart)
		if err != nil {
			return err
		}
		n.S.At(at, func() { h.Restart() })
		acts++
	}
	if acts != 1 {
		return errAt(fl, "at", "an event needs exactly one action (link_down, link_up, partition, heal, link+bandwidth, crash, restart), found %d", acts)
	}
	return nil
}

// addrPlus is a plus k, carrying across bytes (k small: host offsets).
func addrPlus(a netip.Addr, k uint64) netip.Addr {
	b := a.AsSlice()
	for i := len(b) - 1; i >= 0 && k > 0; i-- {
		v := uint64(b[i]) + k&0xff
		b[i] = byte(v)
		k = k>>8 + v>>8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}
