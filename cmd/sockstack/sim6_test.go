package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The dual-stack scenario through the command line: its bottleneck
// capture lists an IPv4 and an IPv6 transfer, and `plot` draws the IPv6
// one named by its bracketed addresses.
func TestSimRunDualStackAndPlot(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "", "sim", "run", "../../scenarios/dumbbell-dualstack.yaml", "--until", "3s", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "plots", "tsg-flow1.svg")); err != nil {
		t.Error(err)
	}
	list, err := runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--list")
	if err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	var v4, v6 []string
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) < 3:
		case strings.HasPrefix(f[2], "10.2."):
			v4 = f
		case strings.HasPrefix(f[2], "[fd00:2:"):
			v6 = f
		}
	}
	if v4 == nil || v6 == nil {
		t.Fatalf("list lacks an IPv4 or an IPv6 connection:\n%s", list)
	}
	pdir := filepath.Join(dir, "p")
	if out, err := runCLI(t, "", "plot", filepath.Join(dir, "bottleneck.pcap"), "--conn", v6[0]+"-"+v6[2], "--format", "svg", "--out", pdir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(pdir, "tsg-*.svg")); len(m) != 1 {
		t.Errorf("plot of the IPv6 connection wrote %v", m)
	}
}

// `sim run` of the IPv6 traceroute records the routers' IPv6 addresses
// as hops in metrics.json.
func TestSimRunTraceroute6(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCLI(t, "", "sim", "run", "../../scenarios/traceroute6.yaml", "--out", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Flows []struct {
			Workload string   `json:"workload"`
			Hops     []string `json:"hops"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Flows) == 0 || strings.Join(m.Flows[0].Hops, " ") != "fd00:1::1 fd00:2::2 fd00:3::2 fd00:4::2" {
		t.Errorf("flows %+v", m.Flows)
	}
}
