package link

import "testing"

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want bool
	}{
		{"6.18.44", true}, {"6.2.0", true}, {"6.2", true}, {"6.1.0-18-amd64", false},
		{"5.15.0-91-generic", false}, {"7.0", true}, {"10.1.2", true}, {"", false}, {"x6.5", false}, {"6", false},
	} {
		if got := kernelAtLeast(c.rel, 6, 2); got != c.want {
			t.Errorf("kernelAtLeast(%q, 6, 2) = %v, want %v", c.rel, got, c.want)
		}
	}
}
