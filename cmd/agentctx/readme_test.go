package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlocks returns the ```sh blocks of the README's Usage section, in
// order.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	inUsage, inBlock := false, false
	var cur []string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			inUsage = line == "## Usage"
		case inUsage && !inBlock && line == "```sh":
			inBlock, cur = true, nil
		case inBlock && line == "```":
			inBlock = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case inBlock:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestREADME runs the README's usage blocks as written, in order, in an
// empty directory, with agentctx on the PATH: the README cannot drift from
// the CLI.
func TestREADME(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run the README's blocks")
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 4 {
		t.Fatalf("only %d usage blocks found", len(blocks))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "agentctx")); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTCTX_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	work := t.TempDir()
	for i, block := range blocks {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
		cmd.Dir, cmd.Env = work, env
		// A block that fails half way may leave a server behind: it runs in
		// its own process group, killed afterwards, and Wait does not wait
		// for its pipes forever.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if err != nil {
			t.Fatalf("README usage block %d failed: %v\n%s\n--- the block:\n%s", i+1, err, out, block)
		}
		if testing.Verbose() {
			t.Logf("README usage block %d:\n%s", i+1, out)
		}
	}
}
