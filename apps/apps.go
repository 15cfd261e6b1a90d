// Package apps starts the stack's network services from a list such as
// "echo:7,discard:9,daytime:13,chargen:19,chat:7321,http:80,tftp:69,dns:53".
// Each service lives in its own package (apps/echo, apps/tftp, ...),
// written against the socket API only; other services plug in through
// Options.Hooks.
package apps

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/apps/chargen"
	"github.com/sockstack/sockstack/apps/chat"
	"github.com/sockstack/sockstack/apps/daytime"
	"github.com/sockstack/sockstack/apps/discard"
	"github.com/sockstack/sockstack/apps/dns"
	"github.com/sockstack/sockstack/apps/echo"
	"github.com/sockstack/sockstack/apps/httpd"
	"github.com/sockstack/sockstack/apps/internal/server"
	"github.com/sockstack/sockstack/apps/tftp"
	"github.com/sockstack/sockstack/socket"
)

// Options apply to every service Start starts.
type Options struct {
	Addr        netip.Addr    // address to bind; default 0.0.0.0
	Root        string        // directory for http (/) and tftp
	TFTPRoot    string        // tftp's directory when not Root
	TFTPWrite   bool          // allow TFTP write requests (default read-only)
	Zone        string        // dns: a file in /etc/hosts form answered besides the stack's hosts table
	MaxClients  int           // per service; default 64
	IdleTimeout time.Duration // TCP connections and chat members; default 5 minutes
	Logf        func(format string, args ...any)
	// Hooks adds services by name (for example "dns" from apps/dns); a hook
	// of the same name as a built-in service replaces it.
	Hooks map[string]Starter
}

// Starter starts one service on addr and returns what stops it.
type Starter func(n *socket.Net, addr netip.AddrPort, opts Options) (io.Closer, error)

// DefaultPorts are the ports used when the list gives a bare name.
var DefaultPorts = map[string]uint16{
	"echo": echo.Port, "discard": discard.Port, "daytime": daytime.Port, "chargen": chargen.Port,
	"chat": chat.Port, "http": httpd.Port, "tftp": tftp.Port, "dns": 53,
}

func (o Options) server() server.Config {
	return server.Config{MaxClients: o.MaxClients, IdleTimeout: o.IdleTimeout}
}

// simple starts a TCP+UDP service; when TCP is not available yet
// (ENOSYS) it runs over UDP alone and says so.
func simple(name string, serve func(*socket.Net, netip.AddrPort, server.Config) (*server.Server, error)) Starter {
	return func(n *socket.Net, addr netip.AddrPort, o Options) (io.Closer, error) {
		s, err := serve(n, addr, o.server())
		if errors.Is(err, syscall.ENOSYS) {
			cfg := o.server()
			cfg.NoTCP = true
			o.Logf("%s: TCP not available (%v); serving UDP only", name, err)
			s, err = serve(n, addr, cfg)
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

var builtin = map[string]Starter{
	"echo":    simple("echo", echo.Serve),
	"discard": simple("discard", discard.Serve),
	"daytime": simple("daytime", daytime.Serve),
	"chargen": simple("chargen", chargen.Serve),
	"chat": func(n *socket.Net, addr netip.AddrPort, o Options) (io.Closer, error) {
		cfg := chat.Config{MaxClients: o.MaxClients, ClientTimeout: o.IdleTimeout}
		s, err := chat.Serve(n, addr, cfg)
		if errors.Is(err, syscall.ENOSYS) {
			o.Logf("chat: TCP not available (%v); serving UDP only", err)
			cfg.NoTCP = true
			s, err = chat.Serve(n, addr, cfg)
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	},
	"http": func(n *socket.Net, addr netip.AddrPort, o Options) (io.Closer, error) {
		s, err := httpd.Serve(n, addr, httpd.Config{Root: o.Root, MaxConns: o.MaxClients})
		if err != nil {
			return nil, err
		}
		return s, nil
	},
	"dns": func(n *socket.Net, addr netip.AddrPort, o Options) (io.Closer, error) {
		// The stack's hosts table first (what the host itself believes),
		// then the zone file.
		rec := dns.Chain{n.Hosts()}
		if o.Zone != "" {
			z, err := dns.LoadZone(o.Zone)
			if err != nil {
				return nil, err
			}
			rec = append(rec, z)
		}
		s, err := dns.Serve(n, addr, rec)
		if err != nil {
			return nil, err
		}
		return closeFunc(func() error { s.Close(); return nil }), nil
	},
	"tftp": func(n *socket.Net, addr netip.AddrPort, o Options) (io.Closer, error) {
		root := o.TFTPRoot
		if root == "" {
			root = o.Root
		}
		if root == "" {
			return nil, errors.New("tftp needs a root directory (--root)")
		}
		s, err := tftp.Serve(n, addr, tftp.ServerConfig{Root: root, ReadOnly: !o.TFTPWrite, MaxTransfers: o.MaxClients, Logf: o.Logf})
		if err != nil {
			return nil, err
		}
		return s, nil
	},
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// Names lists the services Start knows (built-in and hooks).
func Names(hooks map[string]Starter) []string {
	var out []string
	for k := range builtin {
		out = append(out, k)
	}
	for k := range hooks {
		if _, ok := builtin[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Service is one entry of a list.
type Service struct {
	Name string
	Port uint16
}

// Parse reads "name:port,name,..." (a bare name takes its DefaultPorts
// port). Names are checked against the built-in ones and hooks.
func Parse(spec string, hooks map[string]Starter) ([]Service, error) {
	var out []Service
	seen := map[Service]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, portStr, hasPort := strings.Cut(item, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if _, ok := builtin[name]; !ok {
			if _, ok := hooks[name]; !ok {
				return nil, fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(Names(hooks), ", "))
			}
		}
		port, ok := DefaultPorts[name]
		if hasPort {
			p, err := strconv.ParseUint(strings.TrimSpace(portStr), 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("service %s: bad port %q", name, portStr)
			}
			port = uint16(p)
		} else if !ok {
			return nil, fmt.Errorf("service %s: no default port, write %s:PORT", name, name)
		}
		sv := Service{name, port}
		if seen[sv] {
			return nil, fmt.Errorf("service %s:%d given twice", name, port)
		}
		seen[sv] = true
		out = append(out, sv)
	}
	if len(out) == 0 {
		return nil, errors.New("no services given")
	}
	return out, nil
}

// Start parses spec and starts every service on n. On an error the ones
// already started are stopped again. stop stops them all and waits for
// their goroutines; it may be called more than once.
func Start(n *socket.Net, spec string, opts Options) (stop func(), err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if !opts.Addr.IsValid() {
		opts.Addr = netip.IPv4Unspecified()
	}
	list, err := Parse(spec, opts.Hooks)
	if err != nil {
		return nil, err
	}
	var running []io.Closer
	stopAll := func() {
		for i := len(running) - 1; i >= 0; i-- {
			running[i].Close()
		}
		running = nil
	}
	for _, sv := range list {
		start := opts.Hooks[sv.Name]
		if start == nil {
			start = builtin[sv.Name]
		}
		c, err := start(n, netip.AddrPortFrom(opts.Addr, sv.Port), opts)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("%s:%d: %w", sv.Name, sv.Port, err)
		}
		opts.Logf("%s listening on port %d", sv.Name, sv.Port)
		running = append(running, c)
	}
	done := false
	return func() {
		if !done {
			done = true
			stopAll()
		}
	}, nil
}
