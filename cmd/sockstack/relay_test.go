package main

import (
	"strings"
	"testing"
)

// relay's flag errors name the problem and show the usage line; none of
// them opens a device.
func TestRelayFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"relay"}, []string{"relay needs --tun NAME", "usage: sockstack relay --tun NAME", "example: ip netns exec S sockstack relay"}},
		{[]string{"relay", "--tun", "tun0"}, []string{"relay needs --addr CIDR"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "banana"}, []string{`--addr: bad address "banana"`}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-conns", "0"}, []string{"--max-conns 0: want at least 1"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--max-udp-flows", "-1"}, []string{"--max-udp-flows -1: want at least 1"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--udp-timeout", "0s"}, []string{"--udp-timeout 0s: want a positive duration"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--connect-timeout", "-1s"}, []string{"--connect-timeout -1s: want a positive duration"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "--udp-timeout", "soon"}, []string{`invalid argument "soon" for "--udp-timeout"`, "usage: sockstack relay"}},
		{[]string{"relay", "--tap", "tap0", "--addr", "10.0.0.2/24"}, []string{"unknown flag: --tap", "usage: sockstack relay"}},
		{[]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24", "extra"}, []string{"unknown command \"extra\"", "usage: sockstack relay"}},
		{[]string{"relay", "--netns", "sockstack-no-such-ns", "--tun", "tun0", "--addr", "10.0.0.2/24"}, []string{"--netns sockstack-no-such-ns: no such network namespace"}},
	} {
		out, err := runCLI(t, "", c.args...)
		if err == nil {
			t.Errorf("%v: no error; output %q", c.args, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", c.args, err, w)
			}
		}
		if strings.Contains(err.Error(), "panic") || strings.Contains(err.Error(), "runtime error") {
			t.Errorf("%v: internal error %q", c.args, err)
		}
	}
}
