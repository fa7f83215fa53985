package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/agentctx/agentctx/internal/wire"
)

// This file is the one interface every command shares: how flags, the
// environment, tokens, files and secrets are taken, how help is printed and
// how output is written (docs/decisions.md D-61).

// flags is a command's flag set with what the shared parsing needs.
type flags struct {
	*flag.FlagSet
	e        *env
	synopsis string
	aliases  map[string]string // alias -> canonical name
	outPath  *string           // --out FILE, when the command offers it
}

// errHelp ends a command after its usage was printed (-h): exit 0.
var errHelp = errors.New("help shown")

// newFlags returns the flag set of command name. Flag errors never reach the
// terminal raw: parseFlags turns them into usage errors.
func newFlags(e *env, name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, e: e, synopsis: synopsis, aliases: map[string]string{}}
}

// alias makes --old set --name too (older spellings scripts use).
func (f *flags) alias(old, name string) {
	fl := f.Lookup(name)
	f.Var(fl.Value, old, "alias of --"+name)
	f.aliases[old] = name
}

// out offers --out FILE: the command's standard output is written to FILE
// atomically (a temporary file renamed into place) once the command
// succeeded, so that a refused command destroys nothing and FILE may be one
// of the command's inputs.
func (f *flags) out() {
	f.outPath = f.String("out", "", "write the output to FILE atomically (replaced only when the command succeeds)")
}

// usage writes the command's synopsis, example and flags.
func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: agentctx %s\n", f.synopsis)
	if ex, ok := examples[f.Name()]; ok {
		fmt.Fprintf(w, "\nExample:\n  %s\n", ex)
	}
	fmt.Fprintf(w, "\nFlags (also AGENTCTX_<FLAG> in the environment):\n")
	byName := map[string][]string{}
	for old, name := range f.aliases {
		byName[name] = append(byName[name], old)
	}
	f.VisitAll(func(fl *flag.Flag) {
		if _, ok := f.aliases[fl.Name]; ok {
			return
		}
		name, usage := flag.UnquoteUsage(fl)
		line := "  --" + fl.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", fl.DefValue)
		}
		if olds := byName[fl.Name]; len(olds) > 0 {
			sort.Strings(olds)
			fmt.Fprintf(w, " (alias --%s)", strings.Join(olds, ", --"))
		}
		fmt.Fprintln(w)
	})
}

// parseFlags parses args: flags may come before, between or after the
// positional arguments ("--" ends the flags); flags not given take
// AGENTCTX_<FLAG> from the environment; -h prints the usage on standard
// output (exit 0); any flag error is a usage error (exit 2).
func parseFlags(f *flags, args []string) error {
	if f.e.listing != nil {
		f.e.listing(f)
		return errHelp
	}
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.usage(f.e.stdout)
				return errHelp
			}
			return usagef(fmt.Sprintf("run \"agentctx %s -h\" for its flags", f.Name()), "%s", flagError(err))
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if err := f.fromEnv(); err != nil {
		return err
	}
	// Parse again with no flags to leave exactly the positional arguments.
	if err := f.Parse(append([]string{"--"}, pos...)); err != nil {
		return usagef("", "%s", flagError(err))
	}
	if f.outPath != nil && *f.outPath != "" {
		if err := outputPath("out", *f.outPath); err != nil {
			return err
		}
		f.e.out.toFile(*f.outPath)
	}
	return nil
}

// parseFlagsNoArgs is parseFlags for commands that take no positional
// argument.
func parseFlagsNoArgs(f *flags, args []string) error {
	if err := parseFlags(f, args); err != nil {
		return err
	}
	if f.NArg() != 0 {
		return usagef(fmt.Sprintf("run \"agentctx %s -h\" for its usage", f.Name()), "unexpected argument %s", describeArg(f.Arg(0)))
	}
	return nil
}

// fromEnv sets every flag not given on the command line from
// AGENTCTX_<FLAG> (upper case, "-" as "_"), when that variable is set.
func (f *flags) fromEnv() error {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) {
		set[fl.Name] = true
		if c, ok := f.aliases[fl.Name]; ok {
			set[c] = true
		}
	})
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if _, alias := f.aliases[fl.Name]; alias || set[fl.Name] || err != nil {
			return
		}
		name := "AGENTCTX_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := f.e.getenv(name); ok && v != "" { // an empty variable is unset
			if serr := f.Set(fl.Name, v); serr != nil {
				err = usagef("fix or unset the variable", "%s: %v", name, serr)
			}
		}
	})
	return err
}

// flagError rewords the flag package's errors in the CLI's words.
func flagError(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		return "unknown flag " + dashes(strings.TrimPrefix(msg, "flag provided but not defined: "))
	case strings.HasPrefix(msg, "flag needs an argument: "):
		return dashes(strings.TrimPrefix(msg, "flag needs an argument: ")) + " needs a value"
	case strings.HasPrefix(msg, "invalid value "), strings.HasPrefix(msg, "invalid boolean value "):
		// invalid value "V" for flag -name: reason
		if i := strings.Index(msg, " for flag -"); i >= 0 {
			rest := msg[i+len(" for flag -"):]
			if j := strings.Index(rest, ": "); j >= 0 {
				return "--" + rest[:j] + ": " + rest[j+2:]
			}
		}
	}
	return msg
}

func dashes(name string) string { return "--" + strings.TrimLeft(name, "-") }

// output is standard output as the commands see it: it remembers the first
// write error (a full disk, a closed pipe), and with --out it collects the
// data to write to a file atomically once the command succeeded.
type output struct {
	w    io.Writer
	path string
	buf  bytes.Buffer
	err  error
}

func (o *output) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.path != "" {
		return o.buf.Write(p)
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

func (o *output) toFile(path string) { o.path = path }

// outputPath refuses, for flagName, a file name that looks like a secret
// (a key pasted where a path was expected must not become a file name).
func outputPath(flagName, path string) error {
	if k := secretKind(path); k != "" {
		return usagef("give a file name", "--%s looks like %s, not a file path", flagName, k)
	}
	return nil
}

// failed returns the write error met so far; the command failed, so
// nothing is written to --out.
func (o *output) failed() error { return o.err }

// commit writes what --out collected: a temporary file in the same folder,
// synced, then renamed over path (keeping an existing file's mode).
func (o *output) commit() error {
	if o.err != nil || o.path == "" {
		return o.err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(o.path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.path), "."+filepath.Base(o.path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(o.buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), o.path)
}

// Secrets and arguments in messages.

var (
	jwsLike   = regexp.MustCompile(`^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(,|$)`)
	noteKey   = regexp.MustCompile(`PRIVATE\+KEY\+`)
	urlSecret = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s]*:[^/@\s]*@`)
)

// secretKind says what kind of secret-looking value s is ("" for none): a
// value passed where a path was expected is common in CI (--key
// "$AGENT_KEY"), and must never be echoed.
func secretKind(s string) string {
	t := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(t, "{") && (strings.Contains(t, `"kty"`) || strings.Contains(t, `"d"`) || strings.Contains(t, `"keys"`)):
		return "a JWK"
	case strings.Contains(t, "-----BEGIN"):
		return "PEM key material"
	case noteKey.MatchString(t):
		return "a ledger signing key"
	case jwsLike.MatchString(t):
		return "a token"
	case urlSecret.MatchString(t):
		return "a URL with a password"
	case strings.ContainsAny(t, "\n\r") || len(t) > 512:
		return "a value that is not a file path"
	}
	return ""
}

// describeArg names an argument in a message: quoted, unless it may be a
// secret, then only what it looks like.
func describeArg(s string) string {
	if k := secretKind(s); k != "" {
		return "(" + k + ", not shown)"
	}
	return strconv.Quote(s)
}

// redact removes from msg every argument that may be a secret, and the
// password of every URL.
func redact(msg string, args []string) string {
	for _, a := range args {
		vals := []string{a}
		if i := strings.IndexByte(a, '='); i > 0 && strings.HasPrefix(a, "-") {
			vals = append(vals, a[i+1:])
		}
		for _, v := range vals {
			if secretKind(v) == "" {
				if u, err := url.Parse(strings.TrimSpace(v)); err == nil && u.User != nil {
					if p, ok := u.User.Password(); ok && p != "" {
						msg = strings.ReplaceAll(msg, p, "xxxxx")
					}
				}
				continue
			}
			for _, part := range strings.Split(v, ",") { // a chain: each token
				if part = strings.TrimSpace(part); len(part) >= 8 {
					q := strconv.Quote(part) // also as a Go-quoted string
					msg = strings.ReplaceAll(strings.ReplaceAll(msg, q[1:len(q)-1], "[redacted]"), part, "[redacted]")
				}
			}
			if u, err := url.Parse(strings.TrimSpace(v)); err == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && p != "" {
					msg = strings.ReplaceAll(msg, p, "xxxxx")
				}
			}
		}
	}
	return msg
}

// safeText escapes the control characters of s (see wire.Printable): every
// text view goes through it.
func safeText(s string) string { return wire.Printable(s) }

// readFileArg reads the file named by flag (or an @FILE argument) without
// ever echoing a value that is not a path. A missing file is exit 2 naming
// the flag.
func readFileArg(flagName, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	return nil, fileError(flagName, path, err)
}

// fileError describes a failure to use path for flag.
func fileError(flagName, path string, err error) error {
	what := "--" + flagName
	if flagName == "" {
		what = "argument"
	}
	if k := secretKind(path); k != "" {
		return usagef(fmt.Sprintf("pass the file that holds it (%s FILE), or @FILE where a value is accepted", what),
			"%s looks like %s, not a file path", what, k)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return usagef("", "%s %s: %v", what, describeArg(path), err)
}

// mustExist refuses a database or file that a read-only command would
// otherwise create.
func mustExist(flagName, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fileError(flagName, path, err)
	}
	return nil
}

// isTerminal reports whether r is an interactive terminal (not merely a
// character device: /dev/null is one).
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readStdin reads standard input for what; from a terminal with nothing
// piped it says so instead of waiting silently.
func readStdin(e *env, what string) (string, error) {
	if isTerminal(e.stdin) {
		return "", usagef("pipe it in (agentctx ... < FILE), or pass it as an argument or @FILE", "reading %s from standard input, which is a terminal", what)
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, 16<<20))
	if err != nil {
		return "", usagef("", "reading standard input: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readToken takes a token the one way every command does: the token itself,
// @FILE, or - for standard input. flagName is "" for a positional argument.
func readToken(e *env, flagName, v string) (string, error) {
	switch {
	case v == "-":
		return readStdin(e, "a token")
	case strings.HasPrefix(v, "@"):
		b, err := readFileArg(flagName, v[1:])
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(v), nil
}

// readInput returns the token of the single positional argument (token,
// @FILE or -), standard input when there is none.
func readInput(e *env, args []string) (string, error) {
	switch len(args) {
	case 0:
		return readStdin(e, "a token")
	case 1:
		return readToken(e, "", args[0])
	}
	return "", usagef("give one token (or a comma-separated chain), @FILE or -", "expected one token, got %d arguments", len(args))
}

// nowFlag is --now: Unix seconds or RFC 3339; zero means the system clock.
type nowFlag struct{ t time.Time }

func (n *nowFlag) String() string {
	if n.t.IsZero() {
		return ""
	}
	return strconv.FormatInt(n.t.Unix(), 10)
}

func (n *nowFlag) Set(s string) error {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil && v >= 0 {
		n.t = time.Unix(v, 0)
		return nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		n.t = t
		return nil
	}
	return fmt.Errorf("want Unix seconds or RFC 3339 (2026-01-01T00:00:00Z), got %s", describeArg(s))
}

func (n *nowFlag) clock() func() time.Time {
	if n.t.IsZero() {
		return time.Now
	}
	t := n.t
	return func() time.Time { return t }
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func cmdVersion(e *env, args []string) error {
	fs := newFlags(e, "version", "version")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	version, rev, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	fmt.Fprintf(e.stdout, "agentctx %s", version)
	if rev != "" {
		fmt.Fprintf(e.stdout, " (revision %s", rev)
		if modified {
			fmt.Fprint(e.stdout, ", modified")
		}
		fmt.Fprint(e.stdout, ")")
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// serveUntilSignal runs serve (hs's Serve or ServeTLS) until SIGINT or
// SIGTERM, then stops accepting and finishes the requests in flight,
// bounded by 10 s. what names the server in an error.
func serveUntilSignal(hs *http.Server, serve func() error, what string) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return failf("%s stopped: %v", what, err)
		}
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.Shutdown(ctx)
	return nil
}
