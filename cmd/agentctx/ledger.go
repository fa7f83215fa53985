package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/postgres"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/trust"
)

// openStore opens the database of flagName: a postgres:// URL is the
// PostgreSQL store, a file path the embedded SQLite store. Only create (for
// ledger init) may make a new SQLite file: every other command refuses a
// missing one (exit 2) instead of creating it.
func openStore(flagName, db string, create bool) (ledger.Store, error) {
	switch {
	case db == "":
		return nil, usagef("example: --"+flagName+" ledger.db", "--%s is required", flagName)
	case isPostgres(db):
		s, err := postgres.Open(context.Background(), db)
		if err != nil {
			return nil, usagef("check the URL, the server and the role", "--%s %s: %v", flagName, redactURL(db), err)
		}
		return s, nil
	}
	if !create {
		if err := mustExist(flagName, db); err != nil {
			return nil, err
		}
	} else if err := outputPath(flagName, db); err != nil {
		return nil, err
	}
	s, err := sqlite.Open(db)
	if err != nil {
		return nil, usagef("", "--%s: %v", flagName, err)
	}
	return s, nil
}

// redactURL returns u with its password replaced.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(the URL)"
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

type ledgerFlags struct {
	db, key, trust string
	anyIssuer      bool
	partial        bool
	now            nowFlag
	// resolver, when set, is the trust instead of the --trust file (the
	// proxy's embedded ledger: its callers' trust and its own key).
	resolver trust.Resolver
}

// openLedger opens the ledger of --db; with withKey it loads the signing key
// and the trust (for append and verify).
func openLedger(ctx context.Context, e *env, f *ledgerFlags, needKey, needTrust bool) (*ledger.Ledger, ledger.Store, error) {
	var signer note.Signer
	if needKey {
		if f.key == "" {
			return nil, nil, usagef("the key written by agentctx ledger init --key-out", "--key is required")
		}
		skey, err := readFileArg("key", f.key)
		if err != nil {
			return nil, nil, err
		}
		if fi, err := os.Stat(f.key); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(e.stderr, "agentctx: warning: ledger key file %q has permissions %#o; use 0600\n", f.key, fi.Mode().Perm())
		}
		if signer, err = note.NewSigner(strings.TrimSpace(string(skey))); err != nil {
			return nil, nil, usagef("the file written by agentctx ledger init --key-out", "--key %s is not a ledger signing key", describeArg(f.key))
		}
	}
	store, err := openStore("db", f.db, false)
	if err != nil {
		return nil, nil, err
	}
	cfg := ledger.Config{Store: store, Clock: f.now.clock(), Partial: f.partial, Signer: signer}
	if needTrust && f.resolver != nil {
		cfg.Trust = f.resolver
	} else if needTrust {
		if cfg.Trust, err = loadTrust(f.trust, f.anyIssuer); err != nil {
			store.Close()
			return nil, nil, err
		}
	}
	l, err := ledger.Open(ctx, cfg)
	if err != nil {
		store.Close()
		if errors.Is(err, ledger.ErrNotInitialized) {
			return nil, nil, usagef("create it with: agentctx ledger init --db FILE --id ID --key-out KEYFILE", "%s holds no ledger", redactURL(f.db))
		}
		return nil, nil, usagef("", "%v", err)
	}
	return l, store, nil
}

func cmdLedgerInit(e *env, args []string) error {
	fs := newFlags(e, "ledger init", "ledger init --db PATH|postgres://... --id LEDGER_ID --key-out FILE [--owner-role ROLE --writer-role ROLE]")
	db := fs.String("db", "", "the ledger database: an SQLite file path, or a postgres:// URL")
	owner := fs.String("owner-role", "", "PostgreSQL: the role that owns the tables and their triggers")
	writer := fs.String("writer-role", "", "PostgreSQL: the role the ledger appends as; it gets only SELECT and INSERT")
	id := fs.String("id", "", "the ledger's identity, e.g. spiffe://example.com/system/ledger (the checkpoint origin)")
	keyOut := fs.String("key-out", "", "file to write the ledger's private signing key to (mode 0600; never overwritten)")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" || *keyOut == "" {
		return usagef("example: agentctx ledger init --db ledger.db --id spiffe://example.com/system/ledger --key-out ledger.key", "--id and --key-out are required")
	}
	skey, vkey, err := ledger.GenerateKey(*id)
	if err != nil {
		return usagef("", "%v", err)
	}
	if (*owner != "" || *writer != "") && !isPostgres(*db) {
		return usagef("roles are for a postgres:// --db", "--owner-role and --writer-role are PostgreSQL only")
	}
	store, err := openStore("db", *db, true)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := outputPath("key-out", *keyOut); err != nil {
		return err
	}
	f, err := os.OpenFile(*keyOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return usagef("choose another --key-out", "--key-out %s already exists; refusing to overwrite a key", describeArg(*keyOut))
		}
		return fileError("key-out", *keyOut, err)
	}
	if _, err := fmt.Fprintln(f, skey); err != nil {
		f.Close()
		return failf("writing the key: %v", err)
	}
	if err := f.Close(); err != nil {
		return failf("writing the key: %v", err)
	}
	if err := ledger.Create(context.Background(), store, *id, vkey); err != nil {
		os.Remove(*keyOut)
		return failf("%v", err)
	}
	if pg, ok := store.(*postgres.Store); ok && (*owner != "" || *writer != "") {
		if err := pg.Grant(context.Background(), *owner, *writer); err != nil {
			return failf("the ledger was created but its roles were not set: %v", err)
		}
	}
	fmt.Fprintln(e.stdout, vkey)
	return nil
}

func cmdLedgerPubkey(e *env, args []string) error {
	fs := newFlags(e, "ledger pubkey", "ledger pubkey --db X [--format note|jwk|cose-key]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	format := fs.String("format", "note", "note (the C2SP verifier key), jwk (RFC 8037) or cose-key (CBOR COSE_Key; binary, use --out)")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := binaryOut(e, "cose-key", *format, "note", "jwk", "cose-key"); err != nil {
		return err
	}
	l, store, err := openLedger(context.Background(), e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	vkey := l.Meta().VerifierKey
	if *format == "note" {
		fmt.Fprintln(e.stdout, vkey)
		return nil
	}
	k, err := ledger.ParseVerifierKey(vkey)
	if err != nil {
		return failf("%v", err)
	}
	if *format == "jwk" {
		return json.NewEncoder(e.stdout).Encode(k.JWK())
	}
	_, err = e.stdout.Write(k.COSEKey())
	return err
}

// binaryOut checks --format against the allowed values and refuses to write
// the binary one to a terminal.
func binaryOut(e *env, binary, format string, allowed ...string) error {
	if !slices.Contains(allowed, format) {
		return usagef("", "--format must be one of %s", strings.Join(allowed, ", "))
	}
	if format == binary && isTerminal(e.stdout) {
		return usagef("write it to a file with --out FILE, or pipe it", "--format %s is binary and standard output is a terminal", format)
	}
	return nil
}

// appendResult is one line of ledger append.
type appendResult struct {
	OK      bool            `json:"ok"`
	Receipt *ledger.Receipt `json:"receipt,omitempty"`
	// Supporting are the receipts of the supporting tokens appended with
	// the token (a delegated mandate's parents, a record's mandate).
	Supporting []*ledger.Receipt `json:"supporting,omitempty"`
	// Partial and Missing: DAG-2 partial mode.
	Partial bool          `json:"partial,omitempty"`
	Missing []string      `json:"missing,omitempty"`
	Code    agentctx.Code `json:"code,omitempty"`
	Rule    string        `json:"rule,omitempty"`
	Message string        `json:"message,omitempty"`
}

func cmdLedgerAppend(e *env, args []string) error {
	fs := newFlags(e, "ledger append", "ledger append --db X --key FILE --trust FILE [--now UNIX|RFC3339] [--partial] [--any-issuer] (--batch FILE|- | TOKEN[,SUPPORTING...] | @FILE | -)")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	fs.StringVar(&f.key, "key", "", "the ledger's signing key file")
	fs.StringVar(&f.trust, "trust", "", "trust file of the agents whose tokens are appended")
	fs.BoolVar(&f.anyIssuer, "any-issuer", false, "trust a plain JWKS or PEM file for every issuer")
	fs.BoolVar(&f.partial, "partial", false, "accept tokens whose predecessors are missing, flagged partial (DAG-2)")
	fs.Var(&f.now, "now", "receipt time: Unix seconds or RFC 3339 (default: the system clock; never before the previous entry's)")
	batch := fs.String("batch", "", "append one input per line of FILE (- for standard input), group-committed")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var lines []batchLine
	switch {
	case *batch != "" && fs.NArg() == 0:
		var err error
		if lines, err = readBatch(e, *batch); err != nil {
			return err
		}
	case *batch == "" && fs.NArg() == 1:
		chain, err := readChain(e, "", fs.Arg(0))
		if err != nil {
			return err
		}
		lines = []batchLine{{text: strings.Join(chain, ",")}}
	default:
		return usagef("give --batch FILE or one token (with its supporting tokens, comma-separated)", "nothing to append")
	}
	ctx := context.Background()
	l, store, err := openLedger(ctx, e, &f, true, true)
	if err != nil {
		return err
	}
	defer store.Close()
	// Lines over the size cap get their own too_large result, in place.
	var inputs []ledger.Input
	for _, line := range lines {
		if !line.tooLong {
			tok, sup := splitLine(strings.TrimSpace(line.text))
			inputs = append(inputs, ledger.Input{Token: tok, Supporting: sup})
		}
	}
	outs, err := l.Append(ctx, inputs)
	if err != nil {
		return failf("append failed, nothing was acknowledged: %v", err)
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	refused := 0
	for _, line := range lines {
		var o ledger.Outcome
		if line.tooLong {
			o.Err = tooLongErr()
		} else {
			o, outs = outs[0], outs[1:]
		}
		r := appendResult{OK: o.Err == nil, Receipt: o.Receipt, Supporting: o.Supporting, Partial: len(o.Partial) > 0, Missing: o.Partial}
		if o.Err != nil {
			v := failed(o.Err)
			r.Code, r.Rule, r.Message = v.Code, v.Rule, v.Message
			refused++
		}
		enc.Encode(r)
	}
	if refused > 0 {
		w.Flush()
		// SPEC: exit status contract: 1 when any append was refused, like sha256sum -c.
		fmt.Fprintf(e.stderr, "agentctx: %s refused, %d appended\n", plural(uint64(refused), "token", "tokens"), len(lines)-refused)
		return silent(1)
	}
	return nil
}

func cmdLedgerCheckpoint(e *env, args []string) error {
	fs := newFlags(e, "ledger checkpoint", "ledger checkpoint --db X")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, store, err := openLedger(context.Background(), e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	cp, err := l.CosignedCheckpoint(context.Background(), 0)
	if err != nil {
		return failf("%v", err)
	}
	if cp == nil {
		return failf("the ledger is empty: no checkpoint yet")
	}
	fmt.Fprint(e.stdout, string(cp))
	return nil
}

func cmdLedgerProve(e *env, args []string) error {
	fs := newFlags(e, "ledger prove", "ledger prove --db X (--index I [--size S] | --jti J [--wid W] | --from S1 --to S2)")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	index := fs.Int64("index", -1, "entry index")
	size := fs.Uint64("size", 0, "a published tree size (default: the latest)")
	jti := fs.String("jti", "", "task id")
	wid := fs.String("wid", "", "workflow id, with --jti")
	from := fs.Uint64("from", 0, "consistency proof: older size")
	to := fs.Uint64("to", 0, "consistency proof: newer size")
	format := fs.String("format", "json", "json (LED-7), tlog-proof (C2SP) or cose (RFC 9942 COSE receipt; binary, use --out)")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := binaryOut(e, "cose", *format, "json", "tlog-proof", "cose"); err != nil {
		return err
	}
	if *to != 0 && *format == "tlog-proof" {
		return usagef("use --format json or cose for a consistency proof", "C2SP tlog-proof has no consistency form")
	}
	ctx := context.Background()
	l, store, err := openLedger(ctx, e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	enc := json.NewEncoder(e.stdout)
	switch {
	case *to != 0 && *format == "cose":
		b, err := l.COSEConsistency(ctx, *from, *to)
		if err != nil {
			return failf("%v", err)
		}
		_, err = e.stdout.Write(b)
		return err
	case *to != 0:
		pr, err := l.Consistency(ctx, *from, *to)
		if err != nil {
			return failf("%v", err)
		}
		if pr == nil {
			pr = [][]byte{}
		}
		return enc.Encode(map[string]any{"from": *from, "to": *to, "proof": pr})
	case *jti != "":
		es, err := l.Get(ctx, *jti, *wid)
		if err != nil {
			return failf("task %s: %v", describeArg(*jti), err)
		}
		*index = int64(es[len(es)-1].Index)
	case *index < 0:
		return usagef("", "give --index, --jti or --from/--to")
	}
	r, err := l.Prove(ctx, uint64(*index), *size)
	if err != nil {
		return failf("%v", err)
	}
	switch *format {
	case "tlog-proof":
		b, err := ledger.TLogProof(r)
		if err != nil {
			return failf("%v", err)
		}
		_, err = e.stdout.Write(b)
		return err
	case "cose":
		b, err := l.COSEReceipt(ctx, r)
		if err != nil {
			return failf("%v", err)
		}
		_, err = e.stdout.Write(b)
		return err
	}
	return enc.Encode(r)
}

func cmdLedgerGet(e *env, args []string) error {
	fs := newFlags(e, "ledger get", "ledger get --db X (--jti J [--wid W] | --index N)")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	jti := fs.String("jti", "", "task id")
	wid := fs.String("wid", "", "workflow id")
	index := fs.Int64("index", -1, "entry index")
	fs.out()
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if (*jti == "") == (*index < 0) {
		return usagef("", "give --jti or --index")
	}
	ctx := context.Background()
	l, store, err := openLedger(ctx, e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	var es []ledger.Entry
	if *index >= 0 {
		es, err = store.Entries(ctx, uint64(*index), uint64(*index)+1)
		if err == nil && len(es) == 0 {
			err = ledger.ErrNotFound
		}
		if err != nil {
			return failf("entry %d: %v", *index, err)
		}
	} else if es, err = l.Get(ctx, *jti, *wid); err != nil {
		return failf("task %s: %v", describeArg(*jti), err)
	}
	enc := json.NewEncoder(e.stdout)
	for i := range es {
		enc.Encode(es[i].JSON())
	}
	return nil
}

func cmdLedgerWorkflow(e *env, args []string) error {
	fs := newFlags(e, "ledger workflow", "ledger workflow --db X --wid W [--format json|dot|mermaid|text]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	wid := fs.String("wid", "", "workflow id")
	format := fs.String("format", "json", "json, dot, mermaid or text")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *wid == "" {
		return usagef("", "--wid is required")
	}
	ctx := context.Background()
	l, store, err := openLedger(ctx, e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	g, err := l.Workflow(ctx, *wid)
	if err != nil {
		return failf("%v", err)
	}
	if len(g.Nodes) == 0 {
		return failf("workflow %s has no entries", describeArg(*wid))
	}
	return printGraph(e, g, *format)
}

// readVerifierKey reads a note verifier key file.
func readVerifierKey(path string) (string, error) {
	vkey := strings.TrimSpace(path)
	if _, err := note.NewVerifier(vkey); err == nil {
		return vkey, nil // the key itself (the older --ledger-key VKEY spelling)
	}
	b, err := readFileArg("ledger-key-file", path)
	if err != nil {
		return "", err
	}
	vkey = strings.TrimSpace(string(b))
	if _, err := note.NewVerifier(vkey); err != nil {
		return "", usagef("the file written by agentctx ledger init (or ledger pubkey)", "--ledger-key-file %s does not hold a note verifier key", describeArg(path))
	}
	return vkey, nil
}

func cmdLedgerVerify(e *env, args []string) error {
	fs := newFlags(e, "ledger verify", "ledger verify --db X --trust FILE [--ledger-key-file VKEY] [--checkpoint FILE]... [--witness-key VKEY... --min-witnesses K] [--any-issuer]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	fs.StringVar(&f.trust, "trust", "", "trust file of the agents")
	fs.BoolVar(&f.anyIssuer, "any-issuer", false, "trust a plain JWKS or PEM file for every issuer")
	vkeyFile := fs.String("ledger-key-file", "", "the ledger's verifier key as you know it (pinned); without it the key is read from the database being audited")
	var cpFiles stringList
	fs.Var(&cpFiles, "checkpoint", "a checkpoint obtained earlier (repeatable): it must verify and be consistent with the current log")
	var wkeys stringList
	fs.Var(&wkeys, "witness-key", "a witness's cosignature key, or a file of them (repeatable)")
	minW := fs.Int("min-witnesses", 0, "refuse a latest checkpoint (and --checkpoint files) with fewer valid cosignatures of the --witness-key witnesses")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var opts ledger.AuditOptions
	var err error
	if opts.Witnesses, err = witnessKeys(wkeys); err != nil {
		return err
	}
	if opts.MinWitnesses = *minW; *minW > len(opts.Witnesses) {
		return usagef("give at least as many --witness-key as --min-witnesses", "--min-witnesses %d with %d witness keys", *minW, len(opts.Witnesses))
	}
	if *vkeyFile != "" {
		vkey, err := readVerifierKey(*vkeyFile)
		if err != nil {
			return err
		}
		opts.VerifierKey = vkey
	}
	for _, p := range cpFiles {
		b, err := readFileArg("checkpoint", p)
		if err != nil {
			return err
		}
		opts.Checkpoints = append(opts.Checkpoints, b)
	}
	ctx := context.Background()
	f.now.t = time.Unix(0, 0) // the audit uses each entry's receipt time, never now
	l, store, err := openLedger(ctx, e, &f, false, true)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := l.AuditWith(ctx, opts)
	var ae *ledger.AuditError
	switch {
	case errors.As(err, &ae):
		return failf("ledger is NOT intact: first bad index %d: %s", ae.Index, ae.Reason)
	case errors.Is(err, ledger.ErrBadCheckpoint):
		return usagef("give checkpoints of this ledger, checked with its key", "%v", err)
	case errors.Is(err, ledger.ErrTooFewCosignatures):
		return failf("ledger is NOT witnessed as required: %v", err)
	case err != nil:
		return failf("audit failed: %v", err)
	}
	fmt.Fprintf(e.stdout, "ledger intact: %s, %s verified", plural(rep.Size, "entry", "entries"), plural(uint64(rep.Checkpoints), "checkpoint", "checkpoints"))
	if rep.External > 0 {
		fmt.Fprintf(e.stdout, ", consistent with %s you gave", plural(uint64(rep.External), "earlier checkpoint", "earlier checkpoints"))
	}
	if len(rep.Partial) > 0 {
		fmt.Fprintf(e.stdout, ", partial entries %v", rep.Partial)
	}
	if len(opts.Witnesses) > 0 {
		fmt.Fprintf(e.stdout, ", latest checkpoint cosigned by %d of %d witnesses", rep.Witnessed, len(opts.Witnesses))
	}
	if rep.KeyPinned {
		fmt.Fprintln(e.stdout, "; verifier key pinned")
	} else {
		fmt.Fprintln(e.stdout, "; verifier key UNPINNED (read from the database it audits; pass --ledger-key-file)")
	}
	if len(rep.Unverified) > 0 {
		// SPEC: LED-9b a key missing from the trust is a configuration finding (exit 2).
		for _, k := range rep.Unverified {
			fmt.Fprintf(e.stderr, "agentctx: entry %d: the trust has no key %q for issuer %q\n", k.Index, k.KeyID, k.Issuer)
		}
		return usagef("add the missing keys to --trust and audit again; everything else was checked",
			"configuration: %s could not be verified because the trust lacks %s", plural(uint64(len(rep.Unverified)), "token", "tokens"),
			map[bool]string{true: "its key", false: "their keys"}[len(rep.Unverified) == 1])
	}
	return nil
}

// plural formats n with the singular or plural noun.
func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func cmdCheckpointVerify(e *env, args []string) error {
	fs := newFlags(e, "checkpoint verify", "checkpoint verify --ledger-key-file VKEY (--checkpoint FILE | --old FILE --new FILE --proof FILE)")
	vkeyFile := fs.String("ledger-key-file", "", "the ledger's note verifier key")
	one := fs.String("checkpoint", "", "a signed checkpoint to check")
	oldF := fs.String("old", "", "the older checkpoint")
	newF := fs.String("new", "", "the newer checkpoint")
	proofF := fs.String("proof", "", "the consistency proof between them (the output of ledger prove --from --to)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *vkeyFile == "" {
		return usagef("the key printed by agentctx ledger init or ledger pubkey", "--ledger-key-file is required")
	}
	vkey, err := readVerifierKey(*vkeyFile)
	if err != nil {
		return err
	}
	read := readFileArg
	switch {
	case *one != "" && *oldF == "" && *newF == "" && *proofF == "":
		b, err := read("checkpoint", *one)
		if err != nil {
			return err
		}
		c, err := ledger.VerifyCheckpoint(vkey, b)
		if err != nil {
			return failf("checkpoint does NOT verify: %v", err)
		}
		fmt.Fprintf(e.stdout, "checkpoint verified: %s, size %d\n", c.Origin, c.Size)
		return nil
	case *one == "" && *oldF != "" && *newF != "" && *proofF != "":
		ob, err := read("old", *oldF)
		if err != nil {
			return err
		}
		nb, err := read("new", *newF)
		if err != nil {
			return err
		}
		pb, err := read("proof", *proofF)
		if err != nil {
			return err
		}
		var pr struct {
			Proof [][]byte `json:"proof"`
		}
		if err := json.Unmarshal(pb, &pr); err != nil || pr.Proof == nil {
			return usagef("give the JSON that agentctx ledger prove --from S1 --to S2 prints", "--proof %s is not a consistency proof", describeArg(*proofF))
		}
		oc, nc, err := ledger.VerifyConsistency(vkey, ob, nb, pr.Proof)
		if err != nil {
			return failf("checkpoints are NOT consistent: %v", err)
		}
		fmt.Fprintf(e.stdout, "consistent: size %d is a prefix of size %d, both signed by %s\n", oc.Size, nc.Size, nc.Origin)
		return nil
	}
	return usagef("", "give --checkpoint FILE, or --old, --new and --proof")
}

func cmdReceiptVerify(e *env, args []string) error {
	fs := newFlags(e, "receipt verify", "receipt verify --ledger-key-file VKEY --receipt FILE --token TOKEN|@FILE|- [--witness-key VKEY... --min-witnesses K]")
	vkeyFile := fs.String("ledger-key-file", "", "the ledger's note verifier key file (agentctx ledger pubkey)")
	fs.alias("ledger-key", "ledger-key-file")
	rfile := fs.String("receipt", "", "the receipt: JSON (a line of ledger append, or ledger prove), C2SP tlog-proof or RFC 9942 COSE (detected)")
	tokArg := fs.String("token", "", "the token: the value, @FILE or - (a plain file path is read too)")
	var wkeys stringList
	fs.Var(&wkeys, "witness-key", "a witness's cosignature key, or a file of them (repeatable)")
	minW := fs.Int("min-witnesses", 0, "refuse a receipt whose checkpoint carries fewer valid cosignatures of the --witness-key witnesses")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	witnesses, err := witnessKeys(wkeys)
	if err != nil {
		return err
	}
	if *minW > len(witnesses) {
		return usagef("give at least as many --witness-key as --min-witnesses", "--min-witnesses %d with %d witness keys", *minW, len(witnesses))
	}
	if *vkeyFile == "" || *rfile == "" || *tokArg == "" {
		return usagef("example: agentctx receipt verify --ledger-key-file ledger.vkey --receipt r.json --token @tok", "--ledger-key-file, --receipt and --token are required")
	}
	vkey, err := readVerifierKey(*vkeyFile)
	if err != nil {
		return err
	}
	rb, err := readFileArg("receipt", *rfile)
	if err != nil {
		return err
	}
	tok, err := tokenOrFile(e, "token", *tokArg)
	if err != nil {
		return err
	}
	switch {
	case ledger.IsCOSE(rb):
		info, err := ledger.VerifyCOSEReceipt(vkey, rb, []byte(tok))
		if err == nil {
			err = ledger.RequireCosignatures(info.Checkpoint, witnesses, *minW)
		}
		if err != nil {
			return failf("receipt does NOT verify: %v", err)
		}
		fmt.Fprintf(e.stdout, "receipt verified (COSE): entry %d of %d (%s, task %s)\n", info.Index, info.TreeSize, info.Kind, ledger.JTIOf(tok))
		return nil
	case ledger.IsTLogProof(rb):
		r, err := ledger.ParseTLogProof(rb, []byte(tok))
		if err == nil {
			err = ledger.VerifyReceipt(vkey, r, []byte(tok))
		}
		if err == nil {
			err = ledger.RequireCosignatures([]byte(r.Checkpoint), witnesses, *minW)
		}
		if err != nil {
			return failf("receipt does NOT verify: %v", err)
		}
		fmt.Fprintf(e.stdout, "receipt verified (tlog-proof): entry %d of %d (%s, task %s)\n", r.Index, r.TreeSize, r.Kind, ledger.JTIOf(tok))
		return nil
	}
	rs := parseReceipts(rb)
	if len(rs) != 1 {
		return usagef("give one receipt (a line of ledger append, or the output of ledger prove)", "--receipt %s holds %d receipts", describeArg(*rfile), len(rs))
	}
	r := *rs[0]
	err = ledger.VerifyReceipt(vkey, &r, []byte(tok))
	if err == nil {
		err = ledger.RequireCosignatures([]byte(r.Checkpoint), witnesses, *minW)
	}
	if err != nil {
		return failf("receipt does NOT verify: %v", err)
	}
	fmt.Fprintf(e.stdout, "receipt verified: entry %d of %d (%s, task %s)\n", r.Index, r.TreeSize, r.Kind, r.JTI)
	return nil
}

// tokenOrFile is readToken, and for the older spelling a plain path to a
// file holding the token.
func tokenOrFile(e *env, flagName, v string) (string, error) {
	if v != "-" && !strings.HasPrefix(v, "@") && secretKind(v) == "" {
		if _, err := os.Stat(v); err == nil {
			v = "@" + v
		}
	}
	return readToken(e, flagName, v)
}
