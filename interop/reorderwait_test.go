package interop

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
)

// TestInteropAFPacketReorderWaitLoss: the AF_PACKET reader's wait for a
// reordered frame (link.AFPacketOptions.ReorderWait) when the holes are
// real. The kernel's frames toward sockstack are dropped at random in
// vp0's qdisc (1%, whole super-segments), so every hole sockstack
// holds is a loss, and the kernel must recover each from sockstack's
// SACKs, which the wait delays. With the wait and without it, 64 MiB of
// random data arrive whole (SHA-256); with it the reader waited; the
// kernel retransmitted in both. The two times are logged, not compared.
func TestInteropAFPacketReorderWaitLoss(t *testing.T) {
	needTools(t, "socat", "tc")
	const size = 64 << 20
	path, sum := randomFile(t, t.TempDir(), "64MiB.bin", size)
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"no_wait", -1}, {"default_wait", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			h := l.afpacketStackOpts(t, link.AFPacketOptions{Offload: true, QdiscBypass: true, ReorderWait: tc.wait})
			l.qdiscLoss(t, "vp0", 1)
			k0 := readNetCounters(t, l.ns)
			got, n, d := recvHashedAt(t, l, h, netip.MustParseAddr("10.79.0.2"), 5801, path, "", 3*time.Minute)
			if n != size || got != sum {
				t.Fatalf("sockstack received %d bytes with SHA-256 %s; the kernel sent %d, %s", n, got, size, sum)
			}
			k := readNetCounters(t, l.ns)
			retrans := k["Tcp:RetransSegs"] - k0["Tcp:RetransSegs"]
			ws := h.nic.Endpoint().(*link.AFPacket).ReorderWaitStats()
			ts := h.st.TCP.Stats()
			t.Logf("64 MiB kernel -> sockstack with 1%% of the kernel's frames dropped, reorder wait %v: %.2f Gbit/s in %v; kernel retransmitted %d segments; sockstack held %d hole ACKs, waits %+v",
				tc.wait, gbps(size, d), d.Round(time.Millisecond), retrans, ts.AcksHeld, ws)
			if retrans == 0 {
				t.Error("the kernel retransmitted nothing: the drops did not happen")
			}
			switch {
			case tc.wait < 0 && ws.Waits != 0:
				t.Errorf("the reader waited %d times with the wait off", ws.Waits)
			case tc.wait == 0 && ws.Waits == 0:
				t.Error("the reader never waited although holes were held")
			}
		})
	}
}
