package conformance

import "testing"

// inet6_cases.go keeps at least 100 cases (issue 9), each run on the
// kernel on ::1 and on sockstack.
func TestInet6CasesCount(t *testing.T) {
	if n := len(inet6Cases()); n < 100 {
		t.Fatalf("%d cases in inet6_cases.go, want at least 100", n)
	} else {
		t.Logf("%d cases in inet6_cases.go", n)
	}
}
