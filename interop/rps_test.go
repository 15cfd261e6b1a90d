package interop

import (
	"flag"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// A veth queues a frame on the backlog of the CPU that sent it, so a
// flow sent from two CPUs (the kernel's sender runs both in the
// application's write and in the ACK processing inside the peer's
// send) is reordered at the receiving end, and the sender's spurious
// retransmissions shrink its window (BENCHMARKS.md, issue 10). RPS on
// the receiving end steers each flow to one CPU by its hash, as a real
// NIC's RSS does. The throughput comparisons set it on every veth end
// of both paths (sockstack's and the kernel → kernel reference) or on
// none, so the ratio stays like for like. Off by default: with it
// neither path reorders, but the kernel → kernel reference loses 17–38%
// on this 2-core machine, and a target met by slowing the reference
// would not be met (BENCHMARKS.md, "RPS on every veth end");
// -interop.veth-rps=true measures with it.
var vethRPS = flag.Bool("interop.veth-rps", false,
	"steer each flow to one CPU (RPS on all CPUs) on the veth ends of the throughput comparisons")

// rpsAllCPUs is the rps_cpus mask naming every CPU this process may
// run on.
func rpsAllCPUs() string { return rpsMask(runtime.NumCPU()) }

// rpsMask names CPUs 0..n-1 in the kernel's cpumask format (hex,
// 32-bit groups separated by commas, most significant first).
func rpsMask(n int) string {
	var groups []string
	for lo := 0; lo < n; lo += 32 {
		bits := min(n-lo, 32)
		groups = append([]string{fmt.Sprintf("%08x", uint64(1)<<bits-1)}, groups...)
	}
	return strings.Join(groups, ",")
}

// setRPS turns on RPS over all CPUs for dev's receive queue in
// namespace ns (the device's sysfs is only visible from inside it).
func setRPS(t *testing.T, ns, dev string) {
	t.Helper()
	path := "/sys/class/net/" + dev + "/queues/rx-0/rps_cpus"
	mask := rpsAllCPUs()
	if out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "echo "+mask+" > "+path).CombinedOutput(); err != nil {
		t.Fatalf("RPS on %s in %s: %v: %s", dev, ns, err, out)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", path).Output()
	if err != nil {
		t.Fatalf("reading %s in %s: %v", path, ns, err)
	}
	t.Logf("RPS on %s (%s): rps_cpus %s", dev, ns, strings.TrimSpace(string(out)))
}

// netCounters are a namespace's TCP counters from /proc/net/snmp and
// /proc/net/netstat, keyed "Tcp:RetransSegs", "TcpExt:TCPDSACKRecv".
type netCounters map[string]uint64

func readNetCounters(t *testing.T, ns string) netCounters {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp", "/proc/net/netstat").Output()
	if err != nil {
		t.Fatalf("counters of %s: %v", ns, err)
	}
	c := netCounters{}
	lines := strings.Split(string(out), "\n")
	// Each table is a line of names followed by a line of values.
	for i := 0; i+1 < len(lines); i++ {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) < 2 || len(names) != len(vals) || names[0] != vals[0] {
			continue
		}
		if _, err := strconv.ParseUint(vals[1], 10, 64); err != nil {
			continue // the names line of the next table
		}
		p := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			v, _ := strconv.ParseUint(vals[j], 10, 64)
			c[p+":"+names[j]] = v
		}
		i++
	}
	return c
}

// reorderSince is the reordering a kernel saw since c0 in namespace ns:
// as a sender (duplicate-data reports, its reordering estimate raised,
// retransmissions, SACK recoveries, and the window at which HyStart
// ended slow start: summed over the connections since c0) and as a
// receiver (segments queued out of order).
func reorderSince(t *testing.T, ns string, c0 netCounters) string {
	t.Helper()
	c := readNetCounters(t, ns)
	d := func(k string) uint64 { return c[k] - c0[k] }
	return fmt.Sprintf("sent: retrans %d, DSACK received %d, SACK reorder %d, SACK recoveries %d, HyStart left slow start at cwnd %d; received: out of order %d, receive queue pruned %d, collapsed %d, dropped %d",
		d("Tcp:RetransSegs"), d("TcpExt:TCPDSACKRecv"), d("TcpExt:TCPSACKReorder"), d("TcpExt:TCPSackRecovery"),
		d("TcpExt:TCPHystartTrainCwnd")+d("TcpExt:TCPHystartDelayCwnd"), d("TcpExt:TCPOFOQueue"),
		d("TcpExt:PruneCalled"), d("TcpExt:TCPRcvCollapsed"), d("TcpExt:TCPRcvQDrop"))
}

// TestRPSMask: the mask has one bit per CPU and splits into 32-bit
// groups the way the kernel's cpumask parser reads them.
func TestRPSMask(t *testing.T) {
	for n, want := range map[int]string{
		1: "00000001", 2: "00000003", 32: "ffffffff", 33: "00000001,ffffffff", 72: "000000ff,ffffffff,ffffffff",
	} {
		if got := rpsMask(n); got != want {
			t.Errorf("rpsMask(%d) = %q, want %q", n, got, want)
		}
	}
}
