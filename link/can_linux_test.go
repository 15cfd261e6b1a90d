package link

import (
	"os"
	"testing"
)

func TestHostCANAttach(t *testing.T) {
	if err := HostCANAvailable(); err != nil {
		t.Skipf("skipped: %v (no SocketCAN in this kernel, as in most containers)", err)
	}
	name := os.Getenv("SOCKSTACK_HOST_CAN")
	if name == "" {
		t.Skip("skipped: the kernel has AF_CAN; set SOCKSTACK_HOST_CAN=vcan0 to name an interface to attach")
	}
	bus := NewCANBus("host", CANBusOptions{})
	h, err := AttachHostCAN(bus, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHostCANRefusedWithoutAFCAN(t *testing.T) {
	if HostCANAvailable() == nil {
		t.Skip("skipped: the kernel has AF_CAN, so there is no refusal to check")
	}
	if _, err := AttachHostCAN(NewCANBus("x", CANBusOptions{}), "vcan0"); err == nil {
		t.Fatal("attach succeeded without AF_CAN")
	}
}
