// Command agentctx creates, inspects and verifies Agent Context Tokens (ACT)
// and Execution Context Tokens (ECT).
//
// Usage:
//
//	agentctx keygen --alg ES256|EdDSA --kid KID --out FILE
//	agentctx keys public FILE
//	agentctx keys trust --id ISSUER|--prefix PREFIX PUBFILE...
//	agentctx ect create --key FILE --iss ISS --aud AUD --exec-act ACT [flags]
//	agentctx act mandate|delegate|record ...
//	agentctx inspect [TOKEN|-]
//	agentctx verify --trust FILE --audience ID [flags] [TOKEN|-]
//	agentctx demo
//
// Exit status: 0 success (a valid token), 1 verification or operation
// failure, 2 usage or configuration error. Data goes to standard output;
// diagnostics go to standard error as "agentctx: error: ..." with, where it
// helps, "agentctx: hint: ...".
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentctx/agentctx"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a subcommand may touch.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries an exit status and optional hint to run.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }

// usagef reports a usage or configuration error (exit 2).
func usagef(hint, format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...), hint: hint}
}

// failf reports an operation failure (exit 1).
func failf(format string, args ...any) error {
	return &exitError{code: 1, err: fmt.Errorf(format, args...)}
}

// silent is an exit status whose diagnostics were already printed.
type silent int

func (s silent) Error() string { return fmt.Sprintf("exit %d", int(s)) }

const usage = `agentctx: create, inspect and verify agent accountability tokens (ACT, ECT)

Usage:
  agentctx keygen --alg ES256|EdDSA --kid KID --out FILE
  agentctx keys public FILE
  agentctx keys trust (--id ISSUER | --prefix PREFIX) PUBFILE...
  agentctx ect create --key FILE --iss ISS --aud AUD --exec-act ACT [--pred JTI]... [flags]
  agentctx act mandate --key FILE --iss ISS --sub SUB --aud AUD --purpose TEXT --cap ACTION[=JSON]... [flags]
  agentctx act delegate --key FILE --parent CHAIN --sub SUB --aud AUD --cap ACTION[=JSON]... [flags]
  agentctx act record --key FILE --mandate CHAIN --exec-act ACTION --status STATUS [flags]
  agentctx inspect [TOKEN|-]
  agentctx verify --trust FILE --audience ID [--kind ect|act] [--json] [--batch FILE|-] [TOKEN|-]
  agentctx dag [--format json|dot|mermaid|text] (--batch FILE | TOKEN...)
  agentctx ledger init|pubkey|append|checkpoint|prove|get|workflow|verify --db FILE ...
  agentctx receipt verify --ledger-key VKEY --receipt FILE --token FILE
  agentctx checkpoint verify --ledger-key-file VKEY (--checkpoint FILE | --old FILE --new FILE --proof FILE)
  agentctx demo

Run "agentctx COMMAND -h" for the flags of a command.
Exit status: 0 ok, 1 verification or operation failure, 2 usage or configuration error.
`

var commands = map[string]func(e *env, args []string) error{
	"keygen":     cmdKeygen,
	"keys":       cmdKeys,
	"ect":        cmdECT,
	"act":        cmdACT,
	"inspect":    cmdInspect,
	"verify":     cmdVerify,
	"demo":       cmdDemo,
	"ledger":     cmdLedger,
	"receipt":    cmdReceipt,
	"checkpoint": cmdCheckpoint,
	"dag":        cmdDag,
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "agentctx: error: unknown command %q\nagentctx: hint: run \"agentctx --help\" for the list of commands\n", args[0])
		return 2
	}
	return report(stderr, cmd(e, args[1:]))
}

// report prints err the documented way and returns the exit status.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var s silent
	if errors.As(err, &s) {
		return int(s)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stderr, "agentctx: error: %s\n", err)
	if ee != nil && ee.hint != "" {
		fmt.Fprintf(stderr, "agentctx: hint: %s\n", ee.hint)
	}
	return code
}

// examples are shown in the usage of the commands that have one.
var examples = map[string]string{
	"keygen":        "agentctx keygen --alg EdDSA --kid agent-a-1 --out agent-a.jwk > agent-a.pub.jwk",
	"keys trust":    "agentctx keys trust --id spiffe://example.com/agent/a agent-a.pub.jwk > trust.json",
	"ect create":    "agentctx ect create --key agent-a.jwk --iss spiffe://example.com/agent/a --aud spiffe://example.com/agent/b --exec-act review_spec --input spec.md",
	"verify":        "agentctx verify --trust trust.json --audience spiffe://example.com/agent/b --json \"$TOKEN\"",
	"act mandate":   "agentctx act mandate --key a.jwk --iss A --sub B --aud B --purpose report --cap 'read.data={\"max_calls\":10}' > m1",
	"act delegate":  "agentctx act delegate --key b.jwk --parent @m1 --sub C --aud C --cap 'read.data={\"max_calls\":5}' > chain",
	"act record":    "agentctx act record --key c.jwk --mandate @chain --exec-act read.data --status completed --input q.sql",
	"ledger init":   "agentctx ledger init --db ledger.db --id spiffe://example.com/system/ledger --key-out ledger.key > ledger.vkey",
	"ledger append": "agentctx ledger append --db ledger.db --key ledger.key --trust trust.json --batch tokens.txt",
	"dag":           "agentctx dag --format mermaid --batch tokens.txt",
}

// newFlags returns a FlagSet that reports errors as usage errors.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: agentctx %s\n", synopsis)
		if ex, ok := examples[name]; ok {
			fmt.Fprintf(e.stderr, "\nExample:\n  %s\n", ex)
		}
		fmt.Fprintf(e.stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return silent(2) // the flag package already printed the error and usage
	}
	return nil
}

// parseFlagsNoArgs is parseFlags for commands that take no positional
// argument.
func parseFlagsNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("", "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// describe renders err with its code and rule when it carries them.
func describe(err error) string {
	var e *agentctx.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%v [%s, %s]", err, e.Code, e.Rule)
	}
	return err.Error()
}

// readInput returns the token from the single argument, "-" or no argument
// meaning standard input, with surrounding white space removed.
func readInput(e *env, args []string) (string, error) {
	switch {
	case len(args) > 1:
		return "", usagef("", "expected one token, got %d arguments", len(args))
	case len(args) == 1 && args[0] != "-":
		return strings.TrimSpace(args[0]), nil
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, 1<<20))
	if err != nil {
		return "", failf("reading standard input: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}
