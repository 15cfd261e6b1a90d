package conformance

import "testing"

// The AF_INET6 table keeps at least 100 cases (issue 9).
func TestCases6Count(t *testing.T) {
	if n := len(Cases6()); n < 100 {
		t.Fatalf("%d AF_INET6 cases, want at least 100", n)
	} else {
		t.Logf("%d AF_INET6 cases", n)
	}
}
