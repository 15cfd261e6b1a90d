package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func demoCmd() *cobra.Command {
	var pcapPath string
	var quiet bool
	c := &cobra.Command{
		Use:     "demo",
		Example: "  sockstack demo --pcap demo.pcap",
		Args:    usageArgs(cobra.NoArgs),
		Short:   "Two hosts on the built-in virtual network: ARP, ping, UDP echo, fragments, refusals, TCP echo",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.OutOrStdout(), pcapPath, !quiet)
		},
	}
	c.Flags().StringVar(&pcapPath, "pcap", "", "write every frame to this pcap file")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no per-packet trace")
	for _, sub := range demoSubcommands {
		c.AddCommand(sub())
	}
	return c
}

// demoSubcommands lets other files add demos of their own (demo can).
var demoSubcommands []func() *cobra.Command

// demoSteps lets later features add steps (TCP echo, chat, ...).
var demoSteps []func(w io.Writer, alice, bob *vhost) error

func runDemo(w io.Writer, pcapPath string, traceOn bool) error {
	v, err := newVnet(w, traceOn, pcapPath)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "sockstack demo: alice 10.0.0.1/24 and bob 10.0.0.2/24 on an in-memory switch (MTU 1500)")
	fmt.Fprintln(w, "  each host announces its address with a gratuitous ARP:")
	alice := v.addHost("alice", "10.0.0.1/24", wire.MAC{0x02, 0, 0, 0, 0, 1}, stack.Options{})
	bob := v.addHost("bob", "10.0.0.2/24", wire.MAC{0x02, 0, 0, 0, 0, 2}, stack.Options{})
	// Wait until alice's port saw bob's announcement, so the trace reads in order.
	for deadline := time.Now().Add(2 * time.Second); v.count() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	steps := []struct {
		title string
		fn    func(io.Writer, *vhost, *vhost) error
	}{
		{"ping bob from alice (the first needs ARP)", demoPing},
		{"UDP echo: the classic tutorial exchange", demoUDPEcho},
		{"a 4,000-byte datagram crosses the MTU-1500 link in fragments", demoFragments},
		{"a datagram to a closed port comes back as connection refused", demoRefused},
	}
	for i, s := range steps {
		fmt.Fprintf(w, "\n[%d] %s\n", i+1, s.title)
		if err := s.fn(w, alice, bob); err != nil {
			v.close()
			return fmt.Errorf("step %d (%s): %w", i+1, s.title, err)
		}
	}
	for i, s := range demoSteps {
		fmt.Fprintf(w, "\n[%d] ", len(steps)+i+1)
		if err := s(w, alice, bob); err != nil {
			v.close()
			return fmt.Errorf("step %d: %w", len(steps)+i+1, err)
		}
	}

	fmt.Fprintln(w, "\nSummary")
	fmt.Fprintf(w, "  frames on the wire: %d\n", v.frames)
	for _, h := range []*vhost{alice, bob} {
		st := h.st.Stats()
		fmt.Fprintf(w, "  %-5s ARP req/rep out %d/%d  IP in %d out %d  frags created %d reassembled %d  ICMP in %d out %d  UDP in %d out %d noport %d\n",
			h.name, st.ARP.OutRequests.Load(), st.ARP.OutReplies.Load(), st.IP.InReceives.Load(), st.IP.OutRequests.Load(),
			st.IP.FragCreates.Load(), st.IP.ReasmOKs.Load(), st.ICMP.InMsgs.Load(), st.ICMP.OutMsgs.Load(),
			st.UDP.InDatagrams.Load(), st.UDP.OutDatagrams.Load(), st.UDP.NoPorts.Load())
	}
	if pcapPath != "" {
		fmt.Fprintf(w, "  pcap written to %s (open it with wireshark or tshark -r)\n", pcapPath)
	}
	return v.close()
}

func demoPing(w io.Writer, alice, bob *vhost) error {
	s, err := alice.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetTimeout(3 * time.Second)
	dst := socket.InetAddr(netipPort(bob.addr, 0))
	buf := make([]byte, 1500)
	for seq := 1; seq <= 3; seq++ {
		msg := make([]byte, 8+56)
		msg[0] = wire.ICMPEcho
		wire.ICMPv4(msg).SetSeq(uint16(seq))
		for i := 8; i < len(msg); i++ {
			msg[i] = byte(i)
		}
		t0 := time.Now()
		if _, err := s.SendTo(msg, 0, dst); err != nil {
			return err
		}
		for {
			n, from, err := s.RecvFrom(buf, 0)
			if err != nil {
				return fmt.Errorf("no echo reply: %w", err)
			}
			m := wire.ICMPv4(buf[:n])
			if n >= 8 && m.Type() == wire.ICMPEchoReply && int(m.Seq()) == seq {
				fmt.Fprintf(w, "  %d bytes from %v: icmp_seq=%d time=%.3f ms\n", n, from.(*socket.SockaddrInet).AddrPort.Addr(), seq, float64(time.Since(t0).Microseconds())/1000)
				break
			}
		}
	}
	for _, n := range alice.nic.Neighbors() {
		fmt.Fprintf(w, "  alice's ARP cache: %v is-at %v (%v)\n", n.Addr, n.MAC, n.State)
	}
	return nil
}

// udpEchoServer serves one socket until it is closed, echoing each datagram.
func udpEchoServer(s *socket.Socket) {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.RecvFrom(buf, 0)
		if err != nil {
			return
		}
		s.SendTo(buf[:n], 0, from)
	}
}

func demoUDPEcho(w io.Writer, alice, bob *vhost) error {
	srv, err := bob.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Bind(socket.Inet("0.0.0.0", 7)); err != nil {
		return err
	}
	go udpEchoServer(srv)
	cli, err := alice.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer cli.Close()
	cli.SetTimeout(3 * time.Second)
	msg := []byte("Hello, world")
	if _, err := cli.SendTo(msg, 0, socket.InetAddr(netipPort(bob.addr, 7))); err != nil {
		return err
	}
	fmt.Fprintf(w, "  alice sent %q to %v:7\n", msg, bob.addr)
	buf := make([]byte, 1024)
	n, from, err := cli.RecvFrom(buf, 0)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("echo differs: %q", buf[:n])
	}
	fmt.Fprintf(w, "  alice received %q back from %v\n", buf[:n], from)
	return nil
}

func demoFragments(w io.Writer, alice, bob *vhost) error {
	before := alice.st.Stats().IP.FragCreates.Load()
	n, _, err := sendFragmented(alice, bob, socket.AF_INET, socket.Inet("0.0.0.0", 9000), socket.InetAddr(netipPort(bob.addr, 9000)), "datagram")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  alice sent 4000 bytes as %d fragments; bob reassembled %d bytes, identical\n",
		alice.st.Stats().IP.FragCreates.Load()-before, n)
	return nil
}

// sendFragmented has alice send 4,000 bytes of UDP (more than a frame
// holds) to bob at to, bob's socket bound to bind, and checks bob got
// them whole; it returns their length and their source as bob saw it.
func sendFragmented(alice, bob *vhost, family int, bind, to socket.Sockaddr, what string) (int, socket.Sockaddr, error) {
	srv, err := bob.net.Socket(family, socket.SOCK_DGRAM, 0)
	if err != nil {
		return 0, nil, err
	}
	defer srv.Close()
	if err := srv.Bind(bind); err != nil {
		return 0, nil, err
	}
	srv.SetTimeout(3 * time.Second)
	cli, err := alice.net.Socket(family, socket.SOCK_DGRAM, 0)
	if err != nil {
		return 0, nil, err
	}
	defer cli.Close()
	payload := make([]byte, 4000)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	if _, err := cli.SendTo(payload, 0, to); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, 65536)
	n, from, err := srv.RecvFrom(buf, 0)
	if err != nil {
		return 0, nil, err
	}
	if !bytes.Equal(buf[:n], payload) {
		return 0, nil, fmt.Errorf("reassembled %s differs (%d bytes)", what, n)
	}
	return n, from, nil
}

func demoRefused(w io.Writer, alice, bob *vhost) error {
	cli, err := alice.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer cli.Close()
	cli.SetTimeout(3 * time.Second)
	if err := cli.Connect(socket.InetAddr(netipPort(bob.addr, 9))); err != nil {
		return err
	}
	if _, err := cli.Send([]byte("anyone there?"), 0); err != nil {
		return err
	}
	buf := make([]byte, 100)
	_, err = cli.Recv(buf, 0)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("expected connection refused, got %v", err)
	}
	fmt.Fprintf(w, "  recv on the connected socket: %v (errno %d, ECONNREFUSED)\n", err, int(syscall.ECONNREFUSED))
	return nil
}

var _ = os.Stdout
