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
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/trust"
)

// verdict is the --json output of verify, one per token.
type verdict struct {
	Valid           bool            `json:"valid"`
	Kind            string          `json:"kind,omitempty"`
	Level           int             `json:"level,omitempty"`
	Header          json.RawMessage `json:"header,omitempty"`
	Claims          json.RawMessage `json:"claims,omitempty"`
	DelegationDepth *int            `json:"delegation_depth,omitempty"`
	MandateVerified *bool           `json:"mandate_verified,omitempty"`
	Code            agentctx.Code   `json:"code,omitempty"`
	Rule            string          `json:"rule,omitempty"`
	Claim           string          `json:"claim,omitempty"`
	Message         string          `json:"message,omitempty"`

	summary func() string // the human-readable line of a valid verdict, built only when printed
}

func failed(err error) verdict {
	v := verdict{Code: agentctx.CodeOf(err), Message: err.Error()}
	var e *agentctx.Error
	if errors.As(err, &e) {
		v.Rule, v.Claim, v.Message = e.Rule, e.Claim, e.Message
	}
	return v
}

func ectVerdict(res *ect.Result, err error) verdict {
	if err != nil {
		return failed(err)
	}
	c := res.Claims
	return verdict{Valid: true, Kind: "ect", Level: int(res.Level), Header: res.Header, Claims: res.Payload,
		summary: func() string {
			return fmt.Sprintf("valid ect L%d jti=%s iss=%s exec_act=%s", res.Level, c.ID, c.Issuer, c.ExecAct)
		}}
}

func actVerdict(res *act.Result, err error) verdict {
	if err != nil {
		return failed(err)
	}
	depth := res.DelegationDepth()
	v := verdict{Valid: true, Kind: "act-mandate", Header: res.Header, Claims: res.Payload, DelegationDepth: &depth}
	m := res.Mandate
	if res.Record != nil {
		m = &res.Record.Mandate
	}
	v.summary = func() string {
		return fmt.Sprintf("valid act-mandate jti=%s iss=%s sub=%s delegation_depth=%d", m.ID, m.Issuer, m.Subject, depth)
	}
	if res.Phase == act.PhaseRecord {
		verified := res.MandateVerified
		v.Kind, v.MandateVerified = "act-record", &verified
		v.summary = func() string {
			return fmt.Sprintf("valid act-record jti=%s sub=%s exec_act=%s status=%s mandate_verified=%t", m.ID, m.Subject, res.Record.ExecAct, res.Record.Status, verified)
		}
	}
	return v
}

// appendVerdict appends v as one line of JSON to dst. A valid verdict, the
// hot path of --batch, is written directly: the header and payload were
// already validated as JSON objects and are copied as they are, unless they
// hold line breaks, which one-verdict-per-line output cannot carry.
func appendVerdict(dst []byte, v verdict) []byte {
	if !v.Valid || v.Header == nil || bytes.ContainsAny(v.Header, "\r\n") || bytes.ContainsAny(v.Claims, "\r\n") {
		b, _ := json.Marshal(v)
		return append(dst, b...)
	}
	dst = append(dst, `{"valid":true,"kind":"`...)
	dst = append(dst, v.Kind...)
	dst = append(dst, '"')
	if v.Level != 0 {
		dst = append(dst, `,"level":`...)
		dst = strconv.AppendInt(dst, int64(v.Level), 10)
	}
	dst = append(dst, `,"header":`...)
	dst = append(dst, v.Header...)
	dst = append(dst, `,"claims":`...)
	dst = append(dst, v.Claims...)
	if v.DelegationDepth != nil {
		dst = append(dst, `,"delegation_depth":`...)
		dst = strconv.AppendInt(dst, int64(*v.DelegationDepth), 10)
	}
	if v.MandateVerified != nil {
		dst = append(dst, `,"mandate_verified":`...)
		dst = strconv.AppendBool(dst, *v.MandateVerified)
	}
	return append(dst, '}')
}

// splitLine splits "token[,supporting,...]" into the token and its
// supporting tokens, white space around each removed.
func splitLine(line string) (string, []string) {
	parts := strings.Split(line, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return parts[0], parts[1:]
}

// batchVerifier verifies a chunk of input lines, returning one verdict per
// line in order.
type batchVerifier func(ctx context.Context, lines []string) []verdict

func ectBatch(v *ect.Verifier) batchVerifier {
	return func(ctx context.Context, lines []string) []verdict {
		toks := make([]string, len(lines))
		for i, l := range lines {
			toks[i], _ = splitLine(l) // supporting tokens are for ACT chains
		}
		res, errs := v.VerifyBatch(ctx, toks, 0)
		out := make([]verdict, len(lines))
		for i := range lines {
			out[i] = ectVerdict(res[i], errs[i])
		}
		return out
	}
}

func actBatch(v *act.Verifier, phase act.Phase) batchVerifier {
	return func(ctx context.Context, lines []string) []verdict {
		toks, sup := make([]string, len(lines)), make([][]string, len(lines))
		for i, l := range lines {
			toks[i], sup[i] = splitLine(l)
		}
		res, errs := v.VerifyBatch(ctx, toks, sup, phase, 0)
		out := make([]verdict, len(lines))
		for i := range lines {
			out[i] = actVerdict(res[i], errs[i])
		}
		return out
	}
}

// loadTrust reads --trust: a trust file (TR-7a), or with --any-issuer a plain
// JWKS or PEM public keys trusted for every issuer.
func loadTrust(path string, anyIssuer bool) (trust.Resolver, error) {
	if path == "" {
		return nil, usagef("make one with: agentctx keys trust --id ISSUER KEYFILE > trust.json", "--trust is required: the keys that may sign tokens")
	}
	data, err := readFileArg("trust", path)
	if err != nil {
		return nil, err
	}
	isJSON := strings.HasPrefix(strings.TrimSpace(string(data)), "{")
	if isJSON {
		s, err := trust.ParseFileWith(data, trust.Options{Clock: time.Now})
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
	fs := newFlags(e, "verify", "verify --trust FILE --aud ID [--kind ect|act] [--phase mandate|record] [--now UNIX|RFC3339] [--min-level 1|2|3] [--skew 60s] [--any-issuer] [--json] [--ledger DB | --receipts FILE --ledger-key-file VKEY] [--batch FILE|-] [TOKEN[,SUPPORTING...]|@FILE|-]")
	trustPath := fs.String("trust", "", "trust file (agentctx keys trust), or a JWKS/PEM with --any-issuer")
	audience := fs.String("aud", "", "this verifier's own identity; must appear in aud (ECTs, ACT mandates)")
	fs.alias("audience", "aud")
	kind := fs.String("kind", "", "token kind: ect or act (default: from each token's typ)")
	phaseFlag := fs.String("phase", "", "ACT phase to require: mandate or record (default: as the claims show)")
	var now nowFlag
	fs.Var(&now, "now", "verification time: Unix seconds or RFC 3339 (default: the system clock)")
	minLevel := fs.Int("min-level", 2, "lowest accepted ECT assurance level: 1 (unsigned), 2 (signed) or 3 (with ledger receipt)")
	skew := fs.Duration("skew", ect.DefaultSkew, "clock skew allowed on exp, nbf and iat")
	anyIssuer := fs.Bool("any-issuer", false, "trust the keys of a plain JWKS or PEM file for every issuer")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	batch := fs.String("batch", "", "verify one input per line of FILE (- for standard input): a token, optionally followed by comma-separated supporting tokens; one JSON verdict per line")
	ledgerDB := fs.String("ledger", "", "ECT level L3: a ledger database whose entries count as receipts")
	receipts := fs.String("receipts", "", "ECT level L3: a file of receipts (JSON lines, as ledger append prints), checked offline with --ledger-key-file")
	ledgerKey := fs.String("ledger-key-file", "", "the ledger's note verifier key, for --receipts")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *audience == "" {
		return usagef("example: --aud spiffe://example.com/agent/b", "--aud is required: this verifier's own identity")
	}
	if *minLevel < 1 || *minLevel > 3 {
		return usagef("", "--min-level must be 1, 2 or 3")
	}
	if *skew < 0 {
		return usagef("", "--skew must not be negative")
	}
	if *skew == 0 {
		*skew = time.Nanosecond // an explicit zero skew, not the default
	}
	phase := act.PhaseDetect
	switch *phaseFlag {
	case "":
	case "mandate":
		phase = act.PhaseMandate
	case "record":
		phase = act.PhaseRecord
	default:
		return usagef("use --phase mandate or --phase record", "unknown --phase %s", describeArg(*phaseFlag))
	}
	switch *kind {
	case "", "ect", "act":
	default:
		return usagef("use --kind ect or --kind act, or leave it out to take each token's typ", "unknown --kind %s", describeArg(*kind))
	}
	if *phaseFlag != "" && *kind == "ect" {
		return usagef("--phase goes with ACTs", "--phase is only for ACT")
	}
	res, err := loadTrust(*trustPath, *anyIssuer)
	if err != nil {
		return err
	}
	holder, closeHolder, err := receiptHolder(*ledgerDB, *receipts, *ledgerKey)
	if err != nil {
		return err
	}
	defer closeHolder()
	ev, err := ect.NewVerifier(ect.Config{Trust: res, Audience: *audience, Clock: now.clock(), MinLevel: ect.Level(*minLevel), Skew: *skew, Receipts: holder})
	if err != nil {
		return usagef("", "%v", err)
	}
	av, err := act.NewVerifier(act.Config{Trust: res, Audience: *audience, Clock: now.clock(), Skew: *skew})
	if err != nil {
		return usagef("", "%v", err)
	}
	run := kindBatch(*kind, ectBatch(ev), actBatch(av, phase))
	ctx := context.Background()
	if *batch != "" {
		if fs.NArg() != 0 {
			return usagef("", "give either --batch or a token, not both")
		}
		return verifyBatch(ctx, e, run, *batch)
	}
	line, err := readInput(e, fs.Args())
	if err != nil {
		return err
	}
	if line == "" {
		return usagef("give a token, @FILE or -", "the token is empty")
	}
	vd := run(ctx, []string{line})[0]
	if *asJSON {
		fmt.Fprintf(e.stdout, "%s\n", appendVerdict(nil, vd))
		if !vd.Valid {
			return silent(1)
		}
		return nil
	}
	if !vd.Valid {
		msg := vd.Message
		if vd.Claim != "" {
			msg += " (" + vd.Claim + ")"
		}
		return failf("invalid token: %s [%s, %s]", msg, vd.Code, vd.Rule)
	}
	fmt.Fprintln(e.stdout, safeText(vd.summary()))
	return nil
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

func verifyBatch(ctx context.Context, e *env, run batchVerifier, path string) error {
	in, closeIn, err := openBatch(e, path)
	if err != nil {
		return err
	}
	defer closeIn()
	invalid := 0
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	defer w.Flush()
	// Reading the next chunk and writing the last one's verdicts overlap
	// with the verification of the current chunk (which uses every core).
	type chunk struct {
		lines []string
		long  []bool
	}
	chunks := make(chan chunk, 1)
	var readErr error
	go func() {
		defer close(chunks)
		c := chunk{lines: make([]string, 0, batchChunk), long: make([]bool, 0, batchChunk)}
		for {
			line, tooLong, err := readLine(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = err
				break
			}
			c.lines, c.long = append(c.lines, line), append(c.long, tooLong)
			if len(c.lines) == batchChunk {
				chunks <- c
				c = chunk{lines: make([]string, 0, batchChunk), long: make([]bool, 0, batchChunk)}
			}
		}
		if len(c.lines) > 0 {
			chunks <- c
		}
	}()
	type verdicts struct {
		v    []verdict
		long []bool
	}
	written := make(chan verdicts, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var out []byte
		for vs := range written {
			for i, vd := range vs.v {
				if vs.long[i] {
					vd = failed(tooLongErr())
				}
				if !vd.Valid {
					invalid++
				}
				out = appendVerdict(out[:0], vd)
				w.Write(out)
				w.WriteByte('\n')
			}
		}
	}()
	for c := range chunks {
		written <- verdicts{v: run(ctx, c.lines), long: c.long}
	}
	close(written)
	<-done
	if readErr != nil {
		return failf("reading batch: %v", readErr)
	}
	if invalid > 0 {
		// SPEC: exit status contract: 1 when any line was refused, like sha256sum -c.
		return silent(1)
	}
	return nil
}

// tooLongErr is the verdict on a batch line over the size cap.
func tooLongErr() error {
	return agentctx.Errorf(agentctx.CodeTooLarge, "ECT-V1", "", "line is longer than %d bytes", maxLine)
}

// openBatch opens the --batch input: a file, or - for standard input (a
// terminal with nothing piped is refused instead of waited on).
func openBatch(e *env, path string) (io.Reader, func(), error) {
	if path == "-" {
		if isTerminal(e.stdin) {
			return nil, nil, usagef("pipe the lines in (... --batch - < FILE), or give --batch FILE", "reading the batch from standard input, which is a terminal")
		}
		return e.stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fileError("batch", path, err)
	}
	return f, func() { f.Close() }, nil
}

// batchLine is one line of a --batch input.
type batchLine struct {
	text    string
	tooLong bool // over maxLine: its own too_large result
}

// readBatch reads every non-empty line of a --batch input; a line over the
// size cap is kept as a too_large marker instead of ending the input.
func readBatch(e *env, path string) ([]batchLine, error) {
	in, closeIn, err := openBatch(e, path)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	r := bufio.NewReaderSize(in, 64<<10)
	var out []batchLine
	for {
		line, tooLong, err := readLine(r)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, usagef("", "reading --batch: %v", err)
		}
		if tooLong || strings.TrimSpace(line) != "" {
			out = append(out, batchLine{text: line, tooLong: tooLong})
		}
	}
}

// kindBatch verifies each line as the kind --kind names, or, without it, as
// the kind its typ shows; a token of the other kind is told which kind it is
// and which flag to use.
func kindBatch(kind string, ectRun, actRun batchVerifier) batchVerifier {
	return func(ctx context.Context, lines []string) []verdict {
		kinds := make([]string, len(lines))
		var ectIdx, actIdx []int
		var ectLines, actLines []string
		for i, l := range lines {
			tok, _ := splitLine(l)
			kinds[i] = typKind(tok)
			k := kind
			if k == "" {
				k = kinds[i]
			}
			if k == "act" {
				actIdx, actLines = append(actIdx, i), append(actLines, l)
			} else {
				ectIdx, ectLines = append(ectIdx, i), append(ectLines, l)
			}
		}
		out := make([]verdict, len(lines))
		if len(ectLines) > 0 {
			for j, v := range ectRun(ctx, ectLines) {
				out[ectIdx[j]] = v
			}
		}
		if len(actLines) > 0 {
			for j, v := range actRun(ctx, actLines) {
				out[actIdx[j]] = v
			}
		}
		for i := range out {
			if v := &out[i]; !v.Valid && v.Code == agentctx.CodeInvalidTyp && kind != "" && kinds[i] != "" && kinds[i] != kind {
				v.Message += fmt.Sprintf("; the token is an %s: use --kind %s, or leave --kind out", strings.ToUpper(kinds[i]), kinds[i])
			}
		}
		return out
	}
}

// typKind reads the kind of a token from its header's typ ("ect", "act" or
// "" when it is neither), without verifying anything.
func typKind(tok string) string {
	dot := strings.IndexByte(tok, '.')
	if dot <= 0 || dot > 1024 {
		return ""
	}
	hdr, err := jws.DecodeSegment(tok[:dot])
	if err != nil {
		return ""
	}
	ms, err := jsonx.ParseObject(hdr)
	if err != nil {
		return ""
	}
	for _, m := range ms {
		if m.Name == "typ" {
			typ, _ := jsonx.DecodeString(m.Value)
			switch {
			case jws.TypMatches(typ, act.Typ):
				return "act"
			case jws.TypMatches(typ, ect.Typ), jws.TypMatches(typ, ect.LegacyTyp):
				return "ect"
			}
		}
	}
	return ""
}

// receiptHolder builds the L3 receipt source of verify: a ledger database,
// or receipts checked offline with the ledger's key (nil: none).
func receiptHolder(db, receiptsFile, keyFile string) (ect.ReceiptHolder, func(), error) {
	noop := func() {}
	switch {
	case db != "" && receiptsFile != "":
		return nil, noop, usagef("", "give --ledger or --receipts, not both")
	case db != "":
		store, err := openStore("ledger", db, false)
		if err != nil {
			return nil, noop, err
		}
		l, err := ledger.Open(context.Background(), ledger.Config{Store: store, Clock: time.Now})
		if err != nil {
			store.Close()
			return nil, noop, usagef("", "%s: %v", db, err)
		}
		return l, func() { store.Close() }, nil
	case receiptsFile != "":
		if keyFile == "" {
			return nil, noop, usagef("the key printed by agentctx ledger init or ledger pubkey", "--receipts needs --ledger-key-file")
		}
		vkey, err := readVerifierKey(keyFile)
		if err != nil {
			return nil, noop, err
		}
		data, err := readFileArg("receipts", receiptsFile)
		if err != nil {
			return nil, noop, err
		}
		rs := parseReceipts(data)
		book, err := ledger.NewReceiptBook(vkey, rs...)
		if err != nil {
			return nil, noop, usagef("", "%v", err)
		}
		return book, noop, nil
	}
	return nil, noop, nil
}

// parseReceipts reads receipts as ledger append or ledger prove print them:
// JSON lines holding a receipt, or {"ok":true,"receipt":{...}}; other lines
// are skipped.
func parseReceipts(data []byte) []*ledger.Receipt {
	var out []*ledger.Receipt
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var wrapped struct {
			Receipt *ledger.Receipt `json:"receipt"`
		}
		var r ledger.Receipt
		if json.Unmarshal([]byte(line), &wrapped) == nil && wrapped.Receipt != nil {
			out = append(out, wrapped.Receipt)
		} else if json.Unmarshal([]byte(line), &r) == nil && r.Checkpoint != "" {
			out = append(out, &r)
		}
	}
	return out
}
