package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

func loadKey(e *env, path string) (*trust.SigningKey, error) {
	if path == "" {
		return nil, usagef("create one with: agentctx keygen --alg EdDSA --kid KID --out FILE", "--key is required")
	}
	if err := mustExist("key", path); err != nil {
		return nil, err
	}
	k, err := trust.LoadSigningKey(path, func(w string) { fmt.Fprintf(e.stderr, "agentctx: warning: %s\n", w) })
	if err != nil {
		return nil, usagef("", "--key: %v", err)
	}
	return k, nil
}

// readPredTokens reads --pred-token values (token, @FILE or -): the
// predecessors' jtis, the tokens, and the first one's wid.
func readPredTokens(e *env, vals []string) (jtis, toks []string, wid string, err error) {
	for _, pt := range vals {
		tok, err := readToken(e, "pred-token", pt)
		if err != nil {
			return nil, nil, "", err
		}
		r, err := ect.ParseUnverified(tok)
		if err != nil {
			return nil, nil, "", usagef("give the token of a predecessor task (an ECT)", "--pred-token does not parse: %s", describe(err))
		}
		jtis, toks = append(jtis, r.Claims.ID), append(toks, tok)
		if wid == "" {
			wid = r.Claims.WorkflowID
		}
	}
	return jtis, toks, wid, nil
}

func hashFile(flagName, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fileError(flagName, path, err)
	}
	defer f.Close()
	h, err := agentctx.HashReader(f)
	if err != nil {
		return "", usagef("", "--%s: reading %s: %v", flagName, describeArg(path), err)
	}
	return h, nil
}

func cmdECTCreate(e *env, args []string) error {
	fs := newFlags(e, "ect create", "ect create --key FILE --iss ISS --aud AUD [--aud AUD2]... --exec-act ACT [--pred JTI | --pred-token TOKEN|@FILE]... [--wid UUID] [--jti UUID] [--input FILE] [--output FILE] [--ext JSON] [--lifetime 10m] [--now UNIX|RFC3339] [--json] [--out FILE]")
	keyPath := fs.String("key", "", "private key file (JWK or PEM) of the issuing agent")
	iss := fs.String("iss", "", "issuer: the agent's identifier, e.g. spiffe://example.com/agent/a")
	var aud, pred stringList
	fs.Var(&aud, "aud", "audience: every party that will verify the token (repeatable)")
	fs.Var(&pred, "pred", "jti of a predecessor task (repeatable); none marks a root task")
	var predTokens stringList
	fs.Var(&predTokens, "pred-token", "a predecessor's token, @FILE or - (repeatable): its jti is a predecessor, its wid the workflow")
	asJSON := fs.Bool("json", false, `print {"token":...,"jti":...,"wid":...} instead of the bare token`)
	fs.out()
	execAct := fs.String("exec-act", "", "the action performed, e.g. review_spec")
	wid := fs.String("wid", "", "workflow id (UUID)")
	jti := fs.String("jti", "", "task id (UUID; default: a new UUIDv4)")
	input := fs.String("input", "", "file holding the task's exact input bytes (sets inp_hash)")
	output := fs.String("output", "", "file holding the task's exact output bytes (sets out_hash)")
	ext := fs.String("ext", "", "ect_ext: a JSON object of deployment extensions")
	lifetime := fs.Duration("lifetime", ect.DefaultLifetime, "time from iat to exp")
	var now nowFlag
	fs.Var(&now, "now", "issue time: Unix seconds or RFC 3339 (default: the system clock)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	pjtis, _, pwid, err := readPredTokens(e, predTokens)
	if err != nil {
		return err
	}
	pred = append(pred, pjtis...)
	if *wid == "" {
		*wid = pwid
	}
	if *lifetime <= 0 || *lifetime%time.Second != 0 {
		return usagef("example: --lifetime 10m", "--lifetime must be a positive whole number of seconds")
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	c := &ect.Claims{Issuer: *iss, Audience: aud, ExecAct: *execAct, Pred: pred, WorkflowID: *wid, ID: *jti}
	if c.InputHash, err = hashFile("input", *input); err != nil {
		return err
	}
	if c.OutputHash, err = hashFile("output", *output); err != nil {
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
		return failf("the token would not verify, so it was not signed: %s", describe(err))
	}
	if *asJSON {
		b, _ := json.Marshal(struct {
			Token string `json:"token"`
			JTI   string `json:"jti"`
			WID   string `json:"wid,omitempty"`
		}{tok, c.ID, c.WorkflowID})
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
