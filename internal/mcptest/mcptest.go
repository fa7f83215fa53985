// Package mcptest starts the reference MCP server from npm
// (@modelcontextprotocol/server-everything, pinned in testdata/mcp) for
// the tests of the MCP binding and the proxy's MCP mode.
package mcptest

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Reference starts the reference server's Streamable HTTP transport on a
// free port of 127.0.0.1 (testdata/mcp/bind-localhost.cjs keeps it off
// other addresses) and returns its base URL; its endpoint is /mcp. Without
// Node.js or the npm install (.ci/run: npm ci --prefix testdata/mcp) the
// test skips, unless CI=true, where it fails.
func Reference(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "mcp")
	entry := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(entry); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("BND-7: the reference MCP server is not installed under CI (npm ci --prefix testdata/mcp): %v %v", err, serr)
		}
		t.Skip("BND-7: Node.js or the reference MCP server is missing (npm ci --prefix testdata/mcp)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	cmd := exec.Command(node, "-r", filepath.Join(dir, "bind-localhost.cjs"), entry, "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/mcp"); err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatal("the reference MCP server did not start")
		}
	}
}
