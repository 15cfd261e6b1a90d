package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// runScenario runs file with seed for at most until of virtual time and
// returns the sha256 of every pcap and of metrics.json.
func runScenario(t *testing.T, file string, seed uint64, until time.Duration) (map[string]string, *Net) {
	t.Helper()
	sc, err := LoadScenario(file)
	if err != nil {
		t.Fatal(err)
	}
	if until > 0 {
		// A prefix run is the quick check: host groups shrink to 50
		// members (1,000 stacks under the race detector take gigabytes);
		// TestFullScenariosDeterministic runs the scenarios whole.
		for i := range sc.Groups {
			sc.Groups[i].Count = min(sc.Groups[i].Count, 50)
		}
	}
	n, err := sc.Build(seed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := n.CaptureScenario(dir); err != nil {
		t.Fatal(err)
	}
	d := time.Duration(sc.Duration)
	if until > 0 && until < d {
		d = until
	}
	n.S.MaxWall = 5 * time.Minute
	if err := n.Run(d); err != nil {
		t.Fatal(err)
	}
	if err := n.WriteResults(dir, sc); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcap"))
	files = append(files, filepath.Join(dir, "metrics.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		sums[filepath.Base(f)] = hex.EncodeToString(h[:])
	}
	return sums, n
}

func scenarioFiles(t *testing.T) []string {
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	sort.Strings(files)
	return files
}

// Every shipped scenario gives the same pcaps and metrics from the same
// seed, and different pcaps from another seed. The regular run checks a
// prefix of each scenario's virtual time (the race detector makes whole
// runs ten times slower); TestFullScenariosDeterministic, run by
// scripts/test.sh with SIM_FULL=1, checks them whole.
func TestScenariosDeterministic(t *testing.T) {
	checkDeterminism(t, func(name string) time.Duration {
		return 300 * time.Millisecond
	})
}

func TestFullScenariosDeterministic(t *testing.T) {
	if os.Getenv("SIM_FULL") == "" {
		t.Skip("set SIM_FULL=1 (scripts/test.sh does) to run every scenario whole, three times")
	}
	checkDeterminism(t, func(string) time.Duration { return 0 })
}

func checkDeterminism(t *testing.T, until func(name string) time.Duration) {
	for _, file := range scenarioFiles(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		if sc, err := LoadScenario(file); err == nil && sc.RealTime() {
			// A VXLAN link is a real network port: real time, not deterministic.
			t.Logf("%s has a VXLAN link: left out", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			u := until(name)
			a, na := runScenario(t, file, 7, u)
			b, _ := runScenario(t, file, 7, u)
			if len(a) < 2 {
				t.Fatalf("no captures: %v", a)
			}
			for k, v := range a {
				if b[k] != v {
					t.Errorf("%s differs between two runs with seed 7", k)
				}
			}
			if na.S.Events == 0 {
				t.Fatal("no events ran")
			}
			c, _ := runScenario(t, file, 8, u)
			same := true
			for k, v := range a {
				if strings.HasSuffix(k, ".pcap") && c[k] != v {
					same = false
				}
			}
			if same {
				t.Error("seed 8 gave the same pcaps as seed 7")
			}
		})
	}
}

func TestScenariosValidate(t *testing.T) {
	for _, file := range scenarioFiles(t) {
		sc, err := LoadScenario(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Build(sc.Seed); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"name: x\nhosts:\n  - {name: a}\n  - {name: b, colour: red}\n", "4: colour: unknown field"},
		{"name: x\nhosts:\n  - {name: a}\nlinks:\n  - name: l\n    a: a\n    a_addr: 10.0.0.1/24\n    b: zz\n", "8: b: unknown node \"zz\""},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24,\n     bandwidth: fast}\n", "5: bandwidth: "},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24, loss: 150%}\n", "4: loss: \"150%\" is not a probability"},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - name: l\n    a: a\n    b: b\n    delay: fast\n", "7: delay: \"fast\" is not a duration"},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\nworkloads:\n  - {type: bulk, from: a, to: c, bytes: 1MB}\n", "6: to: unknown host \"c\""},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24}\nworkloads:\n  - {type: teleport, from: a, to: b}\n", "type: unknown workload type"},
		{"name: x\nhosts: [{name: a}]\nevents:\n  - {at: 1s}\n", "needs exactly one action"},
		{"name: x\nhosts: [{name: a}, {name: b}]\nlinks:\n  - {a: a, a_addr: 10.0.0.1/24, b: b, b_addr: 10.0.0.2/24, queue: {type: sfq}}\n", "unknown queue type"},
		{"hosts: [{name: a}]\n", "name: a scenario needs a name"},
	}
	for _, c := range cases {
		sc, err := ParseScenario([]byte(c.yaml))
		if err == nil {
			_, err = sc.Build(1)
		}
		if err == nil {
			t.Errorf("no error for:\n%s", c.yaml)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q does not contain %q", err, c.want)
		}
		var se *ScenarioError
		if !errors.As(err, &se) && !strings.Contains(c.want, "queue") {
			t.Errorf("error %q is not a ScenarioError", err)
		}
	}
}

// Traceroute through three routers names each router, then the target.
func TestTraceroute(t *testing.T) {
	_, n := runScenario(t, "../scenarios/traceroute.yaml", 1, 0)
	f := n.Flows[0]
	want := []string{"10.0.1.1", "10.0.2.2", "10.0.3.2", "10.0.4.2"}
	if !f.Completed || strings.Join(f.Hops, " ") != strings.Join(want, " ") {
		t.Fatalf("hops %v (completed %v, %s), want %v", f.Hops, f.Completed, f.Err, want)
	}
	for _, h := range []string{"r1", "r2", "r3"} {
		if n.Host(h).Stack.Stats().IP.TTLExceeded.Load() != 1 {
			t.Errorf("%s: TTLExceeded %d, want 1", h, n.Host(h).Stack.Stats().IP.TTLExceeded.Load())
		}
	}
}

// The full partition-heal scenario: the transfer finishes intact after
// the heal; the churn accounts for every connection across the crash.
func TestFullPartitionHeal(t *testing.T) {
	if os.Getenv("SIM_FULL") == "" {
		t.Skip("set SIM_FULL=1 (scripts/test.sh does) to run the whole scenario")
	}
	_, n := runScenario(t, "../scenarios/partition-heal.yaml", 1, 0)
	m := n.Metrics("partition-heal")
	bulk, churn := m.Flows[0], m.Flows[1]
	if !bulk.Completed || !bulk.HashOK || bulk.End < 8*time.Second {
		t.Errorf("bulk: completed %v hash %v end %v", bulk.Completed, bulk.HashOK, bulk.End)
	}
	// The crash at 5 s must show in the churn: a request in flight fails,
	// or, when the crash falls between two requests (which one depends
	// on how fast each goes), the next connection's SYN goes unanswered
	// until the restart at 6 s and is sent again.
	synAgain := n.Host("a").Stack.TCP.Stats().SynRetransmits
	if !churn.Completed || churn.Requests+churn.FailedConns != 600 || churn.FailedConns == 0 && synAgain == 0 {
		t.Errorf("churn: completed %v requests %d failed %d; SYNs sent again %d", churn.Completed, churn.Requests, churn.FailedConns, synAgain)
	}
	if b := n.Host("b"); !b.Alive() || b.Stack.TCP.Stats().PassiveOpens == 0 {
		t.Error("the restarted server accepted nothing")
	}
	b, _ := json.Marshal(m)
	if !json.Valid(b) {
		t.Error("metrics are not JSON")
	}
}

// The report's charts are well-formed SVG (a browser draws nothing of a
// malformed one) with a PNG next to each, and the report names every flow.
func TestReportCharts(t *testing.T) {
	sc, err := LoadScenario("../scenarios/dumbbell-droptail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := sc.RunReport(1, 3*time.Second, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	svgs := 0
	for rest := page; ; {
		i := strings.Index(rest, `<img src="plots/`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`<img src="`):]
		name := rest[:strings.IndexByte(rest, '"')]
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the report shows %s: %v", name, err)
		}
		checkSVG(t, svg)
		png, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(name, ".svg")+".png"))
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, png)
		svgs++
	}
	// Time-sequence graphs (the run captured), sender state, throughput,
	// RTT and queue charts.
	if svgs < 5 {
		t.Errorf("%d charts in the report, want at least 5", svgs)
	}
	for _, want := range []string{"Time-sequence graphs", "Sender state", "Queues", "bulk1", "bulk2", "bottleneck"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
