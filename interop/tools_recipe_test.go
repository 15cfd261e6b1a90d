package interop

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recipeMarker, on its own line right before a fenced block of
// README.md, marks the TAP recipe this test runs word for word.
const recipeMarker = "<!-- test: tap-recipe -->"

// readmeRecipe returns the marked block (or, while no block is marked,
// the first sh block that runs "./sockstack up").
func readmeRecipe(t *testing.T, readme string) string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	marked := -1
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	prev := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") && len(line) > 3 {
			isMarked := strings.TrimSpace(prev) == recipeMarker
			var body []string
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "```") {
				body = append(body, sc.Text())
			}
			if isMarked {
				marked = len(blocks)
			}
			blocks = append(blocks, strings.Join(body, "\n")+"\n")
			prev = ""
			continue
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if marked >= 0 {
		return blocks[marked]
	}
	for _, bl := range blocks {
		if strings.Contains(bl, "./sockstack up") {
			t.Logf("README.md has no %s marker yet; running the block that starts ./sockstack up", recipeMarker)
			return bl
		}
	}
	t.Fatalf("README.md has no TAP recipe (a fenced block after %s)", recipeMarker)
	return ""
}

// The README's TAP recipe, run as a user would paste it into a root
// shell in the repository: it must work, services (dns included) and
// all.
func TestInteropReadmeTapRecipe(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "ping", "curl", "bash", "go")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script := readmeRecipe(t, filepath.Join(repo, "README.md"))
	// The recipe names its namespace and files; they must not be in use.
	nsRe := regexp.MustCompile(`ip netns add (\S+)`)
	m := nsRe.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("the recipe makes no namespace:\n%s", script)
	}
	ns := m[1]
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Fatalf("namespace %s already exists: the recipe cannot run beside it", ns)
	}
	builtHere := !fileExists(filepath.Join(repo, "sockstack"))
	var files []string
	for _, f := range regexp.MustCompile(`/tmp/[\w.\-]+`).FindAllString(script, -1) {
		if !fileExists(f) {
			files = append(files, f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-x", "-c", script)
	cmd.Dir = repo
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Cleanup(func() {
		// Whatever happened: the recipe's processes, namespace and files go.
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
		exec.Command("ip", "netns", "del", ns).Run()
		if builtHere {
			os.Remove(filepath.Join(repo, "sockstack"))
		}
		for _, f := range files {
			os.Remove(f)
		}
	})
	err = cmd.Run()
	text := out.String()
	if err != nil {
		t.Fatalf("the README recipe failed: %v\n%s", err, text)
	}
	if !regexp.MustCompile(`\d+ packets transmitted, [1-9]\d* received`).MatchString(text) {
		t.Errorf("ping got no answer from sockstack:\n%s", text)
	}
	if strings.Contains(script, "dns") && !strings.Contains(text, "dns") {
		t.Errorf("the recipe's --serve has dns but up did not start it:\n%s", text)
	}
	for _, bad := range []string{"unknown service", "sockstack: ", "404 page not found", "File not found", "Connection refused"} {
		if strings.Contains(text, bad) {
			t.Errorf("the recipe's output has %q:\n%s", bad, text)
		}
	}
	if strings.Contains(script, "netstat") && !strings.Contains(text, "LISTEN") {
		t.Errorf("netstat shows no listening socket:\n%s", text)
	}
	t.Logf("README recipe output:\n%s", text)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
