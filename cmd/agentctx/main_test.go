package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"agentctx": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI contract as scripts (testdata/script/*.txtar):
// commands, their output and exit status.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// status N cmd args...: run cmd and require exit status N.
			"status": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: status N command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("status: %v", err)
				}
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("status: %v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("exit status %d, want %d", got, want)
				}
			},
			// join OUT SEP FILE...: write the files' trimmed contents joined by SEP
			// (Go escapes allowed).
			"join": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 3 {
					ts.Fatalf("usage: join OUT SEP FILE...")
				}
				sep, err := strconv.Unquote(`"` + args[1] + `"`) // "\n" is a newline
				if err != nil {
					ts.Fatalf("join: separator: %v", err)
				}
				var parts []string
				for _, f := range args[2:] {
					parts = append(parts, strings.TrimSpace(ts.ReadFile(f)))
				}
				if err := os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Join(parts, sep)+"\n"), 0o644); err != nil {
					ts.Fatalf("join: %v", err)
				}
			},
			// perm FILE MODE: require the file's permission bits.
			"perm": func(ts *testscript.TestScript, neg bool, args []string) {
				fi, err := os.Stat(ts.MkAbs(args[0]))
				if err != nil {
					ts.Fatalf("perm: %v", err)
				}
				if got := fmt.Sprintf("%04o", fi.Mode().Perm()); (got == args[1]) == neg {
					ts.Fatalf("%s has mode %s (want %s%s)", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
				}
			},
		},
	})
}
