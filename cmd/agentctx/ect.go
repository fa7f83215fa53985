package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

func cmdECT(e *env, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return usagef("subcommand: create", "agentctx ect needs a subcommand")
	}
	return cmdECTCreate(e, args[1:])
}

// nowFlag is --now UNIX; zero means the system clock.
type nowFlag struct{ t time.Time }

func (n *nowFlag) String() string {
	if n.t.IsZero() {
		return ""
	}
	return strconv.FormatInt(n.t.Unix(), 10)
}

func (n *nowFlag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("want seconds since the epoch, got %q", s)
	}
	n.t = time.Unix(v, 0)
	return nil
}

func (n *nowFlag) clock() func() time.Time {
	if n.t.IsZero() {
		return time.Now
	}
	t := n.t
	return func() time.Time { return t }
}

func loadKey(e *env, path string) (*trust.SigningKey, error) {
	if path == "" {
		return nil, usagef("create one with: agentctx keygen --alg EdDSA --kid KID --out FILE", "--key is required")
	}
	k, err := trust.LoadSigningKey(path, func(w string) { fmt.Fprintf(e.stderr, "agentctx: warning: %s\n", w) })
	if err != nil {
		return nil, usagef("", "%v", err)
	}
	return k, nil
}

func hashFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", usagef("", "%v", err)
	}
	defer f.Close()
	h, err := agentctx.HashReader(f)
	if err != nil {
		return "", failf("reading %s: %v", path, err)
	}
	return h, nil
}

func cmdECTCreate(e *env, args []string) error {
	fs := newFlags(e, "ect create", "ect create --key FILE --iss ISS --aud AUD [--aud AUD2]... --exec-act ACT [--pred JTI]... [--wid UUID] [--jti UUID] [--input FILE] [--output FILE] [--ext JSON] [--lifetime 10m] [--now UNIX]")
	keyPath := fs.String("key", "", "private key file (JWK or PEM) of the issuing agent")
	iss := fs.String("iss", "", "issuer: the agent's identifier, e.g. spiffe://example.com/agent/a")
	var aud, pred stringList
	fs.Var(&aud, "aud", "audience: every party that will verify the token (repeatable)")
	fs.Var(&pred, "pred", "jti of a predecessor task (repeatable); none marks a root task")
	execAct := fs.String("exec-act", "", "the action performed, e.g. review_spec")
	wid := fs.String("wid", "", "workflow id (UUID)")
	jti := fs.String("jti", "", "task id (UUID; default: a new UUIDv4)")
	input := fs.String("input", "", "file holding the task's exact input bytes (sets inp_hash)")
	output := fs.String("output", "", "file holding the task's exact output bytes (sets out_hash)")
	ext := fs.String("ext", "", "ect_ext: a JSON object of deployment extensions")
	lifetime := fs.Duration("lifetime", ect.DefaultLifetime, "time from iat to exp")
	var now nowFlag
	fs.Var(&now, "now", "issue time as seconds since the epoch (default: the system clock)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *lifetime <= 0 || *lifetime%time.Second != 0 {
		return usagef("example: --lifetime 10m", "--lifetime must be a positive whole number of seconds")
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	c := &ect.Claims{Issuer: *iss, Audience: aud, ExecAct: *execAct, Pred: pred, WorkflowID: *wid, ID: *jti}
	if c.InputHash, err = hashFile(*input); err != nil {
		return err
	}
	if c.OutputHash, err = hashFile(*output); err != nil {
		return err
	}
	if *ext != "" {
		if !json.Valid([]byte(*ext)) {
			return usagef(`example: --ext '{"com.example.ticket":"T-1"}'`, "--ext is not valid JSON")
		}
		c.Ext = json.RawMessage(*ext)
	}
	t := now.clock()().Truncate(time.Second)
	c.IssuedAt, c.Expiry = t, t.Add(*lifetime)
	tok, err := ect.Create(key, c, t)
	if err != nil {
		return usagef("", "the token would not verify, so it was not signed: %s", describe(err))
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
