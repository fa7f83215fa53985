package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

// verdict is the --json output of verify, one per token.
type verdict struct {
	Valid   bool            `json:"valid"`
	Kind    string          `json:"kind,omitempty"`
	Level   int             `json:"level,omitempty"`
	Header  json.RawMessage `json:"header,omitempty"`
	Claims  json.RawMessage `json:"claims,omitempty"`
	Code    agentctx.Code   `json:"code,omitempty"`
	Rule    string          `json:"rule,omitempty"`
	Claim   string          `json:"claim,omitempty"`
	Message string          `json:"message,omitempty"`
}

func verdictOf(res *ect.Result, err error) verdict {
	if err != nil {
		v := verdict{Code: agentctx.CodeOf(err), Message: err.Error()}
		var e *agentctx.Error
		if errors.As(err, &e) {
			v.Rule, v.Claim, v.Message = e.Rule, e.Claim, e.Message
		}
		return v
	}
	return verdict{Valid: true, Kind: "ect", Level: int(res.Level), Header: res.Header, Claims: res.Payload}
}

// appendVerdict appends the JSON verdict to dst. A valid verdict, the hot
// path of --batch, is written directly: the header and payload were already
// validated as JSON objects and are copied as they are, unless they hold
// line breaks, which one-verdict-per-line output cannot carry.
func appendVerdict(dst []byte, res *ect.Result, err error) []byte {
	v := verdictOf(res, err)
	if !v.Valid || bytes.ContainsAny(v.Header, "\r\n") || bytes.ContainsAny(v.Claims, "\r\n") || v.Header == nil {
		b, _ := json.Marshal(v)
		return append(dst, b...)
	}
	dst = append(dst, `{"valid":true,"kind":"ect","level":`...)
	dst = strconv.AppendInt(dst, int64(v.Level), 10)
	dst = append(dst, `,"header":`...)
	dst = append(dst, v.Header...)
	dst = append(dst, `,"claims":`...)
	dst = append(dst, v.Claims...)
	return append(dst, '}')
}

// loadTrust reads --trust: a trust file (TR-7a), or with --any-issuer a plain
// JWKS or PEM public keys trusted for every issuer.
func loadTrust(path string, anyIssuer bool) (trust.Resolver, error) {
	if path == "" {
		return nil, usagef("make one with: agentctx keys trust --id ISSUER KEYFILE > trust.json", "--trust is required: the keys that may sign tokens")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("", "%v", err)
	}
	isJSON := strings.HasPrefix(strings.TrimSpace(string(data)), "{")
	if isJSON {
		s, err := trust.ParseFile(data)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, trust.ErrPlainJWKS) {
			return nil, usagef("", "%s: %v", path, err)
		}
	}
	if !anyIssuer {
		return nil, usagef("a trust file binds keys to issuers (agentctx keys trust); pass --any-issuer to trust these keys for every issuer",
			"%s binds its keys to no issuer", path)
	}
	keys, err := trust.ParseKeys(data)
	if err != nil {
		return nil, usagef("", "%s: %v", path, err)
	}
	s := trust.NewSet()
	if err := s.Add(trust.AnyIssuer, keys...); err != nil {
		return nil, usagef("", "%s: %v", path, err)
	}
	return s, nil
}

func cmdVerify(e *env, args []string) error {
	fs := newFlags(e, "verify", "verify --trust FILE --audience ID [--kind ect|act] [--now UNIX] [--min-level 1|2|3] [--skew 60s] [--any-issuer] [--json] [--batch FILE|-] [TOKEN|-]")
	trustPath := fs.String("trust", "", "trust file (agentctx keys trust), or a JWKS/PEM with --any-issuer")
	audience := fs.String("audience", "", "this verifier's own identity; must appear in aud")
	kind := fs.String("kind", "ect", "token kind: ect or act")
	var now nowFlag
	fs.Var(&now, "now", "verification time as seconds since the epoch (default: the system clock)")
	minLevel := fs.Int("min-level", 2, "lowest accepted assurance level: 1 (unsigned), 2 (signed) or 3 (with ledger receipt)")
	skew := fs.Duration("skew", ect.DefaultSkew, "clock skew allowed on exp, nbf and iat")
	anyIssuer := fs.Bool("any-issuer", false, "trust the keys of a plain JWKS or PEM file for every issuer")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	batch := fs.String("batch", "", "verify one token per line of FILE (- for standard input), printing one JSON verdict per line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *kind {
	case "ect":
	case "act":
		return usagef("this build verifies ECTs; ACT support is under way", "--kind act is not available yet")
	default:
		return usagef("use --kind ect or --kind act", "unknown --kind %q", *kind)
	}
	if *audience == "" {
		return usagef("example: --audience spiffe://example.com/agent/b", "--audience is required: this verifier's own identity")
	}
	if *minLevel < 1 || *minLevel > 3 {
		return usagef("", "--min-level must be 1, 2 or 3")
	}
	if *skew < 0 {
		return usagef("", "--skew must not be negative")
	}
	res, err := loadTrust(*trustPath, *anyIssuer)
	if err != nil {
		return err
	}
	cfg := ect.Config{Trust: res, Audience: *audience, Clock: now.clock(), MinLevel: ect.Level(*minLevel), Skew: *skew}
	if *skew == 0 {
		cfg.Skew = time.Nanosecond // an explicit zero skew, not the default
	}
	v, err := ect.NewVerifier(cfg)
	if err != nil {
		return usagef("", "%v", err)
	}
	ctx := context.Background()
	if *batch != "" {
		if fs.NArg() != 0 {
			return usagef("", "give either --batch or a token, not both")
		}
		return verifyBatch(ctx, e, v, *batch)
	}
	tok, err := readInput(e, fs.Args())
	if err != nil {
		return err
	}
	tok = firstToken(tok)
	r, verr := v.Verify(ctx, tok)
	vd := verdictOf(r, verr)
	if *asJSON {
		fmt.Fprintf(e.stdout, "%s\n", appendVerdict(nil, r, verr))
		if verr != nil {
			return silent(1)
		}
		return nil
	}
	if verr != nil {
		return failf("invalid token: %s [%s, %s]", verr, vd.Code, vd.Rule)
	}
	c := r.Claims
	fmt.Fprintf(e.stdout, "valid ect L%d jti=%s iss=%s exec_act=%s\n", r.Level, c.ID, c.Issuer, c.ExecAct)
	return nil
}

// firstToken returns the token of a line "token[,supporting,...]": supporting
// tokens (ACT chains) are ignored for ECT.
func firstToken(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// maxLine bounds the bytes of one batch line kept in memory; longer lines are
// reported as too_large without being held.
const maxLine = 1 << 20

// readLine reads one line of any length, keeping at most maxLine bytes; it
// returns io.EOF only when no line is left.
func readLine(r *bufio.Reader) (string, bool, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > maxLine {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, frag...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(buf) == 0 && !tooLong {
				return "", false, io.EOF
			}
		case err != nil:
			return "", false, err
		}
		return strings.TrimRight(string(buf), "\r\n"), tooLong, nil
	}
}

const batchChunk = 8192

func verifyBatch(ctx context.Context, e *env, v *ect.Verifier, path string) error {
	var in io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usagef("", "%v", err)
		}
		defer f.Close()
		in = f
	}
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	defer w.Flush()
	tokens := make([]string, 0, batchChunk)
	long := make([]bool, 0, batchChunk)
	var out []byte
	flush := func() {
		results, errs := v.VerifyBatch(ctx, tokens, 0)
		for i := range tokens {
			err := errs[i]
			if long[i] {
				err = agentctx.Errorf(agentctx.CodeTooLarge, "ECT-V1", "", "line is longer than %d bytes", maxLine)
			}
			out = appendVerdict(out[:0], results[i], err)
			w.Write(out)
			w.WriteByte('\n')
		}
		tokens, long = tokens[:0], long[:0]
	}
	for {
		line, tooLong, err := readLine(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return failf("reading batch: %v", err)
		}
		tokens = append(tokens, firstToken(line))
		long = append(long, tooLong)
		if len(tokens) == batchChunk {
			flush()
		}
	}
	if len(tokens) > 0 {
		flush()
	}
	return nil
}
