// Package control is the control protocol of a running sockstack host: a
// Unix socket of the host OS on which `sockstack netstat` and `sockstack
// stats` ask a `sockstack up` process for its socket table and counters.
//
// The protocol is one request line ("netstat", "stats" or "info") and one
// JSON document in reply, after which the server closes the connection.
// It is deliberately tiny: a request per connection needs no framing.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
)

// SocketInfo is one row of the socket table, like a line of `netstat -an`.
type SocketInfo struct {
	FD     int    `json:"fd"`
	Proto  string `json:"proto"` // tcp, udp, icmp, raw, unix, packet
	Local  string `json:"local"`
	Remote string `json:"remote"`
	State  string `json:"state"`
	// RecvQ and SendQ are bytes queued; -1 when the socket layer does not
	// tell (see Table).
	RecvQ int `json:"recv_q"`
	SendQ int `json:"send_q"`
}

// Info describes the host: interfaces, addresses, routes.
type Info struct {
	Name   string   `json:"name"`
	NICs   []string `json:"nics"`
	Routes []string `json:"routes"`
	Uptime string   `json:"uptime"`
}

// Source is what a server reports on.
type Source struct {
	Net     *socket.Net
	Started time.Time
}

// Table lists the sockets of n: TCP from the protocol's own table (so
// TIME_WAIT and not yet accepted connections show, like netstat), the
// rest from the socket layer. Queues of datagram sockets are -1: the
// socket API does not expose them yet.
func Table(n *socket.Net) []SocketInfo {
	var out []SocketInfo
	for _, c := range n.Stack().TCP.Table() {
		remote := c.Remote.String()
		if c.State == tcp.StateListen || !c.Remote.IsValid() {
			remote = anyPeer(c.Local.Addr().Is6() && !c.Local.Addr().Is4In6())
		}
		out = append(out, SocketInfo{FD: -1, Proto: "tcp", Local: c.Local.String(), Remote: remote,
			State: c.State.String(), RecvQ: c.RecvQ, SendQ: c.SendQ})
	}
	for _, s := range n.Sockets() {
		if (s.Family() == socket.AF_INET || s.Family() == socket.AF_INET6) && s.Type() == socket.SOCK_STREAM {
			continue // listed above, from TCP's table
		}
		si := SocketInfo{FD: s.Fileno(), RecvQ: -1, SendQ: -1, Local: "-", Remote: "-"}
		si.Proto = protoName(s)
		if a, err := s.GetSockName(); err == nil && a != nil {
			si.Local = a.String()
		}
		if a, err := s.GetPeerName(); err == nil && a != nil {
			si.Remote = a.String()
			si.State = "ESTABLISHED" // a connected datagram socket, as ss shows it
		} else if s.Family() == socket.AF_INET || s.Family() == socket.AF_INET6 {
			si.Remote = anyPeer(s.Family() == socket.AF_INET6)
		}
		out = append(out, si)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Proto != out[j].Proto {
			return protoRank(out[i].Proto) < protoRank(out[j].Proto)
		}
		if out[i].Local != out[j].Local {
			return out[i].Local < out[j].Local
		}
		return out[i].Remote < out[j].Remote
	})
	return out
}

// anyPeer is the Foreign Address of a socket with no peer.
func anyPeer(v6 bool) string {
	if v6 {
		return "[::]:*"
	}
	return "0.0.0.0:*"
}

// protoRank orders rows like netstat: tcp, udp, then the rest.
func protoRank(p string) int {
	return strings.Index("tcp udp icmp raw packet unix", p)
}

func protoName(s *socket.Socket) string {
	switch s.Family() {
	case socket.AF_UNIX:
		return "unix"
	case socket.AF_PACKET:
		return "packet"
	}
	switch {
	case s.Type() == socket.SOCK_STREAM:
		return "tcp"
	case s.Type() == socket.SOCK_RAW:
		return "raw"
	case s.Proto() == socket.IPPROTO_ICMP:
		return "icmp"
	}
	return "udp"
}

// Stats lists the stack's counters followed by TCP's, in one list.
func Stats(st *stack.Stack) []stack.Stat {
	out := st.Stats().Snapshot()
	ts := st.TCP.Stats()
	v := reflect.ValueOf(ts)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).Kind() == reflect.Uint64 {
			out = append(out, stack.Stat{Section: "TCP", Name: v.Type().Field(i).Name, Value: v.Field(i).Uint()})
		}
	}
	return out
}

// HostInfo describes the stack under n.
func HostInfo(src Source) Info {
	st := src.Net.Stack()
	in := Info{Name: st.Name()}
	for _, nic := range st.NICs() {
		var as []string
		for _, a := range nic.Addrs() {
			as = append(as, a.String())
		}
		in.NICs = append(in.NICs, fmt.Sprintf("%s mtu %d %v %s", nic.Name(), nic.MTU(), nic.HardwareAddr(), strings.Join(as, " ")))
	}
	for _, r := range st.Routes() {
		in.Routes = append(in.Routes, r.String())
	}
	if !src.Started.IsZero() {
		in.Uptime = time.Since(src.Started).Round(time.Second).String()
	}
	return in
}

// Server answers control requests on a Unix socket.
type Server struct {
	ln   net.Listener
	path string
	src  Source
	wg   sync.WaitGroup
}

// Listen creates the Unix socket at path (replacing a stale one) and
// serves it until Close.
func Listen(path string, src Source) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A socket nobody answers on is left over from a killed process.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use by a running process", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{ln: ln, path: path, src: src}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the socket's file name.
func (s *Server) Path() string { return s.path }

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	var reply any
	switch strings.TrimSpace(line) {
	case "netstat":
		reply = Table(s.src.Net)
	case "stats":
		reply = Stats(s.src.Net.Stack())
	case "info":
		reply = HostInfo(s.src)
	default:
		reply = map[string]string{"error": fmt.Sprintf("unknown request %q (netstat, stats, info)", strings.TrimSpace(line))}
	}
	json.NewEncoder(c).Encode(reply)
}

// Close stops serving and removes the socket file.
func (s *Server) Close() error {
	err := s.ln.Close() // net.UnixListener removes the file it created
	s.wg.Wait()
	return err
}

// Query sends one request to the server at path and decodes the reply
// into out.
func Query(path, req string, out any) error {
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		return fmt.Errorf("control: %w (is `sockstack up --control %s` running?)", err, path)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	data, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return errors.New("control: " + e.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control: bad reply: %w", err)
	}
	return nil
}

// FormatNetstat prints a table like `netstat -an`.
func FormatNetstat(w io.Writer, rows []SocketInfo) {
	fmt.Fprintf(w, "%-6s %6s %6s %-22s %-22s %s\n", "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State")
	for _, r := range rows {
		fmt.Fprintf(w, "%-6s %6s %6s %-22s %-22s %s\n", r.Proto, q(r.RecvQ), q(r.SendQ), r.Local, r.Remote, r.State)
	}
}

func q(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// FormatStats prints counters grouped by section like `netstat -s`; zero
// counters are left out unless all is set.
func FormatStats(w io.Writer, stats []stack.Stat, all bool) {
	sec := ""
	for _, s := range stats {
		if s.Value == 0 && !all {
			continue
		}
		if s.Section != sec {
			sec = s.Section
			fmt.Fprintf(w, "%s:\n", sec)
		}
		fmt.Fprintf(w, "    %-24s %d\n", s.Name, s.Value)
	}
}
