// Package httpd runs Go's net/http server on a sockstack host: a status
// page with the socket table and the counters, and a directory of files.
package httpd

import (
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/socket"
)

// Port is the usual HTTP port.
const Port = 80

// Config configures Serve.
type Config struct {
	Root     string // directory served at /; empty: no files (the status page at /)
	MaxConns int    // connections at once; default 64
	// MaxPerSource caps one source address's connections at once, so a
	// single slow (slowloris) source cannot hold every slot; default 16,
	// negative: no cap. Connections over it are closed at once (counted).
	MaxPerSource int
	ReadTimeout  time.Duration // whole request, default 30s
	IdleTimeout  time.Duration // keep-alive, default 60s
}

// Row is one line of the socket table.
type Row struct {
	Proto, Local, Remote, State string
	RecvQ, SendQ                int
}

// Table lists the TCP sockets (from the TCP protocol's table) and the
// datagram sockets (from the socket layer), sorted by protocol and local
// address.
func Table(n *socket.Net) []Row {
	var rows []Row
	for _, c := range n.Stack().TCP.Table() {
		proto := "tcp"
		if c.Inet6 || c.Local.Addr().Is6() {
			proto = "tcp6" // as netstat -an names AF_INET6 sockets
		}
		rows = append(rows, Row{Proto: proto, Local: addrStr(c.Local), Remote: addrStr(c.Remote),
			State: c.State.String(), RecvQ: c.RecvQ, SendQ: c.SendQ})
	}
	for _, s := range n.Sockets() {
		fam := s.Family()
		if fam != socket.AF_INET && fam != socket.AF_INET6 || s.Type() == socket.SOCK_STREAM {
			continue
		}
		proto := "udp"
		switch {
		case s.Type() == socket.SOCK_RAW:
			proto = "raw"
		case s.Proto() == socket.IPPROTO_ICMP:
			proto = "icmp"
		case s.Proto() == socket.IPPROTO_ICMPV6:
			proto = "icmp" // "icmp6" below
		}
		if fam == socket.AF_INET6 {
			proto += "6"
		}
		r := Row{Proto: proto, Local: "*:*", Remote: "*:*"}
		if la, err := s.GetSockName(); err == nil {
			r.Local = sockStr(la)
		}
		if ra, err := s.GetPeerName(); err == nil {
			r.Remote = sockStr(ra)
			r.State = "ESTABLISHED"
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Proto != rows[j].Proto {
			return rows[i].Proto > rows[j].Proto // tcp first
		}
		return rows[i].Local < rows[j].Local
	})
	return rows
}

func addrStr(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "*:*"
	}
	if ap.Addr().IsUnspecified() {
		if ap.Port() == 0 {
			return "*:*"
		}
		return fmt.Sprintf("*:%d", ap.Port())
	}
	return ap.String()
}

func sockStr(sa socket.Sockaddr) string {
	if a, ok := sa.(*socket.SockaddrInet); ok {
		return addrStr(a.AddrPort)
	}
	return sa.String()
}

// Stat is one counter.
type Stat struct {
	Section, Name string
	Value         uint64
}

// Stats lists the stack's counters and TCP's (non-zero ones only when
// nonZero).
func Stats(n *socket.Net, nonZero bool) []Stat {
	var out []Stat
	for _, s := range n.Stack().Stats().Snapshot() {
		if !nonZero || s.Value != 0 {
			out = append(out, Stat{s.Section, s.Name, s.Value})
		}
	}
	ts := n.Stack().TCP.Stats()
	out = append(out, tcpStats(ts, nonZero)...)
	return out
}

// WriteText writes the socket table and the counters as plain text, like
// netstat -an and netstat -s.
func WriteText(w io.Writer, n *socket.Net) {
	fmt.Fprintf(w, "%-5s %-22s %-22s %-12s %6s %6s\n", "Proto", "Local", "Remote", "State", "Recv-Q", "Send-Q")
	for _, r := range Table(n) {
		fmt.Fprintf(w, "%-5s %-22s %-22s %-12s %6d %6d\n", r.Proto, r.Local, r.Remote, r.State, r.RecvQ, r.SendQ)
	}
	fmt.Fprintln(w)
	sec := ""
	for _, s := range Stats(n, false) {
		if s.Section != sec {
			sec = s.Section
			fmt.Fprintf(w, "%s:\n", sec)
		}
		fmt.Fprintf(w, "    %-28s %d\n", s.Name, s.Value)
	}
}

var page = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Name}} — sockstack</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}</style>
</head><body>
<h1>{{.Name}}</h1>
<p>Served by Go's net/http over the sockstack user-space TCP/IP stack. {{if .Files}}<a href="/">Files</a> · {{end}}<a href="/stats">plain text</a></p>
<h2>Sockets</h2>
<table><tr><th>Proto</th><th>Local</th><th>Remote</th><th>State</th><th>Recv-Q</th><th>Send-Q</th></tr>
{{range .Rows}}<tr><td>{{.Proto}}</td><td>{{.Local}}</td><td>{{.Remote}}</td><td>{{.State}}</td><td class="n">{{.RecvQ}}</td><td class="n">{{.SendQ}}</td></tr>
{{end}}</table>
<h2>Counters (non-zero)</h2>
<table><tr><th>Section</th><th>Counter</th><th>Value</th></tr>
{{range .Stats}}<tr><td>{{.Section}}</td><td>{{.Name}}</td><td class="n">{{.Value}}</td></tr>
{{end}}</table>
</body></html>
`))

// Handler serves the status page at "/status" (HTML) and "/stats"
// (plain text), and, when root is not empty, the files under root at "/"
// as python3 -m http.server does: index.html where there is one, else a
// directory listing. Without root the status page is at "/" too.
func Handler(n *socket.Net, root string) http.Handler {
	mux := http.NewServeMux()
	status := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, struct {
			Name  string
			Files bool
			Rows  []Row
			Stats []Stat
		}{n.Stack().Name(), root != "", Table(n), Stats(n, true)})
	}
	mux.HandleFunc("GET /status", status)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		WriteText(w, n)
	})
	if root != "" {
		mux.Handle("GET /", files(root))
	} else {
		mux.HandleFunc("GET /{$}", status)
	}
	return mux
}

// files serves root: http.FileServer over http.Dir (which never leaves
// root) for files and index.html, and a listing in python3 -m
// http.server's form for a directory without one.
func files(root string) http.Handler {
	dir := http.Dir(root)
	fs := http.FileServer(dir)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasSuffix(p, "/") {
			fs.ServeHTTP(w, r) // files, and the redirect of a directory to DIR/
			return
		}
		if f, err := dir.Open(path.Join(p, "index.html")); err == nil {
			f.Close()
			fs.ServeHTTP(w, r)
			return
		}
		d, err := dir.Open(p)
		if err != nil {
			http.Error(w, "File not found", http.StatusNotFound)
			return
		}
		defer d.Close()
		ents, err := d.Readdir(-1)
		if err != nil {
			http.Error(w, "No permission to list directory", http.StatusNotFound)
			return
		}
		sort.Slice(ents, func(i, j int) bool { return strings.ToLower(ents[i].Name()) < strings.ToLower(ents[j].Name()) })
		title := html.EscapeString("Directory listing for " + p)
		var b strings.Builder
		fmt.Fprintf(&b, "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n</head>\n<body>\n<h1>%s</h1>\n<hr>\n<ul>\n", title, title)
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", (&url.URL{Path: name}).EscapedPath(), html.EscapeString(name))
		}
		b.WriteString("</ul>\n<hr>\n</body>\n</html>\n")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, b.String())
	})
}

// Server is a running HTTP server; Close stops it.
type Server struct {
	srv  *http.Server
	ln   *limitListener
	done chan error
}

// Refused is how many connections were closed at once because their
// source already had MaxPerSource open.
func (s *Server) Refused() uint64 { return s.ln.refused.Load() }

// Serve listens on addr (0.0.0.0:80 usually) through the stack and serves
// Handler(n, cfg.Root).
func Serve(n *socket.Net, addr netip.AddrPort, cfg Config) (*Server, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.MaxPerSource == 0 {
		cfg.MaxPerSource = 16
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6" // an IPv6 address (issue 9): [::] serves IPv6
	}
	ln, err := netconn.Listen(n, network, addr.String())
	if err != nil {
		return nil, err
	}
	s := &Server{
		srv: &http.Server{
			Handler:           Handler(n, cfg.Root),
			ReadHeaderTimeout: cfg.ReadTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      5 * time.Minute,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
		},
		ln:   &limitListener{Listener: ln, sem: make(chan struct{}, cfg.MaxConns), perSource: cfg.MaxPerSource},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(s.ln) }()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close closes the listener and every connection, and waits for Serve.
func (s *Server) Close() error {
	err := s.srv.Close()
	if e := <-s.done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// limitListener holds at most cap(sem) connections open at once; Accept
// waits for a free slot. A source address with perSource connections open
// gets its next ones closed on accept (the slot goes to the next in line),
// so slots are not first come, first served across sources.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	once      sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	perSource int // <= 0: no cap
	mu        sync.Mutex
	bySource  map[netip.Addr]int
	refused   atomic.Uint64
}

// admit counts a connection from src, or reports that src is at its cap.
func (l *limitListener) admit(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource == nil {
		l.bySource = map[netip.Addr]int{}
	}
	if l.bySource[src] >= l.perSource {
		return false
	}
	l.bySource[src]++
	return true
}

func (l *limitListener) leave(src netip.Addr) {
	l.mu.Lock()
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
}

// source is the remote address of c (invalid when unknown: no cap).
func source(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ap := a.AddrPort(); ap.IsValid() {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.once.Do(func() { l.stop = make(chan struct{}) })
	select {
	case l.sem <- struct{}{}:
	case <-l.stop:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		src := source(c)
		if l.perSource <= 0 || !src.IsValid() {
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		}
		if !l.admit(src) {
			l.refused.Add(1)
			c.Close() // keep the slot for the next connection in line
			continue
		}
		return &limitConn{Conn: c, release: func() { l.leave(src); <-l.sem }}, nil
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { l.stop = make(chan struct{}) })
	l.closeOnce.Do(func() { close(l.stop) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
