package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// sockstack up takes the CAN tools' bridge flags (the usage check after
// them is about --tap, not an unknown flag).
func TestUpTakesCANBridgeFlags(t *testing.T) {
	_, err := runCLI(t, "", "up", "--bridge-listen", "127.0.0.1:0", "--bridge-peer", "127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "up needs --tap NAME") {
		t.Fatalf("up with bridge flags: %v, want the --tap usage error", err)
	}
}

// The up host (here without its TAP) gets vcan0 on a bus bridged over
// UDP: a frame a CAN tool in another "process" sends reaches a CAN_RAW
// socket of the up host, and its answer comes back over the bridge.
func TestUpCANBridge(t *testing.T) {
	st := stack.New(stack.Options{Name: "up"})
	defer st.Close()
	n := socket.New(st)
	var out bytes.Buffer
	cf := canFlags{listen: "127.0.0.1:0"}
	b, err := upCAN(&out, n, &cf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if !strings.Contains(out.String(), "CAN bus on vcan0, bridge on udp 127.0.0.1:") {
		t.Fatalf("up printed %q", out.String())
	}
	up := &canEnv{net: n, st: st, canBus: b}
	tool, err := (&canFlags{peer: b.bridge.LocalAddr().String()}).open("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer tool.close()

	upRx, err := up.rawSocket("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer upRx.Close()
	toolRx, err := tool.rawSocket("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer toolRx.Close()
	for _, s := range []*socket.Socket{upRx, toolRx} {
		s.SetTimeout(30 * time.Second) // a failure bound: the frame comes over loopback UDP
	}
	recv := func(s *socket.Socket) uint32 {
		t.Helper()
		buf := make([]byte, 16)
		if k, err := s.Recv(buf, 0); err != nil || k != 16 {
			t.Fatalf("recv: %d, %v", k, err)
		}
		var fr wire.CANFrame
		_ = wire.ParseCANFrame(buf, &fr)
		return fr.ID
	}
	fr, _ := parseCANFrame("123#DEADBEEF")
	if err := runCansend(tool, "vcan0", &fr); err != nil {
		t.Fatal(err)
	}
	if id := recv(upRx); id != 0x123 {
		t.Fatalf("up host received ID %#x, want 0x123", id)
	}
	// The bridge learnt the tool's address: the answer goes back.
	fr, _ = parseCANFrame("456#01")
	if err := runCansend(up, "vcan0", &fr); err != nil {
		t.Fatal(err)
	}
	if id := recv(toolRx); id != 0x123 {
		t.Fatalf("tool's second socket received ID %#x, want its own 0x123 (loopback)", id)
	}
	if id := recv(toolRx); id != 0x456 {
		t.Fatalf("tool received ID %#x, want 0x456", id)
	}
}
