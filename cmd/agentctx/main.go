// Command agentctx creates, inspects and verifies Agent Context Tokens (ACT)
// and Execution Context Tokens (ECT), and keeps them in a verifiable ledger.
//
// Run "agentctx help" for the commands and "agentctx help exit-codes" for
// the exit status contract. Data goes to standard output; diagnostics go to
// standard error as "agentctx: error: ..." with, where it helps,
// "agentctx: hint: ...".
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/agentctx/agentctx"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a subcommand may touch.
type env struct {
	stdin  io.Reader
	stdout io.Writer // data: an *output
	stderr io.Writer
	out    *output
	getenv func(string) (string, bool)
	// listing is set while the completion generator builds every command's
	// flags: parseFlags records the flag set and stops the command.
	listing func(*flags)
}

// exitError carries an exit status and optional hint to run.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }

// usagef reports a usage, configuration or I/O error (exit 2).
func usagef(hint, format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...), hint: hint}
}

// failf reports a verification or operation failure (exit 1).
func failf(format string, args ...any) error {
	return &exitError{code: 1, err: fmt.Errorf(format, args...)}
}

// silent is an exit status whose diagnostics were already printed.
type silent int

func (s silent) Error() string { return fmt.Sprintf("exit %d", int(s)) }

// command is one node of the command tree: a command that runs, or a group
// of subcommands.
type command struct {
	name    string
	summary string
	run     func(*env, []string) error
	subs    []*command
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *command) subNames() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// root is the command tree. Every command's flags are defined in its run
// function; the help, usage and completion are derived from it.
var root *command

func init() { root = commandTree() }

func commandTree() *command {
	return &command{name: "agentctx", subs: []*command{
		{name: "keygen", summary: "create a signing key (private JWK file, public JWK on stdout)", run: cmdKeygen},
		{name: "keys", summary: "public keys and trust files", subs: []*command{
			{name: "public", summary: "print the public JWK of a key file", run: cmdKeysPublic},
			{name: "trust", summary: "write a trust file binding keys to an issuer", run: cmdKeysTrust},
		}},
		{name: "ect", summary: "Execution Context Tokens", subs: []*command{
			{name: "create", summary: "sign the ECT of a task", run: cmdECTCreate},
		}},
		{name: "act", summary: "Agent Context Tokens: mandates, delegation, records", subs: []*command{
			{name: "mandate", summary: "authorize an agent (phase 1)", run: cmdACTMandate},
			{name: "delegate", summary: "delegate a narrower mandate", run: cmdACTDelegate},
			{name: "record", summary: "record the execution of a mandate (phase 2)", run: cmdACTRecord},
		}},
		{name: "inspect", summary: "show a token's header and claims, UNVERIFIED", run: cmdInspect},
		{name: "verify", summary: "verify ECTs and ACTs", run: cmdVerify},
		{name: "dag", summary: "draw and check the DAG of tokens given directly", run: cmdDag},
		{name: "ledger", summary: "the verifiable audit ledger", subs: []*command{
			{name: "init", summary: "create a ledger and its signing key", run: cmdLedgerInit},
			{name: "pubkey", summary: "print the ledger's verifier key", run: cmdLedgerPubkey},
			{name: "append", summary: "verify and append tokens, print receipts", run: cmdLedgerAppend},
			{name: "checkpoint", summary: "print the latest signed checkpoint", run: cmdLedgerCheckpoint},
			{name: "prove", summary: "print a receipt or a consistency proof", run: cmdLedgerProve},
			{name: "get", summary: "print the entries of a task or an index", run: cmdLedgerGet},
			{name: "list", summary: "list recent entries or workflows", run: cmdLedgerList},
			{name: "workflow", summary: "draw a workflow's DAG", run: cmdLedgerWorkflow},
			{name: "export", summary: "write a workflow's evidence bundle", run: cmdLedgerExport},
			{name: "verify-bundle", summary: "check an evidence bundle offline", run: cmdLedgerVerifyBundle},
			{name: "verify", summary: "audit the whole ledger", run: cmdLedgerVerify},
		}},
		{name: "serve", summary: "the audit service: JSON API, C2SP tiles, metrics, web page", run: cmdServe},
		{name: "witness", summary: "a C2SP tlog-witness for ledgers (or any log of C2SP checkpoints)", subs: []*command{
			{name: "keygen", summary: "make a witness key, print its public key", run: cmdWitnessKeygen},
			{name: "serve", summary: "cosign checkpoints consistent with what was cosigned before", run: cmdWitnessServe},
		}},
		{name: "receipt", summary: "ledger receipts", subs: []*command{
			{name: "verify", summary: "check a receipt offline", run: cmdReceiptVerify},
		}},
		{name: "checkpoint", summary: "ledger checkpoints", subs: []*command{
			{name: "verify", summary: "check a checkpoint, or two and their consistency proof, offline", run: cmdCheckpointVerify},
		}},
		{name: "wimse", summary: "WIMSE workload identity tokens", subs: []*command{
			{name: "wit", summary: "issue a WIT (development and tests)", run: cmdWIMSEWit},
			{name: "verify", summary: "validate a WIT", run: cmdWIMSEVerify},
		}},
		{name: "call", summary: "a curl-like client: ECT, WIT and proof attached, the response verified", run: cmdCall},
		{name: "proxy", summary: "the inbound sidecar: verify callers, forward, sign the ECT of the work", run: cmdProxy},
		{name: "demo", summary: "agents with a fork and a join, an embedded ledger, receipts, audit", run: cmdDemo},
		{name: "completion", summary: "print shell completion (bash, zsh, fish)", run: cmdCompletion},
		{name: "help", summary: "help on a command, or on exit-codes", run: nil},
		{name: "version", summary: "print the version", run: cmdVersion},
	}}
}

// exitCodes is the exit status contract (README, agentctx help exit-codes).
const exitCodes = `Exit status of every agentctx command:

  0  everything verified, appended or written as asked
  1  at least one verification or append was refused (single token or batch,
     like sha256sum -c), or a signature was refused because the token would
     not verify
  2  usage, configuration or I/O error: a bad flag, a missing or unreadable
     file, a trust file lacking a key the audit needs, a failed write of the
     output (for example to a full disk)

A batch (--batch) prints one result per input line, in order, whatever the
verdicts, and then exits 1 if any line was refused.
`

func usageText() string {
	var b strings.Builder
	b.WriteString("agentctx: create, verify and audit signed records of what AI agents were authorised to do and did (ACT, ECT)\n\nCommands:\n")
	for _, c := range root.subs {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
		for _, s := range c.subs {
			fmt.Fprintf(&b, "    %-14s %s\n", s.name, s.summary)
		}
	}
	b.WriteString("\nRun \"agentctx help COMMAND\" or \"agentctx COMMAND -h\" for its flags, \"agentctx help exit-codes\" for the exit status.\n")
	b.WriteString("Every flag may also come from the environment as AGENTCTX_<FLAG> (AGENTCTX_TRUST, AGENTCTX_DB, ...); flags win.\n")
	return b.String()
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &output{w: stdout}
	e := &env{stdin: stdin, stdout: out, stderr: stderr, out: out, getenv: os.LookupEnv}
	return finish(e, args, dispatch(e, args))
}

// dispatch finds the command of args and runs it.
func dispatch(e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText())
		return silent(2)
	}
	switch args[0] {
	case "-h", "--help", "-help":
		fmt.Fprint(e.stdout, usageText())
		return nil
	case "--version", "-version":
		return cmdVersion(e, nil)
	case "help":
		return cmdHelp(e, args[1:])
	}
	c, rest, err := find(args)
	if err != nil {
		return err
	}
	return c.run(e, rest)
}

// find walks the command tree along args and returns the command to run
// with its arguments.
func find(args []string) (*command, []string, error) {
	c := root.sub(args[0])
	if c == nil {
		return nil, nil, usagef("run \"agentctx help\" for the list of commands", "unknown command %s", describeArg(args[0]))
	}
	args = args[1:]
	for c.subs != nil {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return groupHelp(c), nil, nil
		}
		if len(args) == 0 {
			return nil, nil, usagef(fmt.Sprintf("subcommands of %s: %s", c.name, c.subNames()), "agentctx %s needs a subcommand", c.name)
		}
		s := c.sub(args[0])
		if s == nil {
			return nil, nil, usagef(fmt.Sprintf("subcommands of %s: %s", c.name, c.subNames()), "unknown %s subcommand %s", c.name, describeArg(args[0]))
		}
		c, args = s, args[1:]
	}
	return c, args, nil
}

// groupHelp is the help of a group of subcommands (agentctx ledger -h).
func groupHelp(c *command) *command {
	return &command{name: c.name, run: func(e *env, _ []string) error {
		fmt.Fprintf(e.stdout, "Usage: agentctx %s SUBCOMMAND [flags]\n\nSubcommands:\n", c.name)
		for _, s := range c.subs {
			fmt.Fprintf(e.stdout, "  %-14s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(e.stdout, "\nRun \"agentctx %s SUBCOMMAND -h\" for its flags.\n", c.name)
		return nil
	}}
}

func cmdHelp(e *env, args []string) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(e.stdout, usageText())
		return nil
	case args[0] == "exit-codes":
		fmt.Fprint(e.stdout, exitCodes)
		return nil
	}
	c := root.sub(args[0])
	if c != nil && len(c.subs) > 0 && len(args) == 1 {
		return groupHelp(c).run(e, nil)
	}
	c, _, err := find(args)
	if err != nil {
		return err
	}
	return c.run(e, []string{"-h"})
}

// finish writes what --out collected, reports err the documented way, and
// returns the exit status. A failed write of the output is exit 2, whatever
// the command's verdict.
func finish(e *env, args []string, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		if werr := e.out.commit(); werr != nil {
			return report(e, args, usagef("check the disk and the --out path", "writing the output: %v", werr))
		}
		return 0
	}
	if werr := e.out.failed(); werr != nil {
		return report(e, args, usagef("check the disk and the --out path", "writing the output: %v", werr))
	}
	return report(e, args, err)
}

// report prints err the documented way, with every argument that may be a
// secret removed, and returns the exit status.
func report(e *env, args []string, err error) int {
	var s silent
	if errors.As(err, &s) {
		return int(s)
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(e.stderr, "agentctx: error: %s\n", redact(safeText(err.Error()), args))
	if ee != nil && ee.hint != "" {
		fmt.Fprintf(e.stderr, "agentctx: hint: %s\n", redact(ee.hint, args))
	}
	return code
}

// describe renders err with its code and rule when it carries them.
func describe(err error) string {
	var e *agentctx.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%v [%s, %s]", err, e.Code, e.Rule)
	}
	return err.Error()
}

// commandNames lists "cmd" and "cmd sub" for every runnable command, sorted.
func commandNames() []string {
	var out []string
	var walk func(prefix string, c *command)
	walk = func(prefix string, c *command) {
		for _, s := range c.subs {
			name := strings.TrimSpace(prefix + " " + s.name)
			if s.run != nil {
				out = append(out, name)
			}
			walk(name, s)
		}
	}
	walk("", root)
	sort.Strings(out)
	return out
}
