package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// Python's socket tutorial echo client, as written in its docs.
const pyTutorialClient = `
import socket

HOST = "10.77.0.2"  # The server's hostname or IP address
PORT = 7  # The port used by the server

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.connect((HOST, PORT))
    s.sendall(b"Hello, world")
    data = s.recv(1024)

print(f"Received {data!r}")
`

// TestInteropTCPEcho: kernel clients against sockstack's TCP echo service.
func TestInteropTCPEcho(t *testing.T) {
	l := newLab(t)
	h := l.startStack("")
	startEcho(t, h)
	t.Run("nc_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "nc")
		out := l.run(t, 10*time.Second, []byte("hello over tcp\n"), "nc", "-N", "-w", "5", stackIP.String(), "7")
		wantContains(t, "nc", out, "hello over tcp")
	})
	t.Run("socat_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "socat")
		out := l.run(t, 10*time.Second, []byte("socat says hi\n"), "socat", "-t", "5", "-", "TCP:10.77.0.2:7")
		wantContains(t, "socat", out, "socat says hi")
	})
	t.Run("python3_tutorial_client_to_sockstack_echo", func(t *testing.T) {
		needTools(t, "python3")
		out := l.run(t, 10*time.Second, nil, "python3", "-c", pyTutorialClient)
		wantContains(t, "python3", out, "Received b'Hello, world'")
	})
	t.Run("nc_4MiB_to_sockstack_echo_identical", func(t *testing.T) {
		needTools(t, "nc")
		data := make([]byte, 4<<20)
		rand.Read(data)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := l.cmd(ctx, "nc", "-N", "-w", "10", stackIP.String(), "7")
		c.Stdin = bytes.NewReader(data)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("nc: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("echo of 4 MiB differs: got %d bytes", len(out))
		}
	})
}

// TestInteropSockstackTCPEcho: `sockstack echo` against a kernel socat
// echo server.
func TestInteropSockstackTCPEcho(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	// -b 4096: socat's PIPE echo writes each read block into a pipe with a
	// blocking write; a block larger than PIPE_BUF can block on a full pipe
	// that only socat itself drains, and socat then stalls with data
	// unread (seen with 8 KiB blocks under a fast bidirectional stream).
	l.background(t, "socat", "-b", "4096", "TCP-LISTEN:7,fork,reuseaddr", "PIPE")
	l.waitListen(t, "tcp", 7)
	t.Run("sockstack_echo_to_kernel_socat", func(t *testing.T) {
		args := append([]string{"echo"}, l.tapArgs()...)
		out, err := l.sockstack(t, 20*time.Second, []byte("line one\nline two\n"), append(args, kernelIP.String())...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantContains(t, "sockstack echo", out, "line one\nline two\n")
	})
	t.Run("sockstack_echo_--bytes_16MB_to_kernel_socat", func(t *testing.T) {
		args := append([]string{"echo", "--bytes", "16000000"}, l.tapArgs()...)
		out, err := l.sockstack(t, 60*time.Second, nil, append(args, kernelIP.String())...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantContains(t, "sockstack echo --bytes", out, "echoed 16,000,000 bytes in", "identical")
		t.Log(strings.TrimSpace(out))
	})
}

// sendToKernel connects from sockstack to the kernel at port, sends the
// file, closes, and returns the SHA-256 the kernel computed and the time.
func sendToKernel(t *testing.T, l *lab, h *host, port int, path string, limit time.Duration) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := l.cmd(ctx, "sh", "-c", fmt.Sprintf("socat -u TCP-LISTEN:%d,reuseaddr - | sha256sum", port))
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	done := startCmd(t, c)
	l.waitListen(t, "tcp", port)

	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(limit)
	start := time.Now()
	if err := s.Connect(socket.InetAddr(netip.AddrPortFrom(kernelIP, uint16(port)))); err != nil {
		t.Fatalf("connect: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := s.SendAll(buf[:n], 0); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Shutdown(socket.SHUT_WR)
	if err := <-done; err != nil {
		t.Fatalf("kernel side: %v\n%s", err, out.String())
	}
	d := time.Since(start)
	return strings.Fields(out.String() + " x")[0], d
}

// recvFromKernel listens on sockstack's port, has the kernel's socat send
// the file, and returns the SHA-256 of what arrived and the time.
func recvFromKernel(t *testing.T, l *lab, h *host, port int, path string, limit time.Duration) (string, int64, time.Duration) {
	t.Helper()
	return recvFromKernelOpt(t, l, h, port, path, "", limit)
}

func gbps(n int64, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e9 }

// TestInteropBulk: 200 MiB each way between sockstack and the kernel's
// socat, compared by SHA-256, without and with 2% loss on the kernel side
// (both directions).
func TestInteropBulk(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "sha256sum", "ss", "tc")
	h := l.startStack("")
	const size = 200 << 20
	path, sum := randomFile(t, t.TempDir(), "200MiB.bin", size)
	for _, loss := range []float64{0, 2} {
		suffix := ""
		if loss > 0 {
			suffix = fmt.Sprintf("_loss_%g%%", loss)
			l.loss(t, loss)
		}
		t.Run("200MiB_sockstack_to_kernel_socat"+suffix, func(t *testing.T) {
			got, d := sendToKernel(t, l, h, 5001, path, 5*time.Minute)
			if got != sum {
				t.Fatalf("kernel received data with SHA-256 %s, sent %s", got, sum)
			}
			t.Logf("200 MiB sockstack -> kernel in %v: %.2f Gbit/s", d.Round(time.Millisecond), gbps(size, d))
		})
		t.Run("200MiB_kernel_socat_to_sockstack"+suffix, func(t *testing.T) {
			got, n, d := recvFromKernel(t, l, h, 5002, path, 5*time.Minute)
			if n != size || got != sum {
				t.Fatalf("sockstack received %d bytes with SHA-256 %s; kernel sent %d, %s", n, got, size, sum)
			}
			t.Logf("200 MiB kernel -> sockstack in %v: %.2f Gbit/s", d.Round(time.Millisecond), gbps(size, d))
		})
	}
	ts := h.st.TCP.Stats()
	t.Logf("sockstack TCP: retrans %d, fast retrans %d, SACK recoveries %d, timeouts %d, SACK blocks received %d",
		ts.RetransSegs, ts.FastRetrans, ts.SACKRecovery, ts.Timeouts, ts.SACKBlocksRecv)
}

// TestInteropThroughput measures TCP throughput over the TAP each way
// (1 GiB from /dev/zero to /dev/null, no hashing) and logs it.
func TestInteropThroughput(t *testing.T) {
	l := newLab(t)
	needTools(t, "socat", "ss")
	h := l.startStack("")
	const size = 1 << 30
	zero := filepath.Join(t.TempDir(), "zero")
	_ = zero
	t.Run("sockstack_to_kernel_socat", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c := l.cmd(ctx, "socat", "-u", "TCP-LISTEN:5003,reuseaddr", "OPEN:/dev/null")
		done := startCmd(t, c)
		l.waitListen(t, "tcp", 5003)
		s, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetTimeout(time.Minute)
		start := time.Now()
		if err := s.Connect(socket.Inet(kernelIP.String(), 5003)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		c0, calls := cpuNow(t), linkCalls(h)
		for sent := 0; sent < size; sent += len(buf) {
			if err := s.SendAll(buf, 0); err != nil {
				t.Fatal(err)
			}
		}
		s.Shutdown(socket.SHUT_WR)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		n := calls()
		t.Logf("1 GiB sockstack -> kernel: %v, %.2f Gbit/s, sockstack %v; %s", d.Round(time.Millisecond), gbps(size, d), c0.since(t, size), n)
		checkWriteBatches(t, h, n, 2)
	})
	t.Run("kernel_socat_to_sockstack", func(t *testing.T) {
		c0, calls := cpuNow(t), linkCalls(h)
		d := recvZerosSocat(t, l, h, 5004, size, "-u", fmt.Sprintf("OPEN:/dev/zero,readbytes=%d", size), "TCP:10.77.0.2:5004")
		t.Logf("1 GiB kernel -> sockstack: %v, %.2f Gbit/s, sockstack %v; %s", d.Round(time.Millisecond), gbps(size, d), c0.since(t, size), calls())
	})
}
