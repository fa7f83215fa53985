package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/ledger"
)

// cli runs agentctx in-process with an empty environment.
func cli(t *testing.T, dir string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stderr: &errb, getenv: func(string) (string, bool) { return "", false }}
	e.out = &output{w: &out}
	e.stdout = e.out
	code = finish(e, args, dispatch(e, args))
	return out.String(), errb.String(), code
}

// TestSecretsNeverEchoed: a private key, a token, a ledger signing key or a
// URL with a password given where a path is expected is never printed; the
// message says what the value looks like and which flag took it.
func TestSecretsNeverEchoed(t *testing.T) {
	dir := t.TempDir()
	key := testkeys.EdDSA("cli secrets", "k1")
	jwk, err := key.MarshalJWK()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ect.Create(key, &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"b"}, ExecAct: "x"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := ledger.GenerateKey("spiffe://ex.com/ledger")
	const password = "s3cret-pw-42"
	pgURL := "postgres://agent:" + password + "@127.0.0.1:1/ledger?connect_timeout=1"
	secrets := map[string]string{"jwk": string(jwk), "token": tok, "ledger key": skey, "url": pgURL}
	// The bits that must never appear: the JWK's private d, the token's
	// payload and signature, the ledger key, the password.
	var d struct{ D string }
	_ = jsonUnmarshal(jwk, &d)
	needles := []string{d.D, tok[strings.IndexByte(tok, '.')+1:], tok[strings.LastIndexByte(tok, '.')+1:], skey, password}
	commands := [][]string{
		{"ect", "create", "--key", "X", "--iss", "a", "--aud", "b", "--exec-act", "x"},
		{"ect", "create", "--key", "X"},
		{"act", "mandate", "--key", "X", "--iss", "a", "--sub", "b", "--aud", "b", "--purpose", "p", "--cap", "a.b"},
		{"keys", "public", "X"},
		{"keys", "trust", "--id", "a", "X"},
		{"keys", "trust", "--id", "a", "--merge", "X", "X"},
		{"keygen", "--out", "X"},
		{"verify", "--trust", "X", "--aud", "b", "t"},
		{"verify", "--batch", "X", "--trust", "X", "--aud", "b"},
		{"verify", "--receipts", "X", "--ledger-key-file", "X", "--trust", "X", "--aud", "b", "t"},
		{"verify", "--ledger", "X", "--trust", "X", "--aud", "b", "t"},
		{"ledger", "append", "--db", "X", "--key", "X", "--trust", "X", "t"},
		{"ledger", "init", "--db", "X", "--id", "spiffe://ex.com/l", "--key-out", "X"},
		{"ledger", "verify", "--db", "X", "--trust", "X", "--ledger-key-file", "X", "--checkpoint", "X"},
		{"ledger", "get", "--db", "X", "--index", "0"},
		{"ledger", "export", "--db", "X", "--wid", "X"},
		{"receipt", "verify", "--ledger-key-file", "X", "--receipt", "X", "--token", "X"},
		{"checkpoint", "verify", "--ledger-key-file", "X", "--checkpoint", "X"},
		{"dag", "--batch", "X"},
		{"ect", "create", "--key", "X", "--iss", "a", "--aud", "b", "--exec-act", "x", "--input", "X"},
		{"ledger", "verify-bundle", "X"},
		{"inspect", "@X"},
		{"verify", "--now", "X", "--trust", "X", "--aud", "b", "t"},
	}
	for name, secret := range secrets {
		for _, c := range commands {
			dir := t.TempDir()
			args := make([]string, len(c))
			for i, a := range c {
				switch a {
				case "X":
					a = secret
				case "@X":
					a = "@" + secret
				}
				args[i] = a
			}
			stdout, stderr, code := cli(t, dir, "", args...)
			if code == 0 {
				t.Errorf("%s in %v: exit 0", name, c)
			}
			for _, n := range needles {
				if n != "" && (strings.Contains(stderr, n) || strings.Contains(stdout, n) && c[0] != "inspect") {
					t.Errorf("%s in %v: output holds the secret:\n%s", name, c, stderr)
				}
			}
			if !strings.Contains(stderr, "agentctx: error: ") {
				t.Errorf("%s in %v: stderr %q", name, c, stderr)
			}
		}
	}
	// The message says what the value was taken for.
	_, stderr, code := cli(t, dir, "", "ect", "create", "--key", string(jwk), "--iss", "a", "--aud", "b", "--exec-act", "x")
	if code != 2 || !strings.Contains(stderr, "--key looks like a JWK, not a file path") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestOutputWriteFailure: a failed write of the output is exit 2 (a full
// disk, as > /dev/full), and --out leaves nothing behind on failure.
func TestOutputWriteFailure(t *testing.T) {
	dir := t.TempDir()
	key := testkeys.EdDSA("cli out", "k1")
	jwk, _ := key.MarshalJWK()
	kf := filepath.Join(dir, "k.jwk")
	os.WriteFile(kf, jwk, 0o600)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full on this system")
	}
	defer full.Close()
	var errb bytes.Buffer
	code := run([]string{"keys", "public", kf}, strings.NewReader(""), full, &errb)
	if code != 2 || !strings.Contains(errb.String(), "writing the output") {
		t.Fatalf("> /dev/full: exit %d: %s", code, errb.String())
	}
	_, stderr, code := cli(t, dir, "", "keys", "public", "--out", filepath.Join(dir, "no", "such", "dir", "pub.jwk"), kf)
	if code != 2 || !strings.Contains(stderr, "writing the output") {
		t.Fatalf("--out into a missing folder: exit %d: %s", code, stderr)
	}
	// A refused command does not touch --out.
	os.WriteFile(filepath.Join(dir, "keep"), []byte("kept\n"), 0o644)
	if _, _, code := cli(t, dir, "", "keys", "public", "--out", "keep", "missing.jwk"); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "kept\n" {
		t.Fatalf("--out replaced by a refused command: %q", b)
	}
}

// TestCompletion: the scripts name every command and its flags, and the
// bash one parses.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, stderr, code := cli(t, dir, "", "completion", sh)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", sh, code, stderr)
		}
		for _, want := range []string{"ledger", "verify-bundle", "trust", "ledger-key-file"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s completion lacks %q", sh, want)
			}
		}
		if sh == "bash" {
			if _, err := exec.LookPath("bash"); err == nil {
				f := filepath.Join(dir, "c.bash")
				os.WriteFile(f, []byte(out), 0o644)
				if b, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
					t.Fatalf("bash -n: %v %s", err, b)
				}
				script := "source " + f + "; COMP_WORDS=(agentctx ledger ver); COMP_CWORD=2; _agentctx; echo ${COMPREPLY[@]}; " +
					"COMP_WORDS=(agentctx ledger verify --led); COMP_CWORD=3; _agentctx; echo ${COMPREPLY[@]}"
				b, err := exec.Command("bash", "-c", script).CombinedOutput()
				if err != nil || !strings.Contains(string(b), "verify-bundle") || !strings.Contains(string(b), "--ledger-key-file") {
					t.Fatalf("bash completion: %v %s", err, b)
				}
			}
		}
	}
	if _, _, code := cli(t, dir, "", "completion", "tcsh"); code != 2 {
		t.Fatal("unknown shell accepted")
	}
}

// TestStdinTerminal: /dev/null is a character device but no terminal: it
// reads as empty input, it is not refused as a terminal.
func TestStdinTerminal(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Skip("no /dev/null")
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("/dev/null taken for a terminal")
	}
	if isTerminal(strings.NewReader("")) {
		t.Fatal("a reader taken for a terminal")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestEveryCommandHelp: -h on every command and subcommand prints its usage
// on standard output and exits 0.
func TestEveryCommandHelp(t *testing.T) {
	dir := t.TempDir()
	names := commandNames()
	if len(names) < 20 {
		t.Fatalf("%d commands", len(names))
	}
	for _, name := range names {
		out, stderr, code := cli(t, dir, "", append(strings.Fields(name), "-h")...)
		if code != 0 || !strings.HasPrefix(out, "Usage: agentctx "+name) || stderr != "" {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q", name, code, out, stderr)
		}
	}
}
