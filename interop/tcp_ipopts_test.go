package interop

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// TestInteropTCPIPOptionsRecordRoute: a sockstack socket with
// IP_OPTIONS (Record Route, one slot) connects over the TAP to a kernel
// listener and sends 100 KB. tcpdump on the TAP shows the option, with
// sockstack's address in its slot, on every segment sockstack sends
// (SYN, data, FIN) and, echoed, on every segment the kernel's accepted
// socket sends; the kernel's child reads those echoed options back with
// getsockopt and gets every byte with good checksums (the lab checks
// the kernel's checksum counters at cleanup).
func TestInteropTCPIPOptionsRecordRoute(t *testing.T) {
	l := newLab(t)
	needTools(t, "tcpdump", "python3", "ss")
	h := l.startStack("")
	const port, size = 7788, 100 << 10
	py := fmt.Sprintf(`import socket
l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
l.bind(('%s',%d)); l.listen(1)
c,_=l.accept(); n=0
while True:
    b=c.recv(65536)
    if not b: break
    n+=len(b)
c.sendall((c.getsockopt(socket.IPPROTO_IP,4,40).hex()+' '+str(n)).encode()); c.close()
`, kernelIP, port)
	l.background(t, "python3", "-c", py)
	l.waitListen(t, "tcp", port)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf syncBuffer
	// A 64 MiB capture buffer: the 100 KB burst must not overrun it (with
	// the default, tcpdump's printing fell behind and the kernel dropped
	// dozens of the burst's frames from the capture).
	c := l.cmd(ctx, "tcpdump", "--immediate-mode", "-B", "65536", "-n", "-v", "-l", "-i", tapName, "tcp port "+strconv.Itoa(port))
	c.Stdout, c.Stderr = &buf, &buf
	done := startCmd(t, c)
	waitTcpdump(t, &buf, done)

	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(20 * time.Second)
	if err := s.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x07\x07\x04\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(socket.Inet(kernelIP.String(), port)); err != nil {
		t.Fatal(err)
	}
	if err := s.SendAll(make([]byte, size), 0); err != nil {
		t.Fatal(err)
	}
	s.Shutdown(socket.SHUT_WR)
	var reply []byte
	rb := make([]byte, 256)
	for {
		n, err := s.Recv(rb, 0)
		if err != nil {
			t.Fatalf("reading the kernel's reply: %v", err)
		}
		if n == 0 {
			break
		}
		reply = append(reply, rb[:n]...)
	}
	// The kernel's child: the SYN's option echoed, full (getsockopt reads
	// it as is), and every byte.
	if want := fmt.Sprintf("0707080a4d000200 %d", size); string(reply) != want {
		t.Fatalf("kernel child: %q, want %q", reply, want)
	}
	// Both FINs in the capture: tcpdump has printed the exchange (it
	// tells only on its output).
	for strings.Count(buf.String(), "Flags [F") < 2 {
		select {
		case err := <-done:
			t.Fatalf("tcpdump ended: %v\n%s", err, buf.String())
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("the capture never showed both FINs:\n%s", buf.String())
		}
	}
	cancel()
	<-done

	// A packet is a header line with its IP options, then a line from
	// its source with the TCP flags and length.
	lines := strings.Split(buf.String(), "\n")
	optRe := regexp.MustCompile(`options \(([^)]*)\)`)
	flagRe := regexp.MustCompile(`Flags \[([^\]]*)\].* length (\d+)`)
	rr := "RR " + stackIP.String() + ",,EOL"
	seen := map[string]bool{}
	count := map[string]int{}
	for i := 0; i+1 < len(lines); i++ {
		if !strings.Contains(lines[i], "proto TCP") {
			continue
		}
		src := strings.Fields(lines[i+1])
		f := flagRe.FindStringSubmatch(lines[i+1])
		if len(src) == 0 || f == nil {
			continue
		}
		from := "kernel"
		if strings.HasPrefix(src[0], stackIP.String()+".") {
			from = "sockstack"
		}
		count[from]++
		m := optRe.FindStringSubmatch(lines[i])
		if m == nil || m[1] != rr {
			t.Fatalf("%s sent a segment (%s) without %q:\n%s\n%s\nthe capture:\n%s", from, f[1], rr, lines[i], lines[i+1], buf.String())
		}
		if strings.Contains(f[1], "S") {
			seen[from+" SYN"] = true
		}
		if strings.Contains(f[1], "F") {
			seen[from+" FIN"] = true
		}
		if f[2] != "0" {
			seen[from+" data"] = true
		}
	}
	for _, k := range []string{"sockstack SYN", "sockstack data", "sockstack FIN", "kernel SYN", "kernel data", "kernel FIN"} {
		if !seen[k] {
			t.Errorf("no %s segment in the capture (%v):\n%s", k, count, buf.String())
		}
	}
	t.Logf("segments with %q: %v", rr, count)
}
