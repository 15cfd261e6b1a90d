package interop

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/waiter"
)

// TCP transmit timestamps from the outside. A TAP never refuses a frame
// (link.NeverQueueFull), so sockstack's TCP queues its segments during
// a send and hands them to the link after the endpoint's lock
// (tcp/txdefer.go): SCHED is reported at the queueing, SND at the
// hand-over, ACK when the peer's ACK covers the byte. Sockstack and a
// Linux socket in a second namespace send the same writes to the same
// kernel sink, each write once the last one's ACK report came (Linux
// moves a write's key to the next write's last byte when both share an
// unsent skb; docs/DECISIONS.md); both report the same (type, key)
// sequence, and sockstack's times are checked against the wire as
// tcpdump saw it on the TAP. The same test found a blocking send cut
// short by a report on the error queue (socket.streamErrPending).
var _ link.NeverQueueFull = (*link.TAP)(nil)

// pyTxStamp connects to addr:port, sets SO_TIMESTAMPING (flags), writes
// each size in turn and reads the error queue until the ACK report of
// the last byte, then prints the reports as JSON: [ee_info, ee_data,
// the software time in ns].
const pyTxStamp = `
import json, select, socket, struct, sys, time
a = json.loads(sys.argv[1])
s = socket.create_connection((a["addr"], a["port"]), timeout=10)
s.settimeout(None)  # MSG_DONTWAIT then gives EAGAIN, not a wait
s.setsockopt(socket.SOL_SOCKET, 37, a["flags"])
p = select.poll()
p.register(s, select.POLLERR)
out, sent = [], 0
t0 = time.time_ns()
for n in a["sizes"]:
    s.sendall(bytes(n))
    sent += n
    done, deadline = False, time.time() + a["timeout"]
    while not done and time.time() < deadline:
        if not p.poll(200):
            continue
        while True:
            try:
                _, anc, _, _ = s.recvmsg(0, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            r = [None, None, None]
            for lvl, typ, d in anc:
                if lvl == socket.SOL_SOCKET and typ == 37:
                    sec, ns = struct.unpack("qq", d[:16])
                    r[2] = sec * 10**9 + ns
                elif lvl == socket.SOL_IP and typ == 11:
                    e = struct.unpack("IBBBBII", d[:16])
                    r[0], r[1] = e[5], e[6]
            out.append(r)
            if r[0] == 2 and r[1] == sent - 1:
                done = True
    if not done:
        print("no ACK report of byte %d: %r" % (sent - 1, out))
        sys.exit(1)
print(json.dumps({"t0": t0, "t1": time.time_ns(), "reports": out}))
`

type txStampRun struct {
	T0      int64      `json:"t0"`
	T1      int64      `json:"t1"`
	Reports [][3]int64 `json:"reports"`
}

// sockstackTxStamps does what pyTxStamp does, on a sockstack socket.
func sockstackTxStamps(t *testing.T, h *host, port, flags int, sizes []int) txStampRun {
	t.Helper()
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(10 * time.Second)
	if err := s.Connect(socket.Inet(kernelIP.String(), port)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSockOptInt(socket.SOL_SOCKET, socket.SO_TIMESTAMPING_OLD, flags); err != nil {
		t.Fatal(err)
	}
	run := txStampRun{T0: time.Now().UnixNano()}
	buf, oob := make([]byte, 64), make([]byte, 1024)
	sent := 0
	for _, n := range sizes {
		if err := s.SendAll(make([]byte, n), 0); err != nil {
			t.Fatal(err)
		}
		sent += n
		if !readTxStamps(t, s, &run, int64(sent-1), buf, oob) {
			t.Fatalf("no ACK report of byte %d in 10 s; reports %v", sent-1, run.Reports)
		}
	}
	run.T1 = time.Now().UnixNano()
	return run
}

// readTxStamps reads s's error queue into run until the ACK report of
// byte last, bounded.
func readTxStamps(t *testing.T, s *socket.Socket, run *txStampRun, last int64, buf, oob []byte) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		fds := []socket.PollFD{{Socket: s, Events: waiter.EventErr}}
		if n, err := socket.Poll(fds, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		} else if n == 0 {
			continue
		}
		for {
			_, oobn, _, _, err := s.RecvMsgControl(buf, oob, socket.MSG_ERRQUEUE|socket.MSG_DONTWAIT)
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			if err != nil {
				t.Fatalf("read of the error queue: %v", err)
			}
			ms, err := parseCmsgs(oob[:oobn])
			if err != nil {
				t.Fatal(err)
			}
			r := [3]int64{-1, -1, -1}
			for _, m := range ms {
				switch {
				case m.level == socket.SOL_SOCKET && m.typ == socket.SCM_TIMESTAMPING && len(m.data) >= 16:
					r[2] = int64(binary.LittleEndian.Uint64(m.data))*1e9 + int64(binary.LittleEndian.Uint64(m.data[8:]))
				case m.level == socket.SOL_IP && m.typ == socket.IP_RECVERR && len(m.data) >= 16:
					r[0], r[1] = int64(binary.LittleEndian.Uint32(m.data[8:])), int64(binary.LittleEndian.Uint32(m.data[12:]))
				}
			}
			run.Reports = append(run.Reports, r)
			if r[0] == socket.SCM_TSTAMP_ACK && r[1] == last {
				return true
			}
		}
	}
	return false
}

// txSeg is a TCP segment as tcpdump saw it on the TAP.
type txSeg struct {
	at       int64 // ns
	fromUs   bool  // sent by sockstack
	syn      bool
	seq, ack uint32
	n        int // payload bytes
}

// txSegsOf is the TCP segments of ps to or from port.
func txSegsOf(ps []gopacket.Packet, port int) []txSeg {
	var segs []txSeg
	for _, p := range ps {
		tl, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || (int(tl.DstPort) != port && int(tl.SrcPort) != port) {
			continue
		}
		segs = append(segs, txSeg{at: p.Metadata().Timestamp.UnixNano(), fromUs: int(tl.DstPort) == port, syn: tl.SYN,
			seq: tl.Seq, ack: tl.Ack, n: len(tl.Payload)})
	}
	return segs
}

func TestInteropTCPTxTimestamps(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "tcpdump", "socat")
	h := l.startStack("")
	p := l.newLinuxPeer(t)
	const port = 7410
	l.background(t, "socat", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr,fork", port), "OPEN:/dev/null")
	l.waitListen(t, "tcp", port)
	capTap := l.capture(t, tapName, "tcp", "port", fmt.Sprint(port))
	flags := socket.SOF_TIMESTAMPING_TX_SCHED | socket.SOF_TIMESTAMPING_TX_SOFTWARE | socket.SOF_TIMESTAMPING_TX_ACK |
		socket.SOF_TIMESTAMPING_SOFTWARE | socket.SOF_TIMESTAMPING_OPT_ID | socket.SOF_TIMESTAMPING_OPT_TSONLY
	// Small, one segment, many segments (a deferred flush), small again.
	sizes := []int{1000, 3000, 200000, 10}

	out := p.run(t, 30*time.Second, nil, "python3", "-c", pyTxStamp, mustJSON(t, map[string]any{
		"addr": peerLab4, "port": port, "flags": flags, "sizes": sizes, "timeout": 10}))
	var k txStampRun
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("python: %q: %v", out, err)
	}
	s := sockstackTxStamps(t, h, port, flags, sizes)
	kinds := func(run txStampRun) [][2]int64 {
		var ks [][2]int64
		for _, r := range run.Reports {
			ks = append(ks, [2]int64{r[0], r[1]})
		}
		return ks
	}
	t.Logf("linux: %v", kinds(k))
	t.Logf("sockstack: %v", kinds(s))
	if !slices.Equal(kinds(s), kinds(k)) {
		t.Fatalf("sockstack reported (type, key) %v, linux %v", kinds(s), kinds(k))
	}

	// Each report's time lies within the run, and per key SCHED <= SND
	// <= ACK.
	for _, run := range []struct {
		name string
		r    txStampRun
	}{{"linux", k}, {"sockstack", s}} {
		at := map[[2]int64]int64{}
		for _, r := range run.r.Reports {
			if r[2] < run.r.T0 || r[2] > run.r.T1 {
				t.Errorf("%s: report %v outside the run [%d, %d]", run.name, r, run.r.T0, run.r.T1)
			}
			at[[2]int64{r[0], r[1]}] = r[2]
		}
		for key := range at {
			sched, snd, ack := at[[2]int64{socket.SCM_TSTAMP_SCHED, key[1]}], at[[2]int64{socket.SCM_TSTAMP_SND, key[1]}], at[[2]int64{socket.SCM_TSTAMP_ACK, key[1]}]
			if sched > snd || snd > ack {
				t.Errorf("%s: key %d: SCHED %d, SND %d, ACK %d out of order", run.name, key[1], sched, snd, ack)
			}
		}
	}

	// Against the wire: the segment carrying a key's byte reached the TAP
	// after its SND time, and the ACK that covers it left the kernel
	// before the ACK time. tcpdump's times are in microseconds.
	const slack = int64(time.Microsecond)
	last := uint32(0)
	for _, n := range sizes {
		last += uint32(n)
	}
	var segs []txSeg
	capTap.waitFor(t, func(ps []gopacket.Packet) bool {
		segs = txSegsOf(ps, port)
		isn, ok := txISN(segs)
		return ok && slices.ContainsFunc(segs, func(g txSeg) bool { return !g.fromUs && g.ack-isn-1 >= last })
	})
	isn, _ := txISN(segs)
	checked := 0
	for _, r := range s.Reports {
		seqOf := isn + 1 + uint32(r[1]) // the key's byte
		switch r[0] {
		case socket.SCM_TSTAMP_SND:
			i := slices.IndexFunc(segs, func(g txSeg) bool { return g.fromUs && g.n > 0 && seqOf-g.seq < uint32(g.n) })
			if i < 0 {
				t.Fatalf("no segment on the wire carries byte %d", r[1])
			}
			checked++
			t.Logf("byte %d: SND %v before its segment was on the TAP", r[1], time.Duration(segs[i].at-r[2]))
			if segs[i].at+slack < r[2] {
				t.Errorf("byte %d: SND at %d, but its segment was on the TAP at %d, %v earlier", r[1], r[2], segs[i].at, time.Duration(r[2]-segs[i].at))
			}
		case socket.SCM_TSTAMP_ACK:
			i := slices.IndexFunc(segs, func(g txSeg) bool { return !g.fromUs && int32(g.ack-(seqOf+1)) >= 0 })
			if i < 0 {
				t.Fatalf("no ACK on the wire covers byte %d", r[1])
			}
			checked++
			if r[2]+slack < segs[i].at {
				t.Errorf("byte %d: ACK reported at %d, before the kernel's ACK was on the TAP at %d", r[1], r[2], segs[i].at)
			}
		}
	}
	if checked != 2*len(sizes) {
		t.Fatalf("checked %d reports against the wire, want %d", checked, 2*len(sizes))
	}
}

// txISN is sockstack's initial sequence number, from its SYN.
func txISN(segs []txSeg) (uint32, bool) {
	for _, g := range segs {
		if g.fromUs && g.syn {
			return g.seq, true
		}
	}
	return 0, false
}
