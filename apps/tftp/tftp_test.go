package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/internal/apptest"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
)

var srvAddr = apptest.Server(Port)

// fast is the client's retransmission timeout in tests on a clean link;
// it also bounds how long a receiving client dallies after the last block.
const fast = 50 * time.Millisecond

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type fixture struct {
	p    *apptest.Pair
	srv  *Server
	root string
}

func newFixture(t *testing.T, o apptest.Options, cfg ServerConfig) *fixture {
	t.Helper()
	p := apptest.New(t, o)
	root := t.TempDir()
	cfg.Root = root
	srv, err := Serve(p.B, apptest.Any(Port), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &fixture{p: p, srv: srv, root: root}
}

func (f *fixture) put(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.root, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sameSHA(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("%s: SHA-256 differs (%d bytes, want %d)", what, len(got), len(want))
	}
}

func remoteErr(t *testing.T, err error, code uint16) {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) || !te.Remote || te.Code != code {
		t.Fatalf("error %v, want a peer error %d", err, code)
	}
}

func TestGetPutSizes(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	ctx := context.Background()
	for i, size := range []int{0, 1, 511, 512, 513, 1024, 100000} {
		data := randBytes(size, uint64(i))
		name := "f" + string(rune('a'+i))
		f.put(t, name, data)
		var got bytes.Buffer
		res, err := Get(ctx, f.p.A, srvAddr, name, &got, ClientConfig{Timeout: fast})
		if err != nil {
			t.Fatalf("get %d bytes: %v", size, err)
		}
		sameSHA(t, "get", got.Bytes(), data)
		if res.Bytes != int64(size) || res.Blksize != 512 {
			t.Fatalf("result %+v", res)
		}
		up := "up-" + name
		if _, err := Put(ctx, f.p.A, srvAddr, up, bytes.NewReader(data), int64(size), ClientConfig{Timeout: fast}); err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		stored, err := os.ReadFile(filepath.Join(f.root, up))
		if err != nil {
			t.Fatal(err)
		}
		sameSHA(t, "put", stored, data)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(f.root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}

func TestOptions(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{MaxBlksize: 4096})
	ctx := context.Background()
	data := randBytes(70000, 9)
	f.put(t, "x", data)
	var got bytes.Buffer
	var calls int
	var lastDone, lastTotal int64
	cfg := ClientConfig{Blksize: 1468, Tsize: true, TimeoutOption: 1, Progress: func(d, tot int64) {
		calls++
		lastDone, lastTotal = d, tot
	}}
	res, err := Get(ctx, f.p.A, srvAddr, "x", &got, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sameSHA(t, "get", got.Bytes(), data)
	if res.Blksize != 1468 || res.Tsize != 70000 {
		t.Fatalf("negotiated %+v", res)
	}
	if calls != 70000/1468+1 || lastDone != 70000 || lastTotal != 70000 {
		t.Fatalf("progress: %d calls, last %d/%d", calls, lastDone, lastTotal)
	}
	// A blksize above the server's limit is lowered in the OACK.
	got.Reset()
	res, err = Get(ctx, f.p.A, srvAddr, "x", &got, ClientConfig{Blksize: 65464, Timeout: fast})
	if err != nil {
		t.Fatal(err)
	}
	sameSHA(t, "get big blocks", got.Bytes(), data)
	if res.Blksize != 4096 {
		t.Fatalf("blksize %d, want the server's 4096", res.Blksize)
	}
	// Put with options.
	res, err = Put(ctx, f.p.A, srvAddr, "y", bytes.NewReader(data), int64(len(data)), ClientConfig{Blksize: 2000, Tsize: true, Timeout: fast})
	if err != nil {
		t.Fatal(err)
	}
	if res.Blksize != 2000 || res.Tsize != 70000 {
		t.Fatalf("put negotiated %+v", res)
	}
	stored, _ := os.ReadFile(filepath.Join(f.root, "y"))
	sameSHA(t, "put", stored, data)
	// Bad client settings are refused before sending anything.
	if _, err := Get(ctx, f.p.A, srvAddr, "x", &got, ClientConfig{Blksize: 7}); err == nil {
		t.Fatal("blksize 7 accepted")
	}
}

func TestTsizeTooLargeForWrite(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{MaxFileSize: 1000})
	_, err := Put(context.Background(), f.p.A, srvAddr, "big", bytes.NewReader(make([]byte, 5000)), 5000, ClientConfig{Tsize: true, Timeout: fast})
	remoteErr(t, err, ErrDiskFull)
	// Without tsize the server stops when the limit is passed.
	_, err = Put(context.Background(), f.p.A, srvAddr, "big", bytes.NewReader(make([]byte, 5000)), -1, ClientConfig{Timeout: fast})
	remoteErr(t, err, ErrDiskFull)
	if _, err := os.Stat(filepath.Join(f.root, "big")); !os.IsNotExist(err) {
		t.Fatalf("partial file kept: %v", err)
	}
}

func TestNetascii(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	ctx := context.Background()
	text := []byte("line one\nline two\r\nbare\rcr\n\n" + strings.Repeat("x\n", 600))
	f.put(t, "t.txt", text)
	var got bytes.Buffer
	res, err := Get(ctx, f.p.A, srvAddr, "t.txt", &got, ClientConfig{Mode: "netascii", Tsize: true, Timeout: fast})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), text) {
		t.Fatalf("netascii round trip: %q", got.Bytes())
	}
	// On the wire every LF became CR LF and the CR a CR NUL (and the CR
	// of "\r\n" a CR NUL, then its LF a CR LF).
	lf, cr := bytes.Count(text, []byte("\n")), bytes.Count(text, []byte("\r"))
	if want := int64(len(text) + lf + cr); res.Bytes != want || res.Tsize != want {
		t.Fatalf("wire bytes %d, tsize %d, want %d", res.Bytes, res.Tsize, want)
	}
	if _, err := Put(ctx, f.p.A, srvAddr, "u.txt", bytes.NewReader(text), int64(len(text)), ClientConfig{Mode: "netascii", Timeout: fast}); err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(filepath.Join(f.root, "u.txt"))
	if !bytes.Equal(stored, text) {
		t.Fatalf("netascii put stored %q", stored)
	}
}

func TestNetasciiCodec(t *testing.T) {
	in := []byte("a\nb\rc\r\n\r")
	var wire bytes.Buffer
	r := newNetasciiReader(bytes.NewReader(in))
	buf := make([]byte, 3) // small reads split the expansions
	for {
		k, err := r.Read(buf)
		wire.Write(buf[:k])
		if err != nil {
			break
		}
	}
	if want := "a\r\nb\r\x00c\r\x00\r\n\r\x00"; wire.String() != want {
		t.Fatalf("encoded %q, want %q", wire.String(), want)
	}
	var out bytes.Buffer
	w := newNetasciiWriter(&out)
	for _, c := range wire.Bytes() { // one byte at a time: a CR at a block edge
		w.Write([]byte{c})
	}
	w.Flush()
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("decoded %q, want %q", out.Bytes(), in)
	}
}

func TestRootConfinement(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{Overwrite: true})
	ctx := context.Background()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(f.root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(f.root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(f.root, "sub"), 0o755)
	f.put(t, "sub/ok", []byte("fine"))
	for _, name := range []string{"../secret", "sub/../../secret", "/etc/passwd", filepath.Join(outside, "secret"), "link", "dirlink/secret", "sub", "."} {
		var got bytes.Buffer
		_, err := Get(ctx, f.p.A, srvAddr, name, &got, ClientConfig{Timeout: fast})
		remoteErr(t, err, ErrAccess)
		if got.Len() != 0 {
			t.Fatalf("%q: got %q", name, got.Bytes())
		}
	}
	for _, name := range []string{"../evil", "/tmp/evil", "dirlink/evil"} {
		_, err := Put(ctx, f.p.A, srvAddr, name, strings.NewReader("evil"), 4, ClientConfig{Timeout: fast})
		remoteErr(t, err, ErrAccess)
	}
	if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
		t.Fatal("a write escaped the root")
	}
	var got bytes.Buffer
	if _, err := Get(ctx, f.p.A, srvAddr, "sub/ok", &got, ClientConfig{Timeout: fast}); err != nil || got.String() != "fine" {
		t.Fatalf("sub/ok: %q %v", got.String(), err)
	}
	_, err := Get(ctx, f.p.A, srvAddr, "missing", &got, ClientConfig{Timeout: fast})
	remoteErr(t, err, ErrNotFound)
}

func TestWritePolicy(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	f.put(t, "exists", []byte("old"))
	_, err := Put(context.Background(), f.p.A, srvAddr, "exists", strings.NewReader("new"), 3, ClientConfig{Timeout: fast})
	remoteErr(t, err, ErrExists)
	ro := newFixture(t, apptest.Options{}, ServerConfig{ReadOnly: true})
	_, err = Put(context.Background(), ro.p.A, srvAddr, "n", strings.NewReader("new"), 3, ClientConfig{Timeout: fast})
	remoteErr(t, err, ErrAccess)
}

func TestLossyLink(t *testing.T) {
	// 10% loss on every frame in both directions (including ARP).
	f := newFixture(t, apptest.Options{Impair: &link.ImpairConfig{Seed: 7, Loss: 0.10}}, ServerConfig{Timeout: 20 * time.Millisecond, Retries: 12})
	ctx := context.Background()
	data := randBytes(300000, 42)
	f.put(t, "lossy", data)
	cfg := ClientConfig{Blksize: 1024, Tsize: true, Timeout: 20 * time.Millisecond, Retries: 12}
	var got bytes.Buffer
	res, err := Get(ctx, f.p.A, srvAddr, "lossy", &got, cfg)
	if err != nil {
		t.Fatalf("get: %v (%+v)", err, res)
	}
	sameSHA(t, "get through loss", got.Bytes(), data)
	res2, err := Put(ctx, f.p.A, srvAddr, "lossy-up", bytes.NewReader(data), int64(len(data)), cfg)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	stored, err := os.ReadFile(filepath.Join(f.root, "lossy-up"))
	if err != nil {
		t.Fatal(err)
	}
	sameSHA(t, "put through loss", stored, data)
	if res.Retransmits+res2.Retransmits == 0 {
		t.Fatal("no retransmissions through a lossy link: loss not exercised")
	}
	t.Logf("client retransmits: get %d, put %d", res.Retransmits, res2.Retransmits)
}

func TestBlockRollover(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	// 8-byte blocks: past block 65535 the number wraps to 0. The link is
	// clean, so the timeout only matters when a loaded machine (-race)
	// stalls a side: a generous one keeps that from failing the test.
	slow := ClientConfig{Blksize: 8, Timeout: time.Second}
	data := randBytes(65536*8+77, 5)
	f.put(t, "big", data)
	var got bytes.Buffer
	res, err := Get(context.Background(), f.p.A, srvAddr, "big", &got, slow)
	if err != nil {
		t.Fatal(err)
	}
	sameSHA(t, "rollover get", got.Bytes(), data)
	if res.Blksize != 8 {
		t.Fatalf("blksize %d", res.Blksize)
	}
	if _, err := Put(context.Background(), f.p.A, srvAddr, "big-up", bytes.NewReader(data), int64(len(data)), slow); err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(filepath.Join(f.root, "big-up"))
	sameSHA(t, "rollover put", stored, data)
}

// rawClient speaks TFTP by hand to check the server's packets exactly.
type rawClient struct {
	t   *testing.T
	so  *socket.Socket
	buf []byte
}

func (r *rawClient) sendTo(p []byte, to socket.Sockaddr) {
	if _, err := r.so.SendTo(p, 0, to); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) recv() (op, num uint16, from socket.Sockaddr, payload []byte) {
	k, from, err := r.so.RecvFrom(r.buf, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	if k < 4 {
		r.t.Fatalf("short packet %x", r.buf[:k])
	}
	return binary.BigEndian.Uint16(r.buf), binary.BigEndian.Uint16(r.buf[2:]), from, r.buf[4:k]
}

func TestNoSorcerersApprentice(t *testing.T) {
	// A long server timeout: every packet seen below answers one of ours.
	f := newFixture(t, apptest.Options{}, ServerConfig{Timeout: time.Minute})
	f.put(t, "f", randBytes(512*4, 3))
	rc := &rawClient{t: t, so: apptest.UDP(t, f.p.A), buf: make([]byte, 2000)}
	rc.sendTo(appendRequest(nil, opRRQ, "f", "octet", nil), socket.InetAddr(srvAddr))
	op, n, tid, _ := rc.recv()
	if op != opDATA || n != 1 {
		t.Fatalf("got op %d block %d", op, n)
	}
	if tid.(*socket.SockaddrInet).AddrPort.Port() == Port {
		t.Fatal("the transfer did not move to its own port")
	}
	rc.sendTo(appendACK(nil, 1), tid)
	rc.sendTo(appendACK(nil, 1), tid) // duplicate (as if delayed in the net)
	op, n, _, _ = rc.recv()
	if op != opDATA || n != 2 {
		t.Fatalf("got op %d block %d, want DATA 2", op, n)
	}
	rc.sendTo(appendACK(nil, 2), tid)
	// Had the duplicate ACK 1 been answered, a second DATA 2 would come first.
	op, n, _, _ = rc.recv()
	if op != opDATA || n != 3 {
		t.Fatalf("got op %d block %d, want DATA 3 (a duplicate ACK was answered)", op, n)
	}
	// A packet from a foreign TID gets error 5 and does not disturb the transfer.
	other := &rawClient{t: t, so: apptest.UDP(t, f.p.A), buf: make([]byte, 2000)}
	other.sendTo(appendACK(nil, 3), tid)
	op, n, _, _ = other.recv()
	if op != opERROR || n != ErrUnknownTID {
		t.Fatalf("foreign TID got op %d code %d", op, n)
	}
	rc.sendTo(appendACK(nil, 3), tid)
	op, n, _, _ = rc.recv()
	if op != opDATA || n != 4 {
		t.Fatalf("got op %d block %d, want DATA 4", op, n)
	}
	rc.sendTo(appendACK(nil, 4), tid)
	op, n, _, p := rc.recv()
	if op != opDATA || n != 5 || len(p) != 0 {
		t.Fatalf("got op %d block %d (%d bytes), want the empty DATA 5", op, n, len(p))
	}
	rc.sendTo(appendACK(nil, 5), tid)
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	rc := &rawClient{t: t, so: apptest.UDP(t, f.p.A), buf: make([]byte, 2000)}
	for _, p := range [][]byte{
		{0},
		{0, 9, 'x', 0},
		{0, 1, 'f'},                              // no terminator
		{0, 1, 'f', 0},                           // no mode
		{0, 1, 0, 'o', 0},                        // empty name
		{0, 1, 'f', 0, 'o', 0, 'b', 'l', 'k', 0}, // option without value
	} {
		rc.sendTo(p, socket.InetAddr(srvAddr))
		op, code, _, _ := rc.recv()
		if op != opERROR || code != ErrIllegalOp {
			t.Fatalf("%x: got op %d code %d", p, op, code)
		}
	}
	rc.sendTo(appendRequest(nil, opRRQ, "f", "mail", nil), socket.InetAddr(srvAddr))
	if op, code, _, _ := rc.recv(); op != opERROR || code != ErrIllegalOp {
		t.Fatalf("mail mode: op %d code %d", op, code)
	}
	if f.srv.BadRequests.Load() != 6 {
		t.Fatalf("bad requests counted %d", f.srv.BadRequests.Load())
	}
}

func TestConcurrentAndClose(t *testing.T) {
	f := newFixture(t, apptest.Options{}, ServerConfig{})
	data := randBytes(200000, 11)
	f.put(t, "c", data)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			var got bytes.Buffer
			_, err := Get(context.Background(), f.p.A, srvAddr, "c", &got, ClientConfig{Blksize: 1400, Timeout: fast})
			if err == nil && sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
				err = errors.New("content differs")
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A transfer cancelled by its context ends with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Get(ctx, f.p.A, srvAddr, "c", new(bytes.Buffer), ClientConfig{Timeout: fast}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: %v", err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(appendRequest(nil, opRRQ, "file", "octet", [][2]string{{"blksize", "1024"}, {"tsize", "0"}}))
	f.Add([]byte{0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRequest(b)
		parseOptions(b)
		parseError(b)
	})
}

// TestServeRequestRace sends requests from a goroutine that started before
// Serve, so nothing orders Serve's own bookkeeping before the server
// goroutine handles the first request: under -race this catches a field
// that Serve writes after starting the goroutine that reads it.
func TestServeRequestRace(t *testing.T) {
	p := apptest.New(t, apptest.Options{})
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	so := apptest.UDP(t, p.A)
	so.SetTimeout(20 * time.Millisecond) // the retry interval, not an assertion
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 600)
		req := appendRequest(nil, opRRQ, "f", "octet", nil)
		// Retried until the server answers: the first tries may arrive
		// before it is bound. Bounded so a broken server ends the test.
		for i := 0; i < 1000; i++ {
			if _, err := so.SendTo(req, 0, socket.InetAddr(srvAddr)); err != nil {
				done <- err
				return
			}
			k, _, err := so.RecvFrom(buf, 0)
			if err != nil {
				continue // timeout, or a port unreachable before the bind
			}
			if k < 4 || binary.BigEndian.Uint16(buf) != opDATA {
				done <- errors.New("answer is not DATA")
				return
			}
			done <- nil
			return
		}
		done <- errors.New("no answer")
	}()
	srv, err := Serve(p.B, apptest.Any(Port), ServerConfig{Root: root, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
