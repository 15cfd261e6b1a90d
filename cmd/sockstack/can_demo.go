package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func init() {
	demoSubcommands = append(demoSubcommands, demoCANCmd)
	extraCommands = append(extraCommands, isotpsendCmd, isotprecvCmd)
}

func demoCANCmd() *cobra.Command {
	var pcapPath string
	c := &cobra.Command{
		Use:   "can",
		Short: "Two ECUs on a virtual 500 kbit/s CAN bus: arbitration, a filter, CAN FD, an ISO-TP exchange of 100 bytes, BCM cycles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCANDemo(cmd.OutOrStdout(), pcapPath)
		},
	}
	c.Flags().StringVar(&pcapPath, "pcap", "", "write the bus's frames to this pcap file (LINKTYPE_CAN_SOCKETCAN)")
	return c
}

// canECU is one host on the demo bus.
type canECU struct {
	name string
	net  *socket.Net
	st   *stack.Stack
	ifc  *link.CANIf
}

// The ISO-TP ids of the demo: the tester asks on 0x7E0, the engine
// ECU answers on 0x7E8 (OBD-II's physical addressing).
const (
	demoReqID  = 0x7E0
	demoRespID = 0x7E8
)

// runCANDemo runs the demo in virtual time: the bus and every timer run
// on a manual clock the demo advances, so the output and the capture
// are the same on every run.
func runCANDemo(w io.Writer, pcapPath string) error {
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	start := clk.Now()
	bus := link.NewCANBus("can0", link.CANBusOptions{Clock: clk, Bitrate: 500000, DataBitrate: 2000000})
	var pc *link.CANPcap
	if pcapPath != "" {
		f, err := os.Create(pcapPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if pc, err = link.NewCANPcap(bus, f, link.PcapOptions{Nanosecond: true}); err != nil {
			return err
		}
		defer pc.Close()
	}
	mk := func(name string) *canECU {
		st := stack.New(stack.Options{Name: name, Clock: clk})
		e := &canECU{name: name, st: st, net: socket.New(st), ifc: bus.Attach("vcan0")}
		e.net.AttachCAN(e.ifc)
		return e
	}
	engine, tester, gateway := mk("engine"), mk("tester"), mk("gateway")
	defer engine.st.Close()
	defer tester.st.Close()
	defer gateway.st.Close()

	fmt.Fprintln(w, "sockstack demo can: ECUs 'engine', 'tester' and 'gateway' on one virtual CAN bus (500 kbit/s, CAN FD data phase 2 Mbit/s)")
	fmt.Fprintln(w, "  time runs on a virtual clock; every frame takes its exact bit time, stuff bits included")

	// A monitor like candump on the tester, with timestamps.
	mon, err := demoRaw(tester, nil)
	if err != nil {
		return err
	}
	_ = mon.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
	dump := func() {
		buf := make([]byte, socket.CANFD_MTU)
		for {
			n, m, err := mon.RecvMsgCAN(buf, socket.MSG_DONTWAIT)
			if err != nil {
				return
			}
			var f wire.CANFrame
			if wire.ParseCANFrame(buf[:n], &f) != nil {
				continue
			}
			d := m.Time.Sub(start)
			fmt.Fprintf(w, "   (%03d.%06d)%s\n", int(d/time.Second), int(d%time.Second/time.Microsecond), formatCANLine("vcan0", 5, &f))
		}
	}

	// [1] Arbitration.
	fmt.Fprintln(w, "\n[1] arbitration: three ECUs queue a frame while the bus is busy; the lowest id wins")
	sEng, _ := demoRaw(engine, nil)
	sGw, _ := demoRaw(gateway, nil)
	sTst, _ := demoRaw(tester, nil)
	for _, x := range []struct {
		s   *socket.Socket
		who string
		f   string
	}{{sGw, "gateway", "400#00"}, {sEng, "engine", "300#0102"}, {sGw, "gateway", "200#0304"}, {sTst, "tester", "100#05"}} {
		f, _ := parseCANFrame(x.f)
		if _, err := x.s.Send(canFrameBytes(&f), 0); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-7s queues %s\n", x.who, x.f)
	}
	clk.Advance(5 * time.Millisecond)
	fmt.Fprintln(w, "  on the bus (400 had the idle bus; then 100, 200, 300 by arbitration):")
	dump()

	// [2] A filter.
	fmt.Fprintln(w, "\n[2] a CAN_RAW_FILTER on the gateway: only ids 0x7E0-0x7EF (diagnostics) pass")
	filt, err := demoRaw(gateway, []socket.CANFilter{{ID: 0x7E0, Mask: 0x7F0}})
	if err != nil {
		return err
	}
	for _, s := range []string{"123#11", "7E5#22", "7DF#33", "7EF#44"} {
		f, _ := parseCANFrame(s)
		_, _ = sEng.Send(canFrameBytes(&f), 0)
	}
	clk.Advance(5 * time.Millisecond)
	dump()
	var passed []string
	for {
		buf := make([]byte, 16)
		n, err := filt.Recv(buf, socket.MSG_DONTWAIT)
		if err != nil {
			break
		}
		var f wire.CANFrame
		_ = wire.ParseCANFrame(buf[:n], &f)
		passed = append(passed, canIDString(&f))
	}
	fmt.Fprintf(w, "  the gateway's filtered socket got: %s\n", strings.Join(passed, ", "))

	// [3] CAN FD.
	fmt.Fprintln(w, "\n[3] a CAN FD frame with bit rate switch (48 bytes)")
	_ = sEng.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
	fd, _ := parseCANFrame("0C8##1" + strings.Repeat("A5", 48))
	if _, err := sEng.Send(canFrameBytes(&fd), 0); err != nil {
		return err
	}
	clk.Advance(5 * time.Millisecond)
	dump()

	// [4] ISO-TP.
	fmt.Fprintln(w, "\n[4] ISO-TP: the tester asks (0x7E0), the engine answers with 100 bytes (0x7E8) in a first frame,")
	fmt.Fprintln(w, "    flow control (block size 8, STmin 1 ms) and consecutive frames")
	req, err := demoISOTP(tester, demoRespID, demoReqID, socket.ISOTPFCOptions{BS: 8, STmin: 1})
	if err != nil {
		return err
	}
	resp, err := demoISOTP(engine, demoReqID, demoRespID, socket.ISOTPFCOptions{})
	if err != nil {
		return err
	}
	if _, err := req.Send([]byte{0x22, 0xF1, 0x90}, 0); err != nil {
		return err
	}
	clk.Advance(5 * time.Millisecond)
	buf := make([]byte, 4096)
	n, err := resp.Recv(buf, socket.MSG_DONTWAIT)
	if err != nil {
		return fmt.Errorf("engine did not get the request: %w", err)
	}
	fmt.Fprintf(w, "  engine got request % X\n", buf[:n])
	answer := make([]byte, 100)
	answer[0], answer[1], answer[2] = 0x62, 0xF1, 0x90
	copy(answer[3:], "SOCKSTACK-VIRTUAL-ECU-0001 ")
	for i := 30; i < len(answer); i++ {
		answer[i] = byte(i)
	}
	if _, err := resp.Send(answer, 0); err != nil {
		return err
	}
	clk.Advance(100 * time.Millisecond)
	dump()
	n, err = req.Recv(buf, socket.MSG_DONTWAIT)
	if err != nil {
		return fmt.Errorf("tester did not get the answer: %w", err)
	}
	if !bytes.Equal(buf[:n], answer) {
		return errors.New("the ISO-TP answer arrived changed")
	}
	fmt.Fprintf(w, "  tester got %d bytes intact: % X ...\n", n, buf[:12])

	// [5] BCM.
	fmt.Fprintln(w, "\n[5] CAN_BCM: the engine sends 0x0F0 every 10 ms; the gateway watches it and reports changes of byte 0")
	bcmTx, err := engine.net.Socket(socket.AF_CAN, socket.SOCK_DGRAM, socket.CAN_BCM)
	if err != nil {
		return err
	}
	defer bcmTx.Close()
	if err := bcmTx.Connect(&socket.SockaddrCAN{Ifname: "vcan0"}); err != nil {
		return err
	}
	bcmRx, err := gateway.net.Socket(socket.AF_CAN, socket.SOCK_DGRAM, socket.CAN_BCM)
	if err != nil {
		return err
	}
	defer bcmRx.Close()
	bcmRx.SetBlocking(false)
	if err := bcmRx.Connect(&socket.SockaddrCAN{Ifname: "vcan0"}); err != nil {
		return err
	}
	rxSetup := socket.BCMMsg{Opcode: socket.RX_SETUP, Flags: socket.SETTIMER | socket.STARTTIMER, Ival1: 50 * time.Millisecond, CANID: 0x0F0,
		Frames: []wire.CANFrame{{Len: 8, Data: [64]byte{0xFF}}}}
	if _, err := bcmRx.Send(rxSetup.Marshal(), 0); err != nil {
		return err
	}
	txSetup := socket.BCMMsg{Opcode: socket.TX_SETUP, Flags: socket.SETTIMER | socket.STARTTIMER | socket.TX_ANNOUNCE, Ival2: 10 * time.Millisecond, CANID: 0x0F0,
		Frames: []wire.CANFrame{{ID: 0x0F0, Len: 2, Data: [64]byte{0x10, 0x01}}}}
	if _, err := bcmTx.Send(txSetup.Marshal(), 0); err != nil {
		return err
	}
	clk.Advance(25 * time.Millisecond)
	txSetup.Flags = 0 // new content, same cycle
	txSetup.Frames[0].Data[0] = 0x20
	if _, err := bcmTx.Send(txSetup.Marshal(), 0); err != nil {
		return err
	}
	clk.Advance(20 * time.Millisecond)
	if _, err := bcmTx.Send((&socket.BCMMsg{Opcode: socket.TX_DELETE, CANID: 0x0F0}).Marshal(), 0); err != nil {
		return err
	}
	clk.Advance(60 * time.Millisecond)
	dump()
	for {
		n, err := bcmRx.Recv(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			return err
		}
		m, _ := socket.ParseBCMMsg(buf[:n])
		switch m.Opcode {
		case socket.RX_CHANGED:
			fmt.Fprintf(w, "  gateway: RX_CHANGED 0x%03X byte 0 = %02X\n", m.CANID, m.Frames[0].Data[0])
		case socket.RX_TIMEOUT:
			fmt.Fprintf(w, "  gateway: RX_TIMEOUT 0x%03X (no frame for 50 ms)\n", m.CANID)
		}
	}

	fmt.Fprintln(w, "\nSummary")
	fmt.Fprintf(w, "  frames on the bus: %d, bus busy %v of %v (load %.1f%%)\n", bus.Frames.Load(), bus.Busy(), clk.Now().Sub(start), 100*bus.Load())
	if pc != nil {
		if err := pc.Close(); err != nil {
			return err
		}
		fmt.Fprintf(w, "  pcap written to %s (LINKTYPE_CAN_SOCKETCAN; tshark -r %s -o 'iso15765.can.ids:%d,%d' decodes the ISO-TP exchange)\n",
			pcapPath, pcapPath, demoReqID, demoRespID)
	}
	return nil
}

func demoRaw(e *canECU, filters []socket.CANFilter) (*socket.Socket, error) {
	s, err := e.net.Socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
	if err != nil {
		return nil, err
	}
	if filters != nil {
		if err := s.SetSockOpt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER, filters); err != nil {
			return nil, err
		}
	}
	_ = s.SetSockOpt(socket.SOL_SOCKET, socket.SO_TIMESTAMP, 1)
	if err := s.Bind(&socket.SockaddrCAN{Ifname: "vcan0"}); err != nil {
		return nil, err
	}
	s.SetBlocking(false)
	return s, nil
}

func demoISOTP(e *canECU, rx, tx uint32, fc socket.ISOTPFCOptions) (*socket.Socket, error) {
	s, err := e.net.Socket(socket.AF_CAN, socket.SOCK_DGRAM, socket.CAN_ISOTP)
	if err != nil {
		return nil, err
	}
	if err := s.SetSockOpt(socket.SOL_CAN_ISOTP, socket.CAN_ISOTP_RECV_FC, fc); err != nil {
		return nil, err
	}
	if err := s.Bind(&socket.SockaddrCAN{Ifname: "vcan0", RxID: rx, TxID: tx}); err != nil {
		return nil, err
	}
	s.SetBlocking(false)
	return s, nil
}

// isotpFlags are the options of isotpsend / isotprecv (can-utils' names).
type isotpFlags struct {
	canFlags
	src, dst string // -s tx id, -d rx id (hex)
	ext      int    // -x extended address (-1: none)
	pad      int    // -p padding byte (-1: none)
	bs       int    // -b block size (isotprecv)
	stmin    int    // -m STmin byte (isotprecv)
	fd       int    // -L tx_dl for CAN FD (0: classic)
	loop     bool   // -l: isotprecv keeps receiving
	waitTx   bool   // isotpsend: return when the transfer is done
}

func (f *isotpFlags) register(c *cobra.Command, recv bool) {
	f.canFlags.register(c)
	c.Flags().StringVarP(&f.src, "source", "s", "", "CAN id to send with (hex; 8 digits for 29 bits)")
	c.Flags().StringVarP(&f.dst, "dest", "d", "", "CAN id to receive on (hex)")
	c.Flags().IntVarP(&f.ext, "ext", "x", -1, "extended addressing with this address byte")
	c.Flags().IntVarP(&f.pad, "pad", "p", -1, "pad frames with this byte")
	c.Flags().IntVarP(&f.fd, "fd", "L", 0, "CAN FD with this frame payload (12..64)")
	if recv {
		c.Flags().IntVarP(&f.bs, "blocksize", "b", 0, "block size in flow control frames")
		c.Flags().IntVarP(&f.stmin, "stmin", "m", 0, "STmin byte in flow control frames")
		c.Flags().BoolVarP(&f.loop, "loop", "l", false, "keep receiving messages")
	}
}

func parseCANID(s string) (uint32, error) {
	v, err := parseHexU32(s)
	if err != nil {
		return 0, fmt.Errorf("bad CAN id %q", s)
	}
	if len(s) > 3 {
		v |= socket.CAN_EFF_FLAG
	}
	return v, nil
}

func parseHexU32(s string) (uint32, error) {
	var v uint32
	if s == "" || len(s) > 8 {
		return 0, errors.New("bad hex")
	}
	for _, c := range s {
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint32(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint32(c-'A') + 10
		default:
			return 0, errors.New("bad hex")
		}
		v = v<<4 | d
	}
	return v, nil
}

// openISOTP makes the tools' ISO-TP socket.
func (f *isotpFlags) openISOTP(e *canEnv, ifname string) (*socket.Socket, error) {
	tx, err := parseCANID(f.src)
	if err != nil {
		return nil, err
	}
	rx, err := parseCANID(f.dst)
	if err != nil {
		return nil, err
	}
	s, err := e.net.Socket(socket.AF_CAN, socket.SOCK_DGRAM, socket.CAN_ISOTP)
	if err != nil {
		return nil, err
	}
	o := socket.ISOTPOptions{FrameTxTime: socket.CAN_ISOTP_DEFAULT_FRAME_TXTIME, TxPadContent: socket.CAN_ISOTP_DEFAULT_PAD_CONTENT, RxPadContent: socket.CAN_ISOTP_DEFAULT_PAD_CONTENT}
	if f.ext >= 0 {
		o.Flags |= socket.CAN_ISOTP_EXTEND_ADDR
		o.ExtAddress = uint8(f.ext)
	}
	if f.waitTx {
		o.Flags |= socket.CAN_ISOTP_WAIT_TX_DONE
	}
	if f.pad >= 0 {
		o.Flags |= socket.CAN_ISOTP_TX_PADDING
		o.TxPadContent = uint8(f.pad)
	}
	if err := s.SetSockOpt(socket.SOL_CAN_ISOTP, socket.CAN_ISOTP_OPTS, o); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.SetSockOpt(socket.SOL_CAN_ISOTP, socket.CAN_ISOTP_RECV_FC, socket.ISOTPFCOptions{BS: uint8(f.bs), STmin: uint8(f.stmin)}); err != nil {
		s.Close()
		return nil, err
	}
	if f.fd > 0 {
		if err := s.SetSockOpt(socket.SOL_CAN_ISOTP, socket.CAN_ISOTP_LL_OPTS, socket.ISOTPLLOptions{MTU: socket.CANFD_MTU, TxDL: uint8(f.fd)}); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.Bind(&socket.SockaddrCAN{Ifname: ifname, RxID: rx, TxID: tx}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// parseHexBytes reads "11 22 33" (or "112233") as isotpsend takes it.
func parseHexBytes(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if len(s)%2 != 0 {
		return nil, errors.New("odd number of hex digits")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		v, err := parseHexU32(s[2*i : 2*i+2])
		if err != nil {
			return nil, fmt.Errorf("bad hex byte %q", s[2*i:2*i+2])
		}
		out[i] = byte(v)
	}
	return out, nil
}

func isotpsendCmd() *cobra.Command {
	f := isotpFlags{waitTx: true}
	c := &cobra.Command{
		Use:   "isotpsend -s TXID -d RXID IFACE < hexbytes",
		Short: "Send one ISO-TP message read from stdin as hex bytes (can-utils' isotpsend)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
			if err != nil {
				return err
			}
			data, err := parseHexBytes(string(in))
			if err != nil {
				return err
			}
			e, err := f.open(args[0])
			if err != nil {
				return err
			}
			defer e.close()
			s, err := f.openISOTP(e, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			// WAIT_TX_DONE (set by openISOTP) makes the send return when the
			// whole transfer is over, so the process does not exit early.
			s.SetTimeout(5 * time.Second)
			if _, err := s.Send(data, 0); err != nil {
				return err
			}
			return nil
		},
	}
	f.register(c, false)
	return c
}

func isotprecvCmd() *cobra.Command {
	var f isotpFlags
	c := &cobra.Command{
		Use:   "isotprecv -s TXID -d RXID IFACE",
		Short: "Print received ISO-TP messages as hex bytes (can-utils' isotprecv)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := f.open(args[0])
			if err != nil {
				return err
			}
			defer e.close()
			s, err := f.openISOTP(e, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, stop := sigContext(cmd)
			defer stop()
			buf := make([]byte, 8300)
			w := cmd.OutOrStdout()
			s.SetTimeout(200 * time.Millisecond)
			for ctx.Err() == nil {
				n, err := s.Recv(buf, 0)
				if errors.Is(err, syscall.EAGAIN) {
					continue
				}
				if err != nil {
					return err
				}
				for _, b := range buf[:n] {
					fmt.Fprintf(w, "%02X ", b)
				}
				fmt.Fprintln(w)
				if !f.loop {
					return nil
				}
			}
			return nil
		},
	}
	f.register(c, true)
	return c
}
