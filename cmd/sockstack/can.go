package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func init() {
	extraCommands = append(extraCommands, cansendCmd, candumpCmd, cangenCmd, canupCmd)
}

// canFlags are the flags every CAN tool shares: the bus's bridge to
// other processes, its bit rate and a capture.
type canFlags struct {
	listen, peer string
	bitrate      int
	pcap         string
}

func (f *canFlags) register(c *cobra.Command) {
	f.registerBridge(c)
	c.Flags().IntVar(&f.bitrate, "bitrate", 0, "model the bus at this bit rate (bit/s); 0: frames take no time")
	c.Flags().StringVar(&f.pcap, "pcap", "", "write the bus's frames to this pcap file (LINKTYPE_CAN_SOCKETCAN)")
}

// registerBridge adds only the bridge flags (sockstack up has its own --pcap).
func (f *canFlags) registerBridge(c *cobra.Command) {
	c.Flags().StringVar(&f.listen, "bridge-listen", "", "carry the bus over UDP: listen on HOST:PORT (caneth format)")
	c.Flags().StringVar(&f.peer, "bridge-peer", "", "carry the bus over UDP: send to HOST:PORT")
}

// bridged reports whether a bridge flag was given.
func (f *canFlags) bridged() bool { return f.listen != "" || f.peer != "" }

// canBus is a bus joined to a host: the nodes given to attach are the
// host's CAN interfaces; the capture and the UDP bridge to other
// processes are optional.
type canBus struct {
	bus    *link.CANBus
	bridge *link.CANBridge
	pcap   *link.CANPcap
	file   *os.File
}

// canEnv is one process's view of a bus: a host of its own whose CAN
// interfaces are the named nodes, and the bridge joining it to other
// processes.
type canEnv struct {
	net *socket.Net
	st  *stack.Stack
	*canBus
}

func (f *canFlags) open(ifnames ...string) (*canEnv, error) {
	st := stack.New(stack.Options{Name: "can"})
	n := socket.New(st)
	b, err := f.attach(n, ifnames...)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &canEnv{net: n, st: st, canBus: b}, nil
}

// attach makes a bus with nodes ifnames ("any" skipped, names n already
// has reused) as n's CAN interfaces, with the capture and bridge f asks
// for; the CAN tools and sockstack up share it.
func (f *canFlags) attach(n *socket.Net, ifnames ...string) (*canBus, error) {
	b := &canBus{bus: link.NewCANBus("can", link.CANBusOptions{Bitrate: f.bitrate})}
	for _, name := range ifnames {
		if name == "any" {
			continue
		}
		if _, err := n.CANIfindex(name); err == nil {
			continue
		}
		n.AttachCAN(b.bus.Attach(name))
	}
	if f.pcap != "" {
		file, err := os.Create(f.pcap)
		if err != nil {
			b.close()
			return nil, err
		}
		b.file = file
		if b.pcap, err = link.NewCANPcap(b.bus, file, link.PcapOptions{Nanosecond: true}); err != nil {
			b.close()
			return nil, err
		}
	}
	if f.bridged() {
		l := f.listen
		if l == "" {
			l = "127.0.0.1:0"
		}
		br, err := link.NewCANBridge(b.bus, "bridge", l, f.peer)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.bridge = br
		// Announced on stderr, so scripts (and tests) learn the port.
		fmt.Fprintf(os.Stderr, "bridge: listening on udp %s\n", br.LocalAddr())
	}
	return b, nil
}

func (b *canBus) close() {
	if b.bridge != nil {
		b.bridge.Close()
	}
	if b.pcap != nil {
		b.pcap.Close()
	}
	if b.file != nil {
		b.file.Close()
	}
}

func (e *canEnv) close() {
	e.canBus.close()
	e.st.Close()
}

// rawSocket opens a CAN_RAW socket bound to ifname ("any": all).
func (e *canEnv) rawSocket(ifname string) (*socket.Socket, error) {
	s, err := e.net.Socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
	if err != nil {
		return nil, err
	}
	a := &socket.SockaddrCAN{Ifname: ifname}
	if ifname == "any" {
		a = &socket.SockaddrCAN{}
	}
	if err := s.Bind(a); err != nil {
		s.Close()
		return nil, fmt.Errorf("bind %s: %w", ifname, err)
	}
	return s, nil
}

// parseCANFrame reads can-utils' frame syntax:
//
//	<can_id>#{data}          classic data frame (3 hex digits: 11-bit id, 8: 29-bit)
//	<can_id>#R{len}          remote frame
//	<can_id>##<flags>{data}  CAN FD frame, flags a hex digit (1 BRS, 2 ESI)
//	...#{8 bytes}_{dlc}      classic frame with a DLC of 9..F
//
// Data bytes are hex pairs, optionally separated by dots.
func parseCANFrame(s string) (wire.CANFrame, error) {
	var f wire.CANFrame
	bad := fmt.Errorf("bad frame %q: want <can_id>#{data}, <can_id>#R{len} or <can_id>##<flags>{data}", s)
	i := strings.IndexByte(s, '#')
	if i != 3 && i != 8 {
		return f, bad
	}
	id, err := strconv.ParseUint(s[:i], 16, 32)
	if err != nil {
		return f, bad
	}
	if i == 3 {
		if id > uint64(wire.CANSffMask) {
			return f, bad
		}
		f.ID = uint32(id)
	} else {
		f.ID = uint32(id)
		if f.ID&wire.CANErrFlag == 0 {
			f.ID |= wire.CANEffFlag
		}
	}
	rest := s[i+1:]
	max := wire.CANMaxDLen
	switch {
	case strings.HasPrefix(rest, "#"):
		if len(rest) < 2 {
			return f, bad
		}
		fl, err := strconv.ParseUint(rest[1:2], 16, 8)
		if err != nil {
			return f, bad
		}
		f.Flags = wire.CANFDFDF | uint8(fl)&(wire.CANFDBRS|wire.CANFDESI)
		rest = rest[2:]
		max = wire.CANFDMaxDLen
	case strings.HasPrefix(rest, "R") || strings.HasPrefix(rest, "r"):
		f.ID |= wire.CANRtrFlag
		if len(rest) > 1 {
			n, err := strconv.ParseUint(rest[1:2], 10, 8)
			if err != nil || n > 8 {
				return f, bad
			}
			f.Len = uint8(n)
		}
		return f, nil
	}
	dlc := ""
	if k := strings.IndexByte(rest, '_'); k >= 0 && max == wire.CANMaxDLen {
		rest, dlc = rest[:k], rest[k+1:]
	}
	n := 0
	for j := 0; j < len(rest); {
		if rest[j] == '.' {
			j++
			continue
		}
		if j+2 > len(rest) || n == max {
			return f, bad
		}
		v, err := strconv.ParseUint(rest[j:j+2], 16, 8)
		if err != nil {
			return f, bad
		}
		f.Data[n] = byte(v)
		n++
		j += 2
	}
	if f.IsFD() && !wire.CANFDValidLen(n) {
		// Like a controller, pad to the next valid CAN FD length.
		n = wire.CANFDDLCToLen(wire.CANFDLenToDLC(n))
	}
	f.Len = uint8(n)
	if dlc != "" {
		v, err := strconv.ParseUint(dlc, 16, 8)
		if err != nil || n != 8 || v < 9 || v > 15 {
			return f, bad
		}
		f.Len8 = uint8(v)
	}
	return f, nil
}

// canFrameBytes packs f as the socket takes it.
func canFrameBytes(f *wire.CANFrame) []byte {
	b := make([]byte, f.MTU())
	wire.PutCANFrame(b, f)
	return b
}

func canIDString(f *wire.CANFrame) string {
	if f.IsEFF() || f.IsErr() {
		return fmt.Sprintf("%08X", f.ID&wire.CANEffMask)
	}
	return fmt.Sprintf("%03X", f.ID&wire.CANSffMask)
}

// formatCANLine is candump's default line: "  vcan0  123   [4]  DE AD BE EF".
func formatCANLine(ifname string, width int, f *wire.CANFrame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-*s  %s", width, ifname, canIDString(f))
	if f.IsFD() {
		fmt.Fprintf(&b, "  [%02d] ", f.Len)
	} else {
		fmt.Fprintf(&b, "   [%d] ", f.Len)
	}
	if f.IsRTR() {
		b.WriteString(" remote request")
		return b.String()
	}
	for i := 0; i < int(f.Len); i++ {
		fmt.Fprintf(&b, " %02X", f.Data[i])
	}
	if f.IsErr() {
		b.WriteString("   ERRORFRAME")
	}
	return b.String()
}

// formatCANLog is candump's log-file form: "(sec.usec) vcan0 123#DEADBEEF".
func formatCANLog(ts time.Time, ifname string, f *wire.CANFrame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(%d.%06d) %s %s#", ts.Unix(), ts.Nanosecond()/1000, ifname, canIDString(f))
	switch {
	case f.IsRTR():
		b.WriteString("R")
		if f.Len > 0 {
			fmt.Fprintf(&b, "%d", f.Len)
		}
		return b.String()
	case f.IsFD():
		fmt.Fprintf(&b, "#%X", f.Flags&(wire.CANFDBRS|wire.CANFDESI))
	}
	for i := 0; i < int(f.Len); i++ {
		fmt.Fprintf(&b, "%02X", f.Data[i])
	}
	return b.String()
}

// parseCANFilters reads candump's filter syntax after the interface:
// <id>:<mask> (match), <id>~<mask> (inverted), #<error mask>, j (join).
func parseCANFilters(spec string) (fs []socket.CANFilter, errMask uint32, join bool, err error) {
	for _, p := range strings.Split(spec, ",") {
		switch {
		case p == "":
		case p == "j" || p == "J":
			join = true
		case strings.HasPrefix(p, "#"):
			v, e := strconv.ParseUint(p[1:], 16, 32)
			if e != nil {
				return nil, 0, false, fmt.Errorf("bad error filter %q", p)
			}
			errMask = uint32(v)
		default:
			sep := strings.IndexAny(p, ":~")
			if sep < 0 {
				return nil, 0, false, fmt.Errorf("bad filter %q: want <can_id>:<can_mask> or <can_id>~<can_mask>", p)
			}
			id, e1 := strconv.ParseUint(p[:sep], 16, 32)
			mask, e2 := strconv.ParseUint(p[sep+1:], 16, 32)
			if e1 != nil || e2 != nil {
				return nil, 0, false, fmt.Errorf("bad filter %q", p)
			}
			f := socket.CANFilter{ID: uint32(id), Mask: uint32(mask)}
			if sep == 8 && f.ID&socket.CAN_EFF_FLAG == 0 {
				// An 8-digit id is an extended one, as in candump.
				f.ID |= socket.CAN_EFF_FLAG
				f.Mask |= socket.CAN_EFF_FLAG
			}
			if p[sep] == '~' {
				f.ID |= socket.CAN_INV_FILTER
			}
			fs = append(fs, f)
		}
	}
	return fs, errMask, join, nil
}

func cansendCmd() *cobra.Command {
	var f canFlags
	c := &cobra.Command{
		Use:   "cansend IFACE FRAME",
		Short: "Send one CAN frame (can-utils syntax: 123#DEADBEEF, 123#R, 123##1AABB)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fr, err := parseCANFrame(args[1])
			if err != nil {
				return err
			}
			e, err := f.open(args[0])
			if err != nil {
				return err
			}
			defer e.close()
			return runCansend(e, args[0], &fr)
		},
	}
	f.register(c)
	return c
}

func runCansend(e *canEnv, ifname string, fr *wire.CANFrame) error {
	s, err := e.rawSocket(ifname)
	if err != nil {
		return err
	}
	defer s.Close()
	if fr.IsFD() {
		if err := s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1); err != nil {
			return err
		}
	}
	// Our own frame comes back (MSG_CONFIRM) once it was on the bus: wait
	// for that, so the process does not end with the frame still queued.
	_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_RECV_OWN_MSGS, 1)
	_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
	if _, err := s.Send(canFrameBytes(fr), 0); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	s.SetTimeout(2 * time.Second)
	buf := make([]byte, socket.CANFD_MTU)
	for {
		_, m, err := s.RecvMsgCAN(buf, 0)
		if err != nil {
			return fmt.Errorf("no transmit confirmation: %w", err)
		}
		if m.Flags&socket.MSG_CONFIRM != 0 {
			return nil
		}
	}
}

type candumpOpts struct {
	count   int
	logFile bool          // -l: write a log file
	logOut  bool          // -L: log format on stdout
	ts      string        // -t a|d|z|A
	logPath string        // where -l writes (default candump-<date>.log)
	ready   chan struct{} // closed once the sockets are bound (tests)
}

func candumpCmd() *cobra.Command {
	var f canFlags
	var o candumpOpts
	c := &cobra.Command{
		Use:   "candump IFACE[,filter]... ",
		Short: "Print CAN frames as can-utils' candump does (filters <id>:<mask>, <id>~<mask>, #<errmask>, j)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, a := range args {
				names = append(names, strings.SplitN(a, ",", 2)[0])
			}
			e, err := f.open(names...)
			if err != nil {
				return err
			}
			defer e.close()
			ctx, stop := sigContext(cmd)
			defer stop()
			return runCandump(ctx, cmd.OutOrStdout(), e, args, o)
		},
	}
	f.register(c)
	c.Flags().IntVarP(&o.count, "count", "n", 0, "exit after this many frames")
	c.Flags().BoolVarP(&o.logFile, "log", "l", false, "log frames to a file in candump's log format")
	c.Flags().StringVar(&o.logPath, "logfile", "", "file name for -l (default candump-<date>_<time>.log)")
	c.Flags().BoolVarP(&o.logOut, "log-stdout", "L", false, "print frames in the log-file format")
	c.Flags().StringVarP(&o.ts, "timestamp", "t", "", "timestamps: a absolute, d delta, z from start, A date and time")
	return c
}

// runCandump prints frames of the given interfaces until ctx ends or
// count frames were printed.
func runCandump(ctx context.Context, w io.Writer, e *canEnv, args []string, o candumpOpts) error {
	type src struct {
		s    *socket.Socket
		name string
	}
	var srcs []src
	width := 0
	for _, a := range args {
		name, spec, _ := strings.Cut(a, ",")
		s, err := e.rawSocket(name)
		if err != nil {
			return err
		}
		defer s.Close()
		_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
		_ = s.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 1)
		if spec != "" {
			fs, em, join, err := parseCANFilters(spec)
			if err != nil {
				return err
			}
			if len(fs) > 0 {
				if err := s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER, fs); err != nil {
					return err
				}
			} else if em != 0 {
				// Only an error mask given: no data frames.
				_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER, []socket.CANFilter{})
			}
			_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_ERR_FILTER, int(em))
			_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_JOIN_FILTERS, b2int(join))
		}
		srcs = append(srcs, src{s, name})
		for _, ci := range e.net.CANInterfaces() {
			width = max(width, len(ci.Name))
		}
	}
	var logw io.Writer
	if o.logFile {
		p := o.logPath
		if p == "" {
			p = time.Now().Format("candump-2006-01-02_150405.log")
		}
		fh, err := os.Create(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		logw = fh
		fmt.Fprintf(os.Stderr, "Enabling Logfile '%s'\n", p)
	}
	// One poller over all sockets; a short wait lets ctx end the loop.
	p := socket.NewPoller()
	defer p.Close()
	for i, s := range srcs {
		if err := p.Add(s.s, 1, uint64(i)); err != nil {
			return err
		}
	}
	if o.ready != nil {
		close(o.ready)
	}
	evs := make([]socket.PollEvent, len(srcs))
	buf := make([]byte, socket.CANFD_MTU)
	var start, last time.Time
	printed := 0
	for o.count == 0 || printed < o.count {
		if ctx.Err() != nil {
			return nil
		}
		n, err := p.Wait(evs, 100*time.Millisecond)
		if err != nil {
			return err
		}
		for _, ev := range evs[:n] {
			sc := srcs[ev.Data]
			for o.count == 0 || printed < o.count {
				k, m, err := sc.s.RecvMsgCAN(buf, socket.MSG_DONTWAIT)
				if errors.Is(err, syscall.EAGAIN) {
					break
				}
				if err != nil {
					return err
				}
				var fr wire.CANFrame
				if wire.ParseCANFrame(buf[:k], &fr) != nil {
					continue
				}
				name := sc.name
				if name == "any" {
					name = e.net.CANInterfaces()[m.Ifindex-socket.CANIfindexBase].Name
				}
				ts := m.Time
				if logw != nil {
					fmt.Fprintln(logw, formatCANLog(ts, name, &fr))
				}
				if o.logOut {
					fmt.Fprintln(w, formatCANLog(ts, name, &fr))
				} else if !o.logFile {
					prefix := ""
					switch o.ts {
					case "a":
						prefix = fmt.Sprintf(" (%d.%06d)", ts.Unix(), ts.Nanosecond()/1000)
					case "A":
						prefix = " (" + ts.Format("2006-01-02 15:04:05.000000") + ")"
					case "d":
						d := time.Duration(0)
						if !last.IsZero() {
							d = ts.Sub(last)
						}
						prefix = fmt.Sprintf(" (%03d.%06d)", int(d/time.Second), int(d%time.Second/time.Microsecond))
					case "z":
						if start.IsZero() {
							start = ts
						}
						d := ts.Sub(start)
						prefix = fmt.Sprintf(" (%03d.%06d)", int(d/time.Second), int(d%time.Second/time.Microsecond))
					}
					last = ts
					fmt.Fprintln(w, prefix+formatCANLine(name, width, &fr))
				}
				printed++
			}
		}
	}
	return nil
}

func b2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

type cangenOpts struct {
	gap      time.Duration
	count    int
	idMode   string // r, i or a hex id
	lenMode  string // r, i or a length
	dataMode string // r, i or hex bytes
	ext, fd  bool
	brs, rtr bool
	seed     uint64
}

func cangenCmd() *cobra.Command {
	var f canFlags
	var o cangenOpts
	var gapMS float64
	c := &cobra.Command{
		Use:   "cangen IFACE",
		Short: "Generate CAN traffic as can-utils' cangen does (random or incrementing ids, lengths, data)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.gap = time.Duration(gapMS * float64(time.Millisecond))
			e, err := f.open(args[0])
			if err != nil {
				return err
			}
			defer e.close()
			ctx, stop := sigContext(cmd)
			defer stop()
			n, err := runCangen(ctx, e, args[0], o)
			fmt.Fprintf(cmd.ErrOrStderr(), "cangen: %d frames sent\n", n)
			return err
		},
	}
	f.register(c)
	c.Flags().Float64VarP(&gapMS, "gap", "g", 200, "gap between frames in ms")
	c.Flags().IntVarP(&o.count, "count", "n", 0, "stop after this many frames (0: until interrupted)")
	c.Flags().StringVarP(&o.idMode, "id", "I", "r", "id: r random, i increment, or a hex id")
	c.Flags().StringVarP(&o.lenMode, "len", "L", "r", "data length: r random, i increment, or a number")
	c.Flags().StringVarP(&o.dataMode, "data", "D", "r", "data: r random, i increment, or hex bytes")
	c.Flags().BoolVarP(&o.ext, "extended", "e", false, "29-bit ids")
	c.Flags().BoolVarP(&o.fd, "fd", "f", false, "CAN FD frames")
	c.Flags().BoolVarP(&o.brs, "brs", "b", false, "CAN FD with bit rate switch")
	c.Flags().BoolVarP(&o.rtr, "rtr", "R", false, "remote frames")
	c.Flags().Uint64Var(&o.seed, "seed", 1, "seed for random ids, lengths and data")
	return c
}

// runCangen sends generated frames; it returns how many it sent.
func runCangen(ctx context.Context, e *canEnv, ifname string, o cangenOpts) (int, error) {
	s, err := e.rawSocket(ifname)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if o.brs {
		o.fd = true
	}
	if o.fd {
		_ = s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
	}
	r := rand.New(rand.NewPCG(o.seed, 0x5eed))
	maxLen := 8
	if o.fd {
		maxLen = 64
	}
	var fixedData []byte
	if o.dataMode != "r" && o.dataMode != "i" {
		for j := 0; j+2 <= len(o.dataMode); j += 2 {
			v, err := strconv.ParseUint(o.dataMode[j:j+2], 16, 8)
			if err != nil {
				return 0, fmt.Errorf("bad data %q", o.dataMode)
			}
			fixedData = append(fixedData, byte(v))
		}
	}
	var fixedID, fixedLen uint64
	if o.idMode != "r" && o.idMode != "i" {
		if fixedID, err = strconv.ParseUint(o.idMode, 16, 32); err != nil {
			return 0, fmt.Errorf("bad id %q", o.idMode)
		}
	}
	if o.lenMode != "r" && o.lenMode != "i" {
		if fixedLen, err = strconv.ParseUint(o.lenMode, 10, 8); err != nil || int(fixedLen) > maxLen {
			return 0, fmt.Errorf("bad length %q", o.lenMode)
		}
	}
	idMask := wire.CANSffMask
	if o.ext {
		idMask = wire.CANEffMask
	}
	var tick *time.Ticker
	if o.gap > 0 {
		tick = time.NewTicker(o.gap)
		defer tick.Stop()
	}
	buf := make([]byte, wire.CANFDMTU)
	sent := 0
	for i := 0; o.count == 0 || i < o.count; i++ {
		var fr wire.CANFrame
		switch o.idMode {
		case "r":
			fr.ID = r.Uint32() & idMask
		case "i":
			fr.ID = uint32(i) & idMask
		default:
			fr.ID = uint32(fixedID) & idMask
		}
		if o.ext {
			fr.ID |= wire.CANEffFlag
		}
		n := 0
		switch o.lenMode {
		case "r":
			n = r.IntN(maxLen + 1)
		case "i":
			n = i % (maxLen + 1)
		default:
			n = int(fixedLen)
		}
		if o.fd {
			n = wire.CANFDDLCToLen(wire.CANFDLenToDLC(n))
			fr.Flags = wire.CANFDFDF
			if o.brs {
				fr.Flags |= wire.CANFDBRS
			}
		}
		if fixedData != nil {
			n = min(len(fixedData), maxLen)
			copy(fr.Data[:], fixedData)
		}
		fr.Len = uint8(n)
		if o.rtr && !o.fd {
			fr.ID |= wire.CANRtrFlag
		} else if fixedData == nil {
			for j := 0; j < n; j++ {
				if o.dataMode == "i" {
					fr.Data[j] = byte(i)
				} else {
					fr.Data[j] = byte(r.Uint32())
				}
			}
		}
		k := wire.PutCANFrame(buf, &fr)
		if _, err := s.Send(buf[:k], 0); err != nil {
			if errors.Is(err, syscall.ENOBUFS) {
				// A full queue: like cangen, wait and try again.
				i--
				time.Sleep(time.Millisecond)
				continue
			}
			return sent, err
		}
		sent++
		if tick != nil {
			select {
			case <-ctx.Done():
				return sent, nil
			case <-tick.C:
			}
		} else if ctx.Err() != nil {
			return sent, nil
		}
	}
	return sent, nil
}

func canupCmd() *cobra.Command {
	var f canFlags
	c := &cobra.Command{
		Use:   "canup IFACE",
		Short: "Run a CAN bus with interface IFACE (bridged, captured) until SIGINT/SIGTERM",
		Long: `Keeps a sockstack CAN bus alive in this process, for other processes to join
through the UDP bridge (--bridge-listen/--bridge-peer), with an optional
capture of every frame (--pcap).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := f.open(args[0])
			if err != nil {
				return err
			}
			defer e.close()
			if e.bridge != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "canup: bus with %s, bridge on udp %s\n", args[0], e.bridge.LocalAddr())
			}
			ctx, stop := sigContext(cmd)
			defer stop()
			<-ctx.Done()
			n := e.bus.Frames.Load()
			fmt.Fprintf(cmd.OutOrStdout(), "canup: %d %s carried\n", n, plural(n, "frame", "frames"))
			return nil
		},
	}
	f.register(c)
	return c
}

// canPackFrame is used by tests and examples: the 16-byte can_frame.
func canPackFrame(id uint32, data []byte) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b, id)
	b[4] = byte(len(data))
	copy(b[8:], data)
	return b
}

// plural is one when n is 1, else many.
func plural[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
