package interop

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// UDP segmentation offload over a TAP with virtio-net headers: sockstack
// sends with UDP_SEGMENT and the kernel gets one GSO_UDP_L4 frame per
// send (USO4/USO6 taken by TUNSETOFFLOAD), which it cuts into the
// sender's datagrams; the kernel's UDP_SEGMENT sends come to sockstack
// as GSO_UDP_L4 frames, which the stack cuts in software.

// startUSOStack is a sockstack host on the lab's TAP with offloads:
// 10.77.0.2/24, and fd77::2/64 when v6 (DAD off).
func (l *lab) startUSOStack(v6 bool, opts stack.Options) (*host, *link.TAP) {
	t := l.t
	t.Helper()
	tap, err := link.OpenTAP(tapName, link.TAPOptions{Netns: l.ns, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	opts.Name = "sockstack"
	opts.DADTransmits = -1
	st := stack.New(opts)
	h := &host{st: st, net: socket.New(st), flush: func() {}}
	h.nic = st.AddNIC(tapName, tap)
	t.Cleanup(st.Close)
	if err := h.nic.AddAddress(stackCIDR); err != nil {
		t.Fatal(err)
	}
	if v6 {
		if err := h.nic.AddAddress(stack6CIDR); err != nil {
			t.Fatal(err)
		}
		if err := h.nic.EnableIPv6(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("TUNSETOFFLOAD flags taken: %#x", tap.OffloadFlags())
	return h, tap
}

const tunUSO4 = 0x20 // TUN_F_USO4

// usoFill writes segs datagrams of seg bytes into b: datagram i (number
// first+i) starts with its number (big endian) and goes on with bytes
// (number+j)&255, which the receivers check.
func usoFill(b []byte, first, segs, seg int) {
	for i := 0; i < segs; i++ {
		d := b[i*seg : (i+1)*seg]
		n := first + i
		binary.BigEndian.PutUint32(d, uint32(n))
		for j := range d[4:] {
			d[4+j] = byte(n + j)
		}
	}
}

// pyUSORecv counts datagrams of one size in the kernel and checks each
// one's number and content (usoFill's pattern); exit 1 unless all n
// arrived, each once and intact.
const pyUSORecv = `
import socket, struct, sys
addr, port, n, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
s.bind((addr, port))
s.settimeout(20)
base = bytes(k & 255 for k in range(256 + seg))
seen = set()
bad = 0
try:
    while len(seen) < n:
        b = s.recv(65536)
        i = struct.unpack('!I', b[:4])[0]
        if len(b) != seg or i >= n or i in seen or b[4:] != base[i & 255:(i & 255) + seg - 4]:
            bad += 1
            continue
        seen.add(i)
except socket.timeout:
    pass
print(len(seen), bad)
sys.exit(0 if len(seen) == n and bad == 0 else 1)
`

// pyUSOSend sends rounds sends of segs datagrams of seg bytes each with
// UDP_SEGMENT, numbered and filled as usoFill does.
const pyUSOSend = `
import socket, struct, sys
addr, port, rounds, segs, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(17, 103, seg)  # SOL_UDP, UDP_SEGMENT
base = bytes(k & 255 for k in range(256 + seg))
for r in range(rounds):
    p = b''.join(struct.pack('!I', r * segs + i) + base[(r * segs + i) & 255:((r * segs + i) & 255) + seg - 4] for i in range(segs))
    s.sendto(p, (addr, port))
`

// resolveKernel pings kaddr from sockstack and waits for the reply, so
// the kernel's MAC is known before a burst (a burst to an unresolved
// neighbour waits in its bounded queue, which evicts the oldest frames).
func resolveKernel(t *testing.T, h *host, kaddr netip.Addr) {
	t.Helper()
	fam, proto, echo := socket.AF_INET, socket.IPPROTO_ICMP, byte(8)
	if kaddr.Is6() {
		fam, proto, echo = socket.AF_INET6, socket.IPPROTO_ICMPV6, 128
	}
	p, err := h.net.Socket(fam, socket.SOCK_DGRAM, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetTimeout(5 * time.Second)
	if _, err := p.SendTo([]byte{echo, 0, 0, 0, 0, 0, 0, 1}, 0, socket.InetAddr(netip.AddrPortFrom(kaddr, 0))); err != nil {
		t.Fatal(err)
	}
	var b [64]byte
	if _, _, err := p.RecvFrom(b[:], 0); err != nil {
		t.Fatalf("ping %v: %v", kaddr, err)
	}
}

func usoToKernel(t *testing.T, l *lab, h *host, tap *link.TAP, kaddr netip.Addr, port int) {
	t.Helper()
	const rounds, segs, seg = 100, 20, 1200
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out syncBuffer
	c := l.cmd(ctx, "python3", "-c", pyUSORecv, kaddr.String(), fmt.Sprint(port), fmt.Sprint(rounds*segs), fmt.Sprint(seg))
	c.Stdout = &out
	done := startCmd(t, c)
	l.waitListen(t, "udp", port)
	fam := socket.AF_INET
	if kaddr.Is6() {
		fam = socket.AF_INET6
	}
	s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(10 * time.Second)
	if err := s.SetSockOpt(socket.SOL_UDP, socket.UDP_SEGMENT, seg); err != nil {
		t.Fatal(err)
	}
	resolveKernel(t, h, kaddr)
	to := socket.InetAddr(netip.AddrPortFrom(kaddr, uint16(port)))
	buf := make([]byte, segs*seg)
	for r := 0; r < rounds; r++ {
		usoFill(buf, r*segs, segs, seg)
		if _, err := s.SendTo(buf, 0, to); err != nil {
			t.Fatalf("send %d: %v", r, err)
		}
	}
	err = <-done
	ls := &h.st.Stats().Link
	if err != nil {
		ns, _ := l.try(5*time.Second, nil, "nstat", "-az", "UdpInDatagrams", "UdpRcvbufErrors", "UdpInErrors", "UdpInCsumErrors", "Udp6InDatagrams", "Udp6RcvbufErrors")
		t.Fatalf("kernel receiver: %v (received, bad: %s); whole %d, cut %d, link out %d dropped %d\n%s", err, strings.TrimSpace(out.String()),
			ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), tap.Stats().TxFrames.Load(), tap.Stats().TxDropped.Load(), ns)
	}
	t.Logf("kernel received (datagrams, bad): %s; super-datagrams handed whole %d, cut in software %d",
		strings.TrimSpace(out.String()), ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load())
	if tap.OffloadFlags()&tunUSO4 != 0 && ls.OutGSOFrames.Load() != rounds {
		t.Errorf("USO taken but only %d of %d sends went whole", ls.OutGSOFrames.Load(), rounds)
	}
}

// TestInteropUSOToKernel: 100 UDP_SEGMENT sends of 20 datagrams from
// sockstack over the TAP with offloads; a python3 receiver in the
// namespace gets all 2000 datagrams at the sender's boundaries, content
// intact; the lab's cleanup finds no kernel checksum error.
func TestInteropUSOToKernel(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "ss")
	h, tap := l.startUSOStack(false, stack.Options{})
	usoToKernel(t, l, h, tap, kernelIP, 5301)
}

// TestInteropUSOToKernel6 is TestInteropUSOToKernel over IPv6.
func TestInteropUSOToKernel6(t *testing.T) {
	l := newLab6(t)
	needTools(t, "python3", "ss")
	h, tap := l.startUSOStack(true, stack.Options{})
	usoToKernel(t, l, h, tap, kernel6IP, 5302)
}

// TestInteropUSOFromKernel: the kernel's UDP_SEGMENT sends (python3, 100
// sends of 20 datagrams) reach a sockstack socket as the sender's
// datagrams, each intact: the TAP brings them as GSO_UDP_L4 frames, which
// the stack cuts in software, or, for a socket with UDP_GRO on, queues
// whole (one read per send, its segment size in the UDP_GRO message);
// IPv4 and IPv6.
func TestInteropUSOFromKernel(t *testing.T) {
	for _, c := range []struct {
		name    string
		v6, gro bool
	}{{"ipv4", false, false}, {"ipv6", true, false}, {"ipv4_gro", false, true}, {"ipv6_gro", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			v6 := c.v6
			var l *lab
			if v6 {
				l = newLab6(t)
			} else {
				l = newLab(t)
			}
			needTools(t, "python3")
			h, tap := l.startUSOStack(v6, stack.Options{UDPRecvBuf: 32 << 20})
			const rounds, segs, seg = 100, 20, 1200
			fam, saddr, unspec := socket.AF_INET, stackIP, netip.IPv4Unspecified()
			if v6 {
				fam, saddr, unspec = socket.AF_INET6, stack6CIDR.Addr(), netip.IPv6Unspecified()
			}
			s, err := h.net.Socket(fam, socket.SOCK_DGRAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetTimeout(20 * time.Second)
			if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(unspec, 5303))); err != nil {
				t.Fatal(err)
			}
			if err := s.SetSockOpt(socket.SOL_UDP, socket.UDP_GRO, c.gro); err != nil {
				t.Fatal(err)
			}
			// The kernel learns sockstack's MAC from the exchange: its own
			// neighbour queue would drop most of a burst otherwise.
			kaddr := kernelIP
			if v6 {
				kaddr = kernel6IP
			}
			resolveKernel(t, h, kaddr)
			l.run(t, time.Minute, nil, "python3", "-c", pyUSOSend, saddr.String(), "5303", fmt.Sprint(rounds), fmt.Sprint(segs), fmt.Sprint(seg))
			reads, whole := readNumbered(t, s, rounds*segs, seg, nil)
			rx := tap.Stats().RxFrames.Load()
			t.Logf("%d datagrams came in %d frames from the TAP, %d reads (%d coalesced); bad offload frames %d",
				rounds*segs, rx, reads, whole, h.st.Stats().Link.InBadOffload.Load())
			uso := tap.OffloadFlags()&tunUSO4 != 0
			if uso && rx >= rounds*segs {
				t.Errorf("USO taken, yet the kernel's super-datagrams came cut (%d frames)", rx)
			}
			if !c.gro && whole != 0 || c.gro && uso && whole != rounds {
				t.Errorf("UDP_GRO %v: %d coalesced reads of %d sends", c.gro, whole, rounds)
			}
			if h.st.Stats().Link.InBadOffload.Load() != 0 {
				t.Error("frames with malformed offload state")
			}
		})
	}
}

// inNetnsDo runs fn on a thread inside the named namespace (kernel
// sockets keep the namespace they were made in).
func inNetnsDo(t *testing.T, ns string, fn func() error) {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			res <- err // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		res <- ferr
	}()
	if err := <-res; err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// kernelUDP is a kernel UDP socket in ns bound to a (port 0: any).
func kernelUDP(t *testing.T, ns string, a netip.AddrPort) int {
	t.Helper()
	var fd int
	inNetnsDo(t, ns, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: a.Addr().As4(), Port: int(a.Port())})
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// readNumbered reads total datagrams of seg bytes, numbered and filled
// by pyUSOSend, from s (UDP_GRO may join them into one read) and checks
// each comes once with its content. It returns the reads and how many
// returned a super-datagram whole. diag, if set, adds to a read error.
func readNumbered(t *testing.T, s *socket.Socket, total, seg int, diag func() string) (reads, whole int) {
	t.Helper()
	seen := make([]bool, total)
	want := make([]byte, seg)
	buf := make([]byte, 65536)
	for got := 0; got < total; {
		n, _, _, gso, err := s.RecvMsgUDP(buf, 0)
		if err != nil {
			more := ""
			if diag != nil {
				more = " (" + diag() + ")"
			}
			t.Fatalf("after %d datagrams: %v%s", got, err, more)
		}
		reads++
		if gso == 0 {
			gso = n
		} else {
			whole++
		}
		if gso != seg || n%seg != 0 {
			t.Fatalf("read of %d bytes, segment size %d; the sender's datagrams were %d", n, gso, seg)
		}
		for d := buf[:n]; len(d) > 0; d = d[seg:] {
			i := int(binary.BigEndian.Uint32(d))
			if i >= len(seen) || seen[i] {
				t.Fatalf("datagram number %d twice or out of range", i)
			}
			seen[i] = true
			usoFill(want, i, 1, seg)
			if string(want) != string(d[:seg]) {
				t.Fatalf("datagram %d: content differs", i)
			}
			got++
		}
	}
	return reads, whole
}

// usoRx is what the benchmark's kernel receiver saw.
type usoRx struct {
	dgrams, bad int64
	last        time.Time
	err         error
}

// usoReceive reads datagrams of seg bytes with UDP_GRO on (a super-
// datagram the kernel did not cut comes whole, its segment size in the
// UDP_GRO control message) until a 4-byte end marker comes on the
// second socket (which GRO never merges with the data), or nothing comes
// for 10 s.
func usoReceive(fd, endFD, seg int, out chan<- usoRx) {
	var r usoRx
	unix.SetNonblock(fd, true)
	unix.SetNonblock(endFD, true)
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	var end [16]byte
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(endFD), Events: unix.POLLIN}}
	drain := func() error {
		for {
			n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			switch err {
			case nil:
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return nil
			default:
				return err
			}
			gso := n
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, c := range cms {
					if c.Header.Level == unix.SOL_UDP && c.Header.Type == unix.UDP_GRO && len(c.Data) >= 4 {
						gso = int(binary.NativeEndian.Uint32(c.Data))
					}
				}
			}
			if gso != seg || n%seg != 0 {
				r.bad++
			} else {
				r.dgrams += int64(n / seg)
			}
			r.last = time.Now()
		}
	}
	for {
		k, err := unix.Poll(pfd, 10000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			r.err = fmt.Errorf("poll: %d %v", k, err)
			break
		}
		if r.err = drain(); r.err != nil {
			break
		}
		if n, _, err := unix.Recvfrom(endFD, end[:], 0); err == nil && n == 4 {
			r.err = drain()
			break
		}
	}
	out <- r
}

// TestInteropUSOThroughput: datagrams/s of 1400 bytes sent with
// UDP_SEGMENT (40 datagrams a send, 20,000 sends: 800,000), sockstack on a TAP with
// offloads to the kernel, next to the kernel to itself over a veth pair
// in the same run, one kernel receiver with UDP_GRO (x/sys/unix sockets)
// for both. Figures only, never asserted; the receiver's count is the
// figure, and datagrams the receiver did not take in time are reported
// as lost.
func TestInteropUSOThroughput(t *testing.T) {
	l := newLab(t)
	h, tap := l.startUSOStack(false, stack.Options{})
	ns2 := l.vethPair(t)
	const seg, segs, rounds = 1400, 40, 20000
	const total = segs * rounds
	buf := make([]byte, seg*segs)
	usoFill(buf, 0, segs, seg)
	measure := func(name string, rx netip.AddrPort, send func() error, marker func() error) float64 {
		fd := kernelUDP(t, l.ns, rx)
		endFD := kernelUDP(t, l.ns, netip.AddrPortFrom(rx.Addr(), rx.Port()+1))
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
			t.Fatal(err)
		}
		out := make(chan usoRx, 1)
		go usoReceive(fd, endFD, seg, out)
		start := time.Now()
		if err := send(); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		sent := time.Since(start)
		var r usoRx
	wait:
		for {
			if err := marker(); err != nil {
				t.Fatalf("%s: end marker: %v", name, err)
			}
			select {
			case r = <-out:
				break wait
			case <-time.After(20 * time.Millisecond): // the marker is a datagram too: resend until seen
			}
		}
		if r.err != nil {
			t.Errorf("%s: receiver: %v", name, r.err)
		}
		if r.bad != 0 {
			t.Errorf("%s: %d reads not of whole %d-byte datagrams", name, r.bad, seg)
		}
		d := r.last.Sub(start)
		rate := float64(r.dgrams) / d.Seconds()
		t.Logf("%s: %d of %d datagrams received (%.1f%% lost), %.0f datagrams/s received, sender done in %v (%.0f/s)",
			name, r.dgrams, total, 100*float64(total-r.dgrams)/total, rate, sent.Round(time.Millisecond), total/sent.Seconds())
		return rate
	}

	// sockstack -> kernel over the TAP.
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(10 * time.Second)
	if err := s.SetSockOpt(socket.SOL_UDP, socket.UDP_SEGMENT, seg); err != nil {
		t.Fatal(err)
	}
	m, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Resolve the kernel's MAC first: it is not part of the figure.
	resolveKernel(t, h, kernelIP)
	var ss float64
	t.Run("sockstack_to_kernel", func(t *testing.T) {
		to := socket.InetAddr(netip.AddrPortFrom(kernelIP, 5310))
		endTo := socket.InetAddr(netip.AddrPortFrom(kernelIP, 5311))
		ss = measure("sockstack -> kernel (TAP, USO)", netip.AddrPortFrom(kernelIP, 5310), func() error {
			for i := 0; i < rounds; i++ {
				if _, err := s.SendTo(buf, 0, to); err != nil {
					return err
				}
			}
			return nil
		}, func() error { _, err := m.SendTo([]byte{255, 255, 255, 255}, 0, endTo); return err })
	})
	ls := &h.st.Stats().Link
	t.Logf("TUNSETOFFLOAD %#x; super-datagrams handed whole %d, cut in software %d, gathered from the senders' buffers %d",
		tap.OffloadFlags(), ls.OutGSOFrames.Load(), ls.OutGSOSegs.Load(), ls.OutVecFrames.Load())
	if tap.OffloadFlags()&0x20 != 0 && ls.OutVecFrames.Load() == 0 {
		t.Error("the TAP took USO4 but no super-datagram was gathered by its writev")
	}

	// kernel -> kernel over the veth pair: sender in ns2, receiver in the lab.
	var kfd, kend int
	inNetnsDo(t, ns2, func() error {
		var err error
		if kfd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if kend, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.SetsockoptInt(kfd, unix.SOL_UDP, unix.UDP_SEGMENT, seg)
	})
	defer unix.Close(kfd)
	defer unix.Close(kend)
	vethRx := netip.MustParseAddr("10.78.0.1")
	unix.Sendto(kfd, []byte("warm"), 0, &unix.SockaddrInet4{Addr: vethRx.As4(), Port: 9})
	var kk float64
	t.Run("kernel_to_kernel", func(t *testing.T) {
		to := &unix.SockaddrInet4{Addr: vethRx.As4(), Port: 5312}
		endTo := &unix.SockaddrInet4{Addr: vethRx.As4(), Port: 5313}
		kk = measure("kernel -> kernel (veth, UDP_SEGMENT)", netip.AddrPortFrom(vethRx, 5312), func() error {
			for i := 0; i < rounds; i++ {
				if err := unix.Sendto(kfd, buf, 0, to); err != nil {
					return err
				}
			}
			return nil
		}, func() error { return unix.Sendto(kend, []byte{255, 255, 255, 255}, 0, endTo) })
	})
	if kk > 0 {
		t.Logf("ratio sockstack->kernel / kernel->kernel: %.2f", ss/kk)
	}
}

// pyUSOLimits prints the kernel's answer (0 or the errno) to UDP_SEGMENT
// sends at and over its limits, over the route to addr: 128 and 129
// segments of 100 bytes; a segment size that just fits the MTU and one
// byte more, each with a short payload, a payload of that size, and
// several segments.
const pyUSOLimits = `
import socket, sys
addr, mtu = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
hl = 48 if fam == socket.AF_INET6 else 28
out = []
for gso, n in ((100, 128 * 100), (100, 129 * 100), (mtu - hl, 10), (mtu - hl + 1, 10), (mtu - hl, mtu - hl), (mtu - hl + 1, mtu - hl + 1), (mtu - hl, 3000), (mtu - hl + 1, 3000)):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(17, 103, gso)
    try:
        s.sendto(b'x' * n, (addr, 9))
        out.append('0')
    except OSError as e:
        out.append(str(e.errno))
print(' '.join(out))
`

// TestInteropUSOLimitsMatchKernel: the same UDP_SEGMENT sends at and
// over the limits (segment count, segment over the route MTU) get the
// same answers from sockstack as from the kernel across the same TAP.
func TestInteropUSOLimitsMatchKernel(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	h, tap := l.startUSOStack(false, stack.Options{})
	kernel := strings.TrimSpace(l.run(t, 30*time.Second, nil, "python3", "-c", pyUSOLimits, stackIP.String(), fmt.Sprint(tap.MTU())))
	var got []string
	m := tap.MTU() - 28
	for _, c := range []struct{ gso, n int }{{100, 128 * 100}, {100, 129 * 100}, {m, 10}, {m + 1, 10}, {m, m}, {m + 1, m + 1}, {m, 3000}, {m + 1, 3000}} {
		s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetSockOpt(socket.SOL_UDP, socket.UDP_SEGMENT, c.gso); err != nil {
			t.Fatal(err)
		}
		_, err = s.SendTo(make([]byte, c.n), socket.MSG_DONTWAIT, socket.InetAddr(netip.AddrPortFrom(kernelIP, 9)))
		s.Close()
		if en, ok := err.(syscall.Errno); ok {
			got = append(got, fmt.Sprint(int(en)))
		} else if err != nil {
			t.Fatalf("gso %d, %d bytes: %v", c.gso, c.n, err)
		} else {
			got = append(got, "0")
		}
	}
	if g := strings.Join(got, " "); g != kernel {
		t.Fatalf("sockstack answers %q, the kernel %q (the cases of pyUSOLimits)", g, kernel)
	}
	t.Logf("both answer %q", kernel)
}
