package conformance

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	docPath     = flag.String("doc", "", "write the table of disagreements to this Markdown file")
	updateKnown = flag.Bool("update-known", false, "rewrite testdata/known/*.txt with the sockstack transcripts of the known differences")
	onlyCases   = flag.String("case", "", "run only the cases whose name matches this regular expression (no -doc then)")
	showAll     = flag.Bool("show", false, "log the transcript of every case run, agreeing or not")
)

// knownDir holds the pinned sockstack transcript of every known
// difference: a known difference passes only while sockstack still
// answers exactly that, so a new divergence inside a known case fails.
const knownDir = "testdata/known"

// pinPath is the file pinning case name's sockstack transcript.
func pinPath(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return filepath.Join(knownDir, string(b)+".txt")
}

// mayAgree lists the reasons whose cases can agree on another host
// (another default congestion control): agreeing there is no news.
func mayAgree(reason string) bool { return strings.HasPrefix(reason, "host configuration") }

type result struct {
	c            Case
	linux, stack []string
	skipped      string
}

func TestConformance(t *testing.T) {
	cases := Cases()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("duplicate case name %q", c.Name)
		}
		seen[c.Name] = true
	}
	pins := map[string]bool{}
	for name := range knownDifferences {
		if !seen[name] {
			t.Errorf("knownDifferences names no case: %q", name)
		}
		pins[pinPath(name)] = true
	}
	files, _ := filepath.Glob(filepath.Join(knownDir, "*.txt"))
	for _, f := range files {
		if !pins[f] {
			t.Errorf("%s pins no known difference: delete it", f)
		}
	}
	var only *regexp.Regexp
	if *onlyCases != "" {
		var err error
		if only, err = regexp.Compile(*onlyCases); err != nil {
			t.Fatal(err)
		}
		if *docPath != "" {
			t.Fatal("-doc needs the whole suite: drop -case")
		}
	}
	kernel := KernelEnv()
	var results []result
	agree, known, failed, skipped := 0, 0, 0, 0
	for _, c := range cases {
		if only != nil && !only.MatchString(c.Name) {
			continue
		}
		r := result{c: c}
		if c.Root && !kernel.Root {
			r.skipped = "needs root for raw sockets on the kernel (os.Geteuid() != 0)"
			t.Logf("skip %s: %s", c.Name, r.skipped)
			skipped++
			results = append(results, r)
			continue
		}
		r.linux = Run(kernel, c)
		if _, crashes := crashingCases[c.Name]; crashes {
			r.stack = runCrashing(t, c) // crash_test.go
		} else {
			se := StackEnv()
			r.stack = Run(se, c)
			se.Close()
		}
		results = append(results, r)
		same := strings.Join(r.linux, "\n") == strings.Join(r.stack, "\n")
		reason, isKnown := knownDifferences[c.Name]
		if *showAll {
			t.Logf("%s\n%s", c.Name, diff(r.linux, r.stack))
		}
		switch {
		case same:
			agree++
			if isKnown && !mayAgree(reason) {
				t.Errorf("%s agrees with Linux now but is listed as a known difference (%s): "+
					"remove its entry from knownDifferences (known_test.go) and delete %s",
					c.Name, reason, pinPath(c.Name))
			}
		case isKnown:
			known++
			t.Logf("known difference %s (%s)\n%s", c.Name, reason, diff(r.linux, r.stack))
			checkPin(t, c.Name, r.stack)
		default:
			failed++
			t.Errorf("%s differs\n%s", c.Name, diff(r.linux, r.stack))
		}
	}
	t.Logf("conformance: %d cases, %d agree, %d known differences, %d unexpected differences, %d skipped",
		len(results), agree, known, failed, skipped)
	if only != nil {
		t.Logf("(-case %q: %d of the %d cases run)", *onlyCases, len(results), len(cases))
	}
	if *docPath != "" {
		if err := writeDoc(*docPath, results, agree, known, failed, skipped); err != nil {
			t.Fatal(err)
		}
	}
}

// checkPin compares a known difference's sockstack transcript with its
// pin (or rewrites the pin with -update-known).
func checkPin(t *testing.T, name string, got []string) {
	t.Helper()
	if *updateKnown {
		if err := os.MkdirAll(knownDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pinPath(name), []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if msg := pinMismatch(name, pinPath(name), got); msg != "" {
		t.Error(msg)
	}
}

// pinMismatch says how got differs from the transcript pinned in path
// ("" when it does not).
func pinMismatch(name, path string, got []string) string {
	want, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("%s: known difference without a pinned transcript (%v); "+
			"check the transcript and pin it: go test ./conformance -run TestConformance -args -update-known", name, err)
	}
	if string(want) == strings.Join(got, "\n")+"\n" {
		return ""
	}
	pinned := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	return fmt.Sprintf("%s: sockstack's answer changed inside a known difference (pinned in %s)\n%s"+
		"If the new answer is intended, update the pin: go test ./conformance -run TestConformance -args -update-known",
		name, path, strings.ReplaceAll(diff(pinned, got), "linux:", "pinned:"))
}

func diff(linux, stack []string) string {
	var b strings.Builder
	n := max(len(linux), len(stack))
	for i := 0; i < n; i++ {
		l, s := "", ""
		if i < len(linux) {
			l = linux[i]
		}
		if i < len(stack) {
			s = stack[i]
		}
		mark := " "
		if l != s {
			mark = "!"
		}
		fmt.Fprintf(&b, "  %s linux: %-50s sockstack: %s\n", mark, l, s)
	}
	return b.String()
}

func writeDoc(path string, results []result, agree, known, failed, skipped int) error {
	var b strings.Builder
	b.WriteString("# Differential conformance: sockstack against the Linux kernel\n\n")
	b.WriteString("Generated by `go test ./conformance -run TestConformance -args -doc ../docs/conformance.md`.\n")
	b.WriteString("Each case runs through package sockapi on the kernel (package hostsock, 127.0.0.1,\n")
	b.WriteString("ephemeral ports) and on a fresh sockstack host (its loopback), and the transcripts of\n")
	b.WriteString("return values and errno names are compared.\n\n")
	fmt.Fprintf(&b, "**%d cases, %d agree, %d known differences, %d unexpected differences, %d skipped.**\n\n",
		len(results), agree, known, failed, skipped)
	bugs, design, notBuilt := 0, 0, 0
	for _, r := range results {
		if reason, ok := knownDifferences[r.c.Name]; ok && r.skipped == "" && strings.Join(r.linux, "\n") != strings.Join(r.stack, "\n") {
			if strings.HasPrefix(reason, "sockstack bug") {
				bugs++
			} else if strings.HasPrefix(reason, "not built yet") {
				notBuilt++
			} else {
				design++
			}
		}
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(&b, "Of the known differences, %d are by design or host configuration, %d are not built yet and %d are sockstack bugs\n", design, notBuilt, bugs)
	b.WriteString("reported to the owner of the package named in the reason; a fixed case starts to agree and the\n")
	fmt.Fprintf(&b, "test then asks for its entry to be removed. Kernel: Linux %s.\n\n", unix.ByteSliceToString(uts.Release[:]))
	b.WriteString("Notes: addresses are printed without their port numbers (labels such as `L` for the listener,\n")
	b.WriteString("`eph` for a port inside the side's own ephemeral range), because the ranges differ by design:\n")
	b.WriteString("Linux uses net.ipv4.ip_local_port_range (32768-60999 by default), sockstack the IANA range\n")
	b.WriteString("49152-65535. Kernel cases use only 127.0.0.0/8; the cases that name 198.51.100.7 (TEST-NET-2)\n")
	b.WriteString("expect bind, IP_ADD_MEMBERSHIP or IP_MULTICAST_IF to fail before anything is sent, and the only packets the suite\n")
	b.WriteString("sends go to loopback (multicast only after IP_MULTICAST_IF 127.0.0.1 succeeded). The AF_INET6 cases\n")
	b.WriteString("(`inet6/`, conformance/inet6_cases.go; `v6/`, conformance/cases6.go) use ::1, 127.0.0.1 and their v4-mapped\n")
	b.WriteString("forms; 2001:db8::7 and an unscoped fe80::1 appear only in calls that fail or send nothing.\n")
	b.WriteString("The sendmsg cases with IPV6_PKTINFO / IP_PKTINFO (`pktinfo/`, `inet6/pktinfo/`, conformance/pktinfo_cases.go)\n")
	b.WriteString("name interface index 9999 and the addresses above only in calls that fail before sending; `-args -case RE`\n")
	b.WriteString("runs only the cases whose name matches RE.\n")
	b.WriteString("The exception: `transparent/*/udp/pktinfo non-local source` (conformance/transparent_cases.go) sends, with\n")
	b.WriteString("IP_TRANSPARENT or IPV6_(TRANSPARENT|FREEBIND) set, one datagram from 198.51.100.7 or 2001:db8:77::7 to loopback.\n")
	b.WriteString("The IP_RECVERR cases (`recverr/`, conformance/recverr_cases.go) send datagrams to a closed port on 127.0.0.1\n")
	b.WriteString("or ::1, so that loopback answers port unreachable, and read the error queue; its control message is compared byte\n")
	b.WriteString("for byte, a local error's ee_info (the loopback MTU, 65536 on both sides) included.\n")
	b.WriteString("The IP-level control messages before it (`recverr/cmsg/`, conformance/recverr_cmsg_cases.go) are compared too,\n")
	b.WriteString("interface indexes included (loopback is 1 on both sides). The RFC 4884 cases (`recverr/rfc4884/`,\n")
	b.WriteString("conformance/recverr_rfc4884_cases.go) inject crafted ICMP and ICMPv6 errors with extension structures from a raw\n")
	b.WriteString("socket to 127.0.0.1 or ::1 only, quoting a datagram of the receiving socket.\n")
	b.WriteString("The receive-option cases (`recvopts/`, conformance/recvopts_cases.go: IP_RECVTTL, IP_RECVTOS, IP_RECVOPTS,\n")
	b.WriteString("IP_RETOPTS, IPV6_FLOWINFO; and IP_OPTIONS, `ipoptions/`, conformance/ipoptions_cases.go) compare recvmsg's whole\n")
	b.WriteString("control buffer byte for byte, a labelled port masked; their\n")
	b.WriteString("datagrams with IPv4 options are built by an IPPROTO_RAW socket and go to 127.0.0.1 only (the addresses\n")
	b.WriteString("10.1.2.3 and 198.51.100.7 appear only inside option bytes). The kernel labels IPv6 flows by itself\n")
	b.WriteString("(net.ipv6.auto_flowlabels), sockstack never does: the kernel's IPv6 senders of those cases have\n")
	b.WriteString("IPV6_AUTOFLOWLABEL turned off outside the transcript, so that a flow information word is the traffic class.\n")
	b.WriteString("The sendmsg control-message cases (`sendctl/`, conformance/sendctl_cases.go) send each datagram with a raw\n")
	b.WriteString("control buffer to 127.0.0.1 or ::1, then a plain one, and read both with the receive options on, so that what a\n")
	b.WriteString("message changed, and what a refused call did not send, are in the transcript.\n")
	b.WriteString("Reasons starting \"not built yet\" name the file or package that lacks the feature; a case in which\n")
	b.WriteString("sockstack crashes the process runs its sockstack side in a child process (conformance/crash_test.go)\n")
	b.WriteString("and pins the crash.\n\n")
	b.WriteString("Known differences are pinned: the sockstack transcript of each one is in\n")
	b.WriteString("`conformance/testdata/known/<case>.txt`. The test fails when sockstack's answer in a known case\n")
	b.WriteString("changes (a new divergence inside it) and when the case starts to agree with Linux (remove the\n")
	b.WriteString("entry from `conformance/known_test.go` and its pin); `-args -update-known` rewrites the pins after a\n")
	b.WriteString("change has been checked. Host-configuration entries may agree on another host.\n\n")
	b.WriteString("sockstack's loopback delivers on its own goroutine, while the kernel's has delivered a packet\n")
	b.WriteString("before send returns. Cases that look at the peer right after a send wait for delivery on\n")
	b.WriteString("sockstack: `Settled` (the sender's data acknowledged) and `Quiesce` (datagrams sent round the\n")
	b.WriteString("loopback queue until everything queued before them has been handled), both bounded by a timeout;\n")
	b.WriteString("the backlog cases connect their clients one at a time, as the kernel's synchronous loopback does.\n")
	b.WriteString("Five differences once listed as sockstack bugs were this harness timing (SHUT_RD and SHUT_RDWR\n")
	b.WriteString("with late data, the three backlog cases) and agree now; the full-accept-queue fix in tcp must keep\n")
	b.WriteString("them agreeing.\n\n")
	b.WriteString("## Disagreements\n\n| case | Linux | sockstack | reason |\n|---|---|---|---|\n")
	var rows []string
	for _, r := range results {
		if r.skipped != "" || strings.Join(r.linux, "\n") == strings.Join(r.stack, "\n") {
			continue
		}
		var ld, sd []string
		for i := 0; i < max(len(r.linux), len(r.stack)); i++ {
			l, s := "", ""
			if i < len(r.linux) {
				l = r.linux[i]
			}
			if i < len(r.stack) {
				s = r.stack[i]
			}
			if l != s {
				ld = append(ld, l)
				sd = append(sd, s)
			}
		}
		reason := knownDifferences[r.c.Name]
		if reason == "" {
			reason = "**not yet explained**"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", esc(r.c.Name), esc(strings.Join(ld, "; ")), esc(strings.Join(sd, "; ")), esc(reason)))
	}
	sort.Strings(rows)
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n")
	if skipped > 0 {
		b.WriteString("\n## Skipped\n\n")
		for _, r := range results {
			if r.skipped != "" {
				fmt.Fprintf(&b, "- %s: %s\n", r.c.Name, r.skipped)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func esc(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }
