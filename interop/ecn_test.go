package interop

import (
	"fmt"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// startStackImpaired is startStack with a TCP configuration and an
// impairment between the stack and the TAP.
func (l *lab) startStackImpaired(tc tcp.Config, ic link.ImpairConfig) (*host, *link.Impair) {
	l.t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, NoIOURing: *noIOURing})
	if err != nil {
		l.t.Fatal(err)
	}
	im := link.NewImpair(tap, ic)
	st := stack.New(stack.Options{Name: "sockstack", TCP: tc})
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, im)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		st.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(st.Close)
	return h, im
}

// TestInteropECN: ECN against the Linux kernel over a TAP, with 2% of
// the ECN-capable packets each way marked CE on the way.
//   - sockstack asks (ECNOn) and the kernel agrees: our data leaves
//     ECT(0) (only ECT packets get marked), the kernel echoes the marks
//     with ECE, and sockstack reduces cwnd for them;
//   - the kernel asks (tcp_ecn=1) and sockstack accepts by default: the
//     kernel's data arrives ECT and its marks are counted.
//
// Both transfers arrive intact.
func TestInteropECN(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss")
	l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv4.tcp_ecn=1")
	h, im := l.startStackImpaired(tcp.Config{ECN: tcp.ECNOn}, link.ImpairConfig{Seed: 3, MarkCE: 0.02})
	const size = 16 << 20
	path, sum := randomFile(t, t.TempDir(), "16MiB.bin", size)
	t.Run("sockstack_asks", func(t *testing.T) {
		got, d := sendToKernel(t, l, h, 5011, path, 2*time.Minute)
		if got != sum {
			t.Fatalf("kernel received SHA-256 %s, sent %s", got, sum)
		}
		st := h.st.TCP.Stats()
		// At most one reduction per mark: the kernel repeats ECE until it
		// sees our CWR, and those repeats are the same congestion.
		if marks := im.Egress.CEMarked.Load(); marks == 0 || st.ECNCwndReductions == 0 || st.ECNCwndReductions > marks {
			t.Fatalf("CE marks on our data %d, reductions on the kernel's ECE %d", marks, st.ECNCwndReductions)
		}
		t.Logf("16 MiB sockstack -> kernel in %v: %d of our segments marked CE, %d cwnd reductions on ECE",
			d.Round(time.Millisecond), im.Egress.CEMarked.Load(), st.ECNCwndReductions)
	})
	t.Run("kernel_asks", func(t *testing.T) {
		before := h.st.TCP.Stats().InCEPkts
		got, n, _ := recvFromKernel(t, l, h, 5012, path, 2*time.Minute)
		if n != size || got != sum {
			t.Fatalf("received %d bytes, SHA-256 %s", n, got)
		}
		ce := h.st.TCP.Stats().InCEPkts - before
		if im.Ingress.CEMarked.Load() == 0 || ce == 0 {
			t.Fatalf("kernel data marked CE %d, received with CE %d", im.Ingress.CEMarked.Load(), ce)
		}
		t.Logf("%s", fmt.Sprintf("kernel -> sockstack: %d of the kernel's segments marked CE and counted", ce))
	})
}

// recvFromKernelOpt listens on sockstack's port, has the kernel's socat
// send the file (opt: socat address options, may be empty), and returns
// the SHA-256 of what arrived and the time.
func recvFromKernelOpt(t *testing.T, l *lab, h *host, port int, path, opt string, limit time.Duration) (string, int64, time.Duration) {
	t.Helper()
	return recvHashedAt(t, l, h, stackIP, port, path, opt, limit)
}
