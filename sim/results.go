package sim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Metrics are a run's results. Everything here is a function of the
// scenario and seed; wall-clock figures are in Timing.
type Metrics struct {
	Scenario  string          `json:"scenario"`
	Seed      uint64          `json:"seed"`
	SimTimeS  float64         `json:"sim_time_s"`
	Events    uint64          `json:"events"`
	Completed int             `json:"flows_completed"`
	Failed    int             `json:"flows_failed"`
	Flows     []*Flow         `json:"flows"`
	Links     []LinkMetrics   `json:"links"`
	Switches  []SwitchMetrics `json:"switches,omitempty"`
	// VXLAN ports (real time: these and everything else vary run to run).
	VXLAN []VXLANMetrics `json:"vxlan,omitempty"`
}

// LinkMetrics are one link's counters per direction.
type LinkMetrics struct {
	Name string       `json:"name"`
	Up   bool         `json:"up"`
	Dirs []DirMetrics `json:"directions"`
}

// DirMetrics is one direction of a link.
type DirMetrics struct {
	From, To      string     `json:"-"`
	Path          string     `json:"path"`
	Stats         DirStats   `json:"counters"`
	Queue         QdiscStats `json:"queue"`
	MeanSojournMs float64    `json:"mean_queue_delay_ms"`
	MaxSojournMs  float64    `json:"max_queue_delay_ms"`
	Utilization   float64    `json:"utilization"`
	GoodputBps    float64    `json:"throughput_bps"`
}

// SwitchMetrics are a switch's counters.
type SwitchMetrics struct {
	Name      string `json:"name"`
	Forwarded uint64 `json:"forwarded"`
	Flooded   uint64 `json:"flooded"`
	Learned   uint64 `json:"learned"`
	TableFull uint64 `json:"table_full"`
	Table     int    `json:"table_size"`
}

// Timing is the wall-clock side of a run (varies run to run).
type Timing struct {
	WallS        float64 `json:"wall_s"`
	SimTimeS     float64 `json:"sim_time_s"`
	Ratio        float64 `json:"sim_to_wall_ratio"`
	Events       uint64  `json:"events"`
	EventsPerSec float64 `json:"events_per_sec"`
}

// Metrics collects the results.
func (n *Net) Metrics(name string) *Metrics {
	now := n.S.Now()
	m := &Metrics{Scenario: name, Seed: n.S.Seed(), SimTimeS: now.Seconds(), Events: n.S.Events, Flows: n.Flows}
	for _, f := range n.Flows {
		if f.Completed {
			m.Completed++
		} else {
			m.Failed++
		}
	}
	for _, l := range n.Links {
		lm := LinkMetrics{Name: l.Name, Up: l.up}
		for i, d := range l.dirs {
			dm := DirMetrics{From: l.Ends[i].Name, To: l.Ends[1-i].Name, Stats: d.St, Queue: *d.q.Stats()}
			dm.Path = dm.From + " -> " + dm.To
			if d.St.SojournCount > 0 {
				dm.MeanSojournMs = ms(d.St.SojournSum / time.Duration(d.St.SojournCount))
			}
			dm.MaxSojournMs = ms(d.St.SojournMax)
			if now > 0 {
				dm.Utilization = float64(d.St.BusyTime) / float64(now)
				dm.GoodputBps = float64(d.St.RxBytes) * 8 / now.Seconds()
			}
			lm.Dirs = append(lm.Dirs, dm)
		}
		m.Links = append(m.Links, lm)
	}
	for _, sw := range n.Switches {
		m.Switches = append(m.Switches, SwitchMetrics{sw.Name, sw.Forwarded, sw.Flooded, sw.Learned, sw.TableFull, len(sw.table)})
	}
	m.VXLAN = n.vxlanStats
	return m
}

// Timing reports the speed of the last Run.
func (n *Net) Timing() Timing {
	t := Timing{WallS: n.Wall.Seconds(), SimTimeS: n.S.Now().Seconds(), Events: n.S.Events}
	if t.WallS > 0 {
		t.Ratio = t.SimTimeS / t.WallS
		t.EventsPerSec = float64(t.Events) / t.WallS
	}
	return t
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// RunReport builds the scenario with seed, runs it for d of virtual time
// capturing into dir, and writes its results there: the pcaps,
// metrics.json, timing.json, report.html and its charts, as
// `sockstack sim run --out dir` does.
func (sc *Scenario) RunReport(seed uint64, d time.Duration, dir string) (*Net, error) {
	n, err := sc.Build(seed)
	if err != nil {
		return nil, err
	}
	if err := n.CaptureScenario(dir); err != nil {
		return nil, err
	}
	if err := n.Run(d); err != nil {
		return nil, err
	}
	return n, n.WriteResults(dir, sc)
}

// WriteResults writes metrics.json, timing.json and report.html into dir
// (the pcaps are already there when the run captured).
func (n *Net) WriteResults(dir string, sc *Scenario) error {
	name := "network"
	if sc != nil {
		name = sc.Name
	}
	m := n.Metrics(name)
	if err := writeJSON(filepath.Join(dir, "metrics.json"), m); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "timing.json"), n.Timing()); err != nil {
		return err
	}
	return n.writeReport(filepath.Join(dir, "report.html"), dir, sc, m)
}
