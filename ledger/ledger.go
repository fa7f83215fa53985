package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/trust"
)

// LeafPrefix starts every leaf's data (LED-5).
const LeafPrefix = "agentctx-ledger-v1\n"

var hasher = rfc6962.DefaultHasher

// LeafData returns the leaf data of an entry (LED-5).
func LeafData(kind string, receivedAtMillis int64, token []byte) []byte {
	b := make([]byte, 0, len(LeafPrefix)+len(kind)+24+len(token))
	b = append(b, LeafPrefix...)
	b = append(b, kind...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, receivedAtMillis, 10)
	b = append(b, '\n')
	return append(b, token...)
}

// LeafHash returns SHA-256(0x00 || leaf data) of an entry.
func LeafHash(kind string, receivedAtMillis int64, token []byte) []byte {
	return hasher.HashLeaf(LeafData(kind, receivedAtMillis, token))
}

// Config holds what a Ledger needs.
type Config struct {
	// Store is the storage. Required.
	Store Store
	// Signer signs checkpoints with the ledger's key; nil opens the ledger
	// read-only (appends fail).
	Signer note.Signer
	// Trust resolves the keys of the agents whose tokens are appended and
	// audited. Required for Append and Audit.
	Trust trust.Resolver
	// Clock gives the receipt time. Required.
	Clock func() time.Time
	// Partial accepts tokens whose predecessors are not in the ledger,
	// flagged partial (DAG-2 partial mode).
	Partial bool
}

// Ledger appends verified tokens and proves what it holds. Appends within
// one process are serialized; across processes the Store's Commit detects a
// concurrent writer (ErrConflict) and Append retries.
type Ledger struct {
	cfg      Config
	meta     Meta
	verifier note.Verifier
	ect      *ect.Verifier
	act      *act.Verifier
	rf       *compact.RangeFactory
	mu       sync.Mutex
	// opened is the last checkpoint whose signature was checked, so that
	// proofs against the latest checkpoint check it once, not per proof.
	opened atomic.Pointer[openedCheckpoint]
	// witnessed says cosignatures were seen; cosigLook is when the store
	// was last asked (Unix ns): mayBeWitnessed.
	witnessed atomic.Bool
	cosigLook atomic.Int64
	// nodes keeps the upper tree nodes proofs read.
	nodes nodeCache
}

// openedCheckpoint is a signed checkpoint (its exact bytes) and what it says.
type openedCheckpoint struct {
	signed []byte
	c      Checkpoint
}

// GenerateKey returns a new note signer key (secret, keep it in a 0600 file)
// and its verifier key for a ledger named id.
func GenerateKey(id string) (signerKey, verifierKey string, err error) {
	return note.GenerateKey(rand.Reader, id)
}

// Create initializes store as the ledger id with the verifier key vkey.
func Create(ctx context.Context, store Store, id, vkey string) error {
	if id == "" || strings.ContainsAny(id, " \t\n+") {
		return fmt.Errorf("ledger id %q must be non-empty, without spaces or '+'", id)
	}
	if _, err := note.NewVerifier(vkey); err != nil {
		return fmt.Errorf("ledger verifier key: %w", err)
	}
	return store.Create(ctx, Meta{ID: id, VerifierKey: vkey})
}

// sigCache is how many verified signatures the ledger's verifiers keep, for
// Precheck: about what a busy service has in flight.
const sigCache = 8192

// Open returns the ledger held by cfg.Store.
func Open(ctx context.Context, cfg Config) (*Ledger, error) {
	if cfg.Store == nil || cfg.Clock == nil {
		return nil, errors.New("ledger: Store and Clock are required")
	}
	meta, err := cfg.Store.Meta(ctx)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(meta.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("ledger: stored verifier key: %w", err)
	}
	if cfg.Signer != nil && (cfg.Signer.Name() != v.Name() || cfg.Signer.KeyHash() != v.KeyHash()) {
		return nil, errors.New("ledger: the signing key is not this ledger's key")
	}
	l := &Ledger{cfg: cfg, meta: meta, verifier: v, rf: &compact.RangeFactory{Hash: hasher.HashChildren}}
	if cfg.Trust != nil {
		if l.ect, err = ect.NewVerifier(ect.Config{Trust: cfg.Trust, Audience: meta.ID, Clock: cfg.Clock, SignatureCache: sigCache}); err != nil {
			return nil, err
		}
		if l.act, err = act.NewVerifier(act.Config{Trust: cfg.Trust, Audience: meta.ID, Clock: cfg.Clock, SignatureCache: sigCache}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Precheck verifies in's token (and its supporting tokens) as Append will,
// in the caller's goroutine, so that the signature arithmetic of a later
// Append of the same bytes is already done: a service calls it before
// queueing a request for the sequencer, where verification would otherwise
// run one batch at a time. It writes nothing and decides nothing: Append
// verifies everything again (signatures that verified here, exactly these
// bytes with exactly these keys, are not recomputed) and returns the
// verdict.
func (l *Ledger) Precheck(ctx context.Context, in Input) {
	if l.ect == nil {
		return
	}
	token := strings.TrimSpace(in.Token)
	kind, err := kindOf(token)
	if err != nil {
		return
	}
	now := l.cfg.Clock()
	if kind == KindECT {
		l.ect.VerifyAudit(ctx, token, now)
		return
	}
	l.act.VerifyAudit(ctx, token, in.Supporting, now)
}

// Meta returns the ledger's identity.
func (l *Ledger) Meta() Meta { return l.meta }

// Input is one token to append, with its supporting tokens (a delegated
// mandate's parents, or a record's mandate and its parents), nearest first.
type Input struct {
	Token      string
	Supporting []string
}

// Outcome is the result of appending one Input: a receipt or an error.
type Outcome struct {
	Receipt *Receipt
	// Supporting are the receipts of the supporting tokens (a delegated
	// mandate's parents, a record's mandate) that were not in the ledger
	// and were appended before the token (ACT-P3b).
	Supporting []*Receipt
	Partial    []string // predecessors (or a record's mandate) that were missing (partial mode)
	Err        error
}

// Receipt is everything needed to check offline, with only the ledger's
// public key, that a token is in the log (LED-7).
type Receipt struct {
	Index          uint64   `json:"index"`
	TreeSize       uint64   `json:"tree_size"`
	LeafHash       []byte   `json:"leaf_hash"`
	ReceivedAt     int64    `json:"received_at"`
	Kind           string   `json:"kind"`
	InclusionProof [][]byte `json:"inclusion_proof"`
	Checkpoint     string   `json:"checkpoint"`
	// JTI and WID name the entry's task and workflow (lower case): what the
	// receipt is about, for people and scripts. VerifyReceipt checks that
	// the token carries this jti.
	JTI string `json:"jti"`
	WID string `json:"wid,omitempty"`
}

// KindOf returns the entry kind a token claims, unverified: KindECT,
// KindACTMandate, KindACTRecord, or "" when it is none of them (or not a
// JWS). For labels and logs; Append derives the kind itself.
func KindOf(token string) string {
	token = strings.TrimSpace(token)
	k, err := kindOf(token)
	if err != nil || k == KindECT {
		return k
	}
	shape, err := act.ParseUnverified(token)
	switch {
	case err != nil:
		return ""
	case shape.Phase == act.PhaseMandate:
		return KindACTMandate
	}
	return KindACTRecord
}

// kindOf derives the family from the unverified typ (never trusted from the
// caller, LED-1).
func kindOf(token string) (string, error) {
	h, err := jws.ParseHeader(token, 0)
	if err != nil {
		return "", err
	}
	switch {
	case jws.TypMatches(h.Typ, ect.Typ) || jws.TypMatches(h.Typ, ect.LegacyTyp):
		return KindECT, nil
	case jws.TypMatches(h.Typ, act.Typ):
		return "act", nil
	}
	return "", agentctx.Errorf(agentctx.CodeInvalidTyp, "LED-1", "typ", "typ %q is neither an ECT nor an ACT", h.Typ)
}

func toNode(e *Entry) dag.Node {
	return dag.Node{Kind: e.Kind, JTI: e.JTI, WID: e.WID, Pred: e.Pred, Time: e.Time, Issuer: e.Issuer, Subject: e.Subject,
		ExecAct: e.ExecAct, Caps: e.Caps, PolicyDecision: e.Policy, Status: e.Status, Partial: e.Partial}
}

// overlay is the DAG store of a batch: the ledger plus the batch's pending
// entries.
type overlay struct {
	store   Store
	pending *dag.MemStore
}

// Lookup implements dag.Store over the ledger and the pending batch.
func (o *overlay) Lookup(ctx context.Context, jti string) ([]dag.Node, error) {
	es, err := o.store.ByJTI(ctx, strings.ToLower(jti))
	if err != nil {
		return nil, err
	}
	out := make([]dag.Node, 0, len(es))
	for i := range es {
		out = append(out, toNode(&es[i]))
	}
	p, _ := o.pending.Lookup(ctx, jti)
	return append(out, p...), nil
}

// loadRange returns the compact range [0, size) from the stored nodes.
func (l *Ledger) loadRange(ctx context.Context, size uint64) (*compact.Range, []compact.NodeID, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := l.cfg.Store.Hashes(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	r, err := l.rf.NewRange(0, size, hashes)
	return r, ids, err
}

// Checkpoint body and signature (LED-6).
func (l *Ledger) sign(size uint64, root []byte) ([]byte, error) {
	body := fmt.Sprintf("%s\n%d\n%s\n", l.meta.ID, size, base64.StdEncoding.EncodeToString(root))
	return note.Sign(&note.Note{Text: body}, l.cfg.Signer)
}

// Append verifies and appends inputs as one group commit (LED-10), in input
// order, and returns one outcome per input. A token already in the ledger
// (the exact bytes) answers with its original receipt (LED-4). The error is
// for the batch as a whole (storage), never a verdict on a token.
func (l *Ledger) Append(ctx context.Context, inputs []Input) ([]Outcome, error) {
	if l.cfg.Signer == nil || l.ect == nil {
		return nil, errors.New("ledger: opened without a signing key or trust; cannot append")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for attempt := 0; ; attempt++ {
		out, err := l.appendOnce(ctx, inputs)
		if errors.Is(err, ErrConflict) && attempt < 20 {
			continue
		}
		return out, err
	}
}

func (l *Ledger) appendOnce(ctx context.Context, inputs []Input) ([]Outcome, error) {
	// One batch sees one state of the store (appends are serialized, and a
	// concurrent writer makes the commit fail and the batch start again),
	// so its look-ups by jti are made once, most of them by the parallel
	// phase, and the ordered phase reads them from memory.
	store := &batchStore{Store: l.cfg.Store, byJTI: map[string][]Entry{}}
	size, err := store.Size(ctx)
	if err != nil {
		return nil, err
	}
	rng, oldIDs, err := l.loadRange(ctx, size)
	if err != nil {
		return nil, err
	}
	cache := map[compact.NodeID][]byte{}
	for i, id := range oldIDs {
		cache[id] = rng.Hashes()[i]
	}
	var nodes []TreeNode
	visit := func(id compact.NodeID, hash []byte) {
		cache[id] = hash
		nodes = append(nodes, TreeNode{ID: id, Hash: hash})
	}
	now := l.cfg.Clock()
	// SPEC: LED-2a the receipt time never goes below the previous entry's.
	received := now.UnixMilli()
	if size > 0 {
		last, err := store.Entries(ctx, size-1, size)
		if err != nil {
			return nil, err
		}
		if len(last) == 1 && last[0].ReceivedAt > received {
			received = last[0].ReceivedAt
		}
	}
	pending := dag.NewMemStore()
	ov := &overlay{store: store, pending: pending}
	// SPEC: DAG-4 every stored node passed DAG-2 against this ledger, so the
	// ancestor walk is needed only for a record of a stored mandate (the
	// checker walks it) and, in partial mode, for a task a partial entry
	// may have named as missing [decision].
	checker := dag.NewChecker(ov, dag.Config{Partial: l.cfg.Partial, AcyclicStore: !l.cfg.Partial})
	outs := make([]Outcome, len(inputs))
	batch := newBatchIndex(inputs)
	find := func(i int) finder {
		fromStore := storeFinder(store, nil)
		return func(ctx context.Context, jti string) ([]candidate, error) {
			cs, err := fromStore(ctx, jti)
			if err != nil {
				return nil, err
			}
			return append(cs, batch.before(i, jti)...), nil
		}
	}
	// Every token is verified as of its receipt time, which the audit
	// uses again: a clock set back (or append --now) cannot backdate one.
	at := time.UnixMilli(received)
	pre, err := l.prepare(ctx, store, inputs, at, find)
	if err != nil {
		return nil, err
	}
	var entries []Entry
	stored := map[int]*Entry{}  // input -> entry already in the ledger
	batchPos := map[int]int{}   // input -> position in entries
	inBatch := map[string]int{} // token hash -> position in entries
	support := map[int][]int{}  // input -> positions of the supporting tokens it stored
	// place checks the DAG rules for d and adds it to the batch; it returns
	// the verdict on the token, or a storage error.
	place := func(d *derived, hash [32]byte) (int, []string, error, error) {
		e := d.entry
		n := toNode(e)
		v, err := checker.Check(ctx, n)
		if err != nil {
			if agentctx.CodeOf(err) == agentctx.CodeInternal {
				return 0, nil, nil, err
			}
			return 0, nil, err, nil
		}
		missing := append(v.Missing, d.missing...)
		if len(missing) > 0 {
			e.Partial, n.Partial = true, true
		}
		e.Index = size + uint64(len(entries))
		e.ReceivedAt = received
		e.TokenHash = hash[:]
		e.LeafHash = LeafHash(e.Kind, received, e.Token)
		if err := rng.Append(e.LeafHash, visit); err != nil {
			return 0, nil, nil, err
		}
		pending.Add(n)
		pos := len(entries)
		inBatch[string(hash[:])] = pos
		entries = append(entries, *e)
		return pos, missing, nil, nil
	}
	for i := range inputs {
		p := &pre[i]
		// SPEC: LED-4 an identical re-append answers with the original receipt.
		if j, ok := inBatch[string(p.hash[:])]; ok {
			batchPos[i] = j
			continue
		}
		if p.stored != nil {
			stored[i] = p.stored
			continue
		}
		if p.err != nil {
			outs[i].Err = p.err
			continue
		}
		// SPEC: ACT-P3b supporting tokens not yet stored are appended first.
		var verdict error
		for _, s := range p.d.needs {
			h := sha256.Sum256([]byte(s))
			if _, ok := inBatch[string(h[:])]; ok {
				continue
			}
			sd, err := l.derive(ctx, s, inputs[i].Supporting, at, find(i), l.cfg.Partial)
			if err == nil {
				var pos int
				var fatal error
				pos, _, err, fatal = place(sd, h)
				if fatal != nil {
					return nil, fatal
				}
				if err == nil {
					support[i] = append(support[i], pos)
					continue
				}
			}
			if agentctx.CodeOf(err) == agentctx.CodeInternal {
				return nil, err
			}
			verdict = supportErr(err)
			break
		}
		if verdict != nil {
			outs[i].Err = verdict
			continue
		}
		pos, missing, verdict, fatal := place(p.d, p.hash)
		if fatal != nil {
			return nil, fatal
		}
		if verdict != nil {
			outs[i].Err = verdict
			continue
		}
		outs[i].Partial = missing
		batchPos[i] = pos
	}
	newSize := size + uint64(len(entries))
	var cp []byte
	if len(entries) > 0 {
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		if cp, err = l.sign(newSize, root); err != nil {
			return nil, err
		}
		sig, err := l.signCOSE(root)
		if err != nil {
			return nil, err
		}
		if err := store.Commit(ctx, entries, nodes, cp, sig); err != nil {
			return nil, err
		}
	} else if cp, err = store.Checkpoint(ctx, 0); err != nil {
		return nil, err
	}
	for i := range inputs {
		if outs[i].Err != nil {
			continue
		}
		e := stored[i]
		if e == nil {
			e = &entries[batchPos[i]]
		}
		r, err := l.receipt(ctx, e, newSize, cp, cache)
		if err != nil {
			return nil, err
		}
		outs[i].Receipt = r
		for _, pos := range support[i] {
			sr, err := l.receipt(ctx, &entries[pos], newSize, cp, cache)
			if err != nil {
				return nil, err
			}
			outs[i].Supporting = append(outs[i].Supporting, sr)
		}
	}
	return outs, nil
}

// supportErr marks the failure of a supporting token.
func supportErr(err error) error {
	var e *agentctx.Error
	if errors.As(err, &e) {
		c := *e
		c.Message = "supporting token: " + e.Message
		return &c
	}
	return err
}

// batchIndex finds the tokens of a batch by jti, for the support look-ups
// of later inputs (a mandate appended in the same batch as its record).
type batchIndex struct {
	byJTI map[string][]int
	cands []candidate
}

func newBatchIndex(inputs []Input) *batchIndex {
	b := &batchIndex{byJTI: map[string][]int{}}
	for i, in := range inputs {
		c := candidate{token: strings.TrimSpace(in.Token)}
		if r, err := act.ParseUnverified(c.token); err == nil && r.Phase == act.PhaseMandate {
			c.kind, c.jti, c.wid = KindACTMandate, strings.ToLower(r.Mandate.ID), strings.ToLower(r.Mandate.WorkflowID)
			b.byJTI[c.jti] = append(b.byJTI[c.jti], i)
		}
		b.cands = append(b.cands, c)
	}
	return b
}

// before returns the batch's mandates with task id jti among the inputs
// before input i.
func (b *batchIndex) before(i int, jti string) []candidate {
	var out []candidate
	for _, j := range b.byJTI[jti] {
		if j < i {
			out = append(out, b.cands[j])
		}
	}
	return out
}

// prepared is the stateless part of appending one input.
type prepared struct {
	hash   [32]byte
	stored *Entry   // the same bytes are already in the ledger
	d      *derived // verified, not yet placed
	err    error    // the verdict when verification failed
}

// prepare looks up and verifies every input, on all cores: what does not
// depend on the order of the batch.
func (l *Ledger) prepare(ctx context.Context, st *batchStore, inputs []Input, now time.Time, find func(int) finder) ([]prepared, error) {
	// The batch's jtis are looked up first, 128 to a query (most are not
	// stored: a query for each on its own was a fifth of a batch's cost);
	// then each input is verified, one at a time, for the cores to stay
	// busy to the end.
	const block = 128
	jtis := make([]string, len(inputs)) // each input's jti, read once
	err := parallel((len(inputs)+block-1)/block, func(b int) error {
		from, to := b*block, min((b+1)*block, len(inputs))
		for i := from; i < to; i++ {
			jtis[i] = strings.ToLower(JTIOf(strings.TrimSpace(inputs[i].Token)))
		}
		return st.prefetch(ctx, jtis[from:to])
	})
	if err != nil {
		return nil, err
	}
	pre := make([]prepared, len(inputs))
	err = parallel(len(inputs), func(i int) error {
		return l.prepareOne(ctx, st, inputs[i], jtis[i], &pre[i], now, find(i))
	})
	return pre, err
}

// parallel calls f(i) for i in [0, n) on every core and returns the first
// error; after an error no new call starts.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	var failed atomic.Bool
	for w := 0; w < runtime.GOMAXPROCS(0) && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// prepareOne is the parallel phase of one input whose jti is jti (lower
// case): its stored entry if the ledger holds it, else its verification.
func (l *Ledger) prepareOne(ctx context.Context, st *batchStore, in Input, jti string, p *prepared, now time.Time, find finder) error {
	in.Token = strings.TrimSpace(in.Token)
	p.hash = sha256.Sum256([]byte(in.Token))
	e, err := l.byToken(ctx, st, jti, p.hash[:])
	if err != nil {
		return err
	}
	p.stored = e
	if e != nil {
		return nil
	}
	p.d, p.err = l.derive(ctx, in.Token, in.Supporting, now, find, l.cfg.Partial)
	if agentctx.CodeOf(p.err) == agentctx.CodeInternal {
		return p.err
	}
	if p.err == nil {
		// The ordered phase's DAG checks look these up.
		for _, pred := range p.d.entry.Pred {
			if _, err := st.ByJTI(ctx, strings.ToLower(pred)); err != nil {
				return err
			}
		}
	}
	return nil
}

// byToken returns the entry holding exactly the token whose jti is jti
// (lower case) and whose SHA-256 is hash, or nil. It looks the token's task
// up by jti (an identical token has the same jti), which spares the store
// an index on token hashes.
func (l *Ledger) byToken(ctx context.Context, st Store, jti string, hash []byte) (*Entry, error) {
	if jti == "" {
		return nil, nil
	}
	es, err := st.ByJTI(ctx, jti)
	if err != nil {
		return nil, err
	}
	for i := range es {
		if bytes.Equal(es[i].TokenHash, hash) {
			return &es[i], nil
		}
	}
	return nil, nil
}

// receipt builds the receipt of e at size with checkpoint cp; cache holds
// node hashes already in hand (the batch's and the previous compact range).
func (l *Ledger) receipt(ctx context.Context, e *Entry, size uint64, cp []byte, cache map[compact.NodeID][]byte) (*Receipt, error) {
	pr, err := l.inclusion(ctx, e.Index, size, cache)
	if err != nil {
		return nil, err
	}
	return &Receipt{JTI: e.JTI, WID: e.WID, Index: e.Index, TreeSize: size, LeafHash: e.LeafHash, ReceivedAt: e.ReceivedAt, Kind: e.Kind, InclusionProof: pr, Checkpoint: string(cp)}, nil
}

// inclusion builds the inclusion proof of index at size with O(log n) node
// reads (LED-8).
func (l *Ledger) inclusion(ctx context.Context, index, size uint64, cache map[compact.NodeID][]byte) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes, err := l.fetch(ctx, nodes.IDs, cache)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// fetch returns the hashes of the stored nodes ids: from cache (a batch's
// nodes not yet stored), the node cache, or the store.
func (l *Ledger) fetch(ctx context.Context, ids []compact.NodeID, cache map[compact.NodeID][]byte) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var read, low []int // positions to read as they are; below nodeCacheLevel
	for i, id := range ids {
		if h, ok := cache[id]; ok {
			out[i] = h
		}
	}
	l.nodes.fill(ids, out)
	for i, id := range ids {
		if out[i] != nil {
			continue
		} else if id.Level < nodeCacheLevel && cache == nil {
			low = append(low, i)
		} else {
			read = append(read, i)
		}
	}
	// A proof's nodes below nodeCacheLevel lie in one block of
	// 2^nodeCacheLevel leaves: reading those leaves in one range and hashing
	// them up costs a fraction of reading each node on its own.
	lo, hi, span := leafSpan(ids, low)
	if !span {
		read, low = append(read, low...), nil
	}
	q := make([]compact.NodeID, 0, len(read)+int(hi-lo))
	for _, i := range read {
		q = append(q, ids[i])
	}
	for j := lo; j < hi; j++ {
		q = append(q, compact.NewNodeID(0, j))
	}
	if len(q) == 0 {
		return out, nil
	}
	hs, err := l.cfg.Store.Hashes(ctx, q)
	if err != nil {
		return nil, err
	}
	for k, i := range read {
		out[i] = hs[k]
	}
	l.nodes.put(q[:len(read)], hs[:len(read)])
	leaves := hs[len(read):]
	for _, i := range low {
		id := ids[i]
		first := id.Index<<id.Level - lo
		out[i] = subtreeHash(leaves[first : first+1<<id.Level])
	}
	return out, nil
}

// leafSpan returns the leaves [lo, hi) under the nodes ids[low...] and
// whether reading them is worth it: more than one node, all under one block
// of 2^nodeCacheLevel leaves.
func leafSpan(ids []compact.NodeID, low []int) (lo, hi uint64, ok bool) {
	if len(low) < 2 {
		return 0, 0, false
	}
	lo, hi = ^uint64(0), 0
	for _, i := range low {
		id := ids[i]
		lo, hi = min(lo, id.Index<<id.Level), max(hi, (id.Index+1)<<id.Level)
	}
	return lo, hi, hi-lo <= 1<<nodeCacheLevel
}

// subtreeHash is the RFC 9162 hash of the complete subtree over leaves (a
// power of two of them).
func subtreeHash(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	h := len(leaves) / 2
	return hasher.HashChildren(subtreeHash(leaves[:h]), subtreeHash(leaves[h:]))
}

// Checkpoint returns the latest signed checkpoint (nil for an empty log).
func (l *Ledger) Checkpoint(ctx context.Context) ([]byte, error) {
	return l.cfg.Store.Checkpoint(ctx, 0)
}

// Prove returns a receipt for entry index at the published size (0: the
// latest).
func (l *Ledger) Prove(ctx context.Context, index, size uint64) (*Receipt, error) {
	cp, err := l.cfg.Store.Checkpoint(ctx, size)
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, fmt.Errorf("%w: no checkpoint of size %d was published", ErrNotFound, size)
	}
	c, err := l.OpenCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	if index >= c.Size {
		return nil, fmt.Errorf("%w: index %d is not in the log of size %d", ErrNotFound, index, c.Size)
	}
	es, err := l.cfg.Store.Entries(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	if len(es) != 1 {
		return nil, ErrNotFound
	}
	// The receipt carries the checkpoint with its witness cosignatures (a
	// ledger that has none costs no query for them: mayBeWitnessed).
	if l.mayBeWitnessed() {
		if cp, err = l.withCosignatures(ctx, cp, c.Size); err != nil {
			return nil, err
		}
	}
	return l.receipt(ctx, &es[0], c.Size, cp, nil)
}

// ProveLeaf is Prove for the entry whose RFC 9162 leaf hash is leafHash
// (the receipt's leaf_hash), ErrNotFound when the log holds none.
func (l *Ledger) ProveLeaf(ctx context.Context, leafHash []byte, size uint64) (*Receipt, error) {
	es, err := l.cfg.Store.ByLeafHash(ctx, leafHash)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w: no entry has leaf hash %x", ErrNotFound, leafHash)
	}
	return l.Prove(ctx, es[0].Index, size)
}

// WorkflowEntries returns the entries of workflow wid in index order.
func (l *Ledger) WorkflowEntries(ctx context.Context, wid string) ([]Entry, error) {
	return l.cfg.Store.Workflow(ctx, strings.ToLower(wid))
}

// Get returns the entries of task jti, in workflow wid when wid is not "".
func (l *Ledger) Get(ctx context.Context, jti, wid string) ([]Entry, error) {
	es, err := l.cfg.Store.ByJTI(ctx, strings.ToLower(jti))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range es {
		if wid == "" || e.WID == strings.ToLower(wid) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Consistency returns the consistency proof between published sizes s1 and
// s2 (LED-8).
func (l *Ledger) Consistency(ctx context.Context, s1, s2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(s1, s2)
	if err != nil {
		return nil, err
	}
	hashes, err := l.fetch(ctx, nodes.IDs, nil)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// Workflow returns the task graph of workflow wid.
func (l *Ledger) Workflow(ctx context.Context, wid string) (*dag.Graph, error) {
	es, err := l.cfg.Store.Workflow(ctx, strings.ToLower(wid))
	if err != nil {
		return nil, err
	}
	return GraphOf(es), nil
}

// GraphOf returns the task graph of entries, as Workflow builds it from a
// workflow's entries (WorkflowEntries).
func GraphOf(es []Entry) *dag.Graph {
	nodes := make([]dag.Node, len(es))
	for i := range es {
		nodes[i] = toNode(&es[i])
	}
	return dag.NewGraph(nodes)
}

// Checkpoint is a parsed, signature-checked checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// OpenCheckpoint checks a signed checkpoint with the ledger's key. The
// signature of the same bytes is checked once: the ledger keeps the last
// checkpoint it opened.
func (l *Ledger) OpenCheckpoint(signed []byte) (*Checkpoint, error) {
	if o := l.opened.Load(); o != nil && bytes.Equal(o.signed, signed) {
		c := o.c
		c.Root = bytes.Clone(c.Root)
		return &c, nil
	}
	c, err := OpenCheckpoint(signed, l.verifier)
	if err != nil {
		return nil, err
	}
	o := &openedCheckpoint{signed: bytes.Clone(signed), c: *c}
	o.c.Root = bytes.Clone(c.Root)
	l.opened.Store(o)
	return c, nil
}

// OpenCheckpoint checks a signed checkpoint note with v and parses its body.
func OpenCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, errors.New("checkpoint body is not origin, size, root")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint size: %w", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return nil, errors.New("checkpoint root is not a base64 SHA-256 hash")
	}
	if lines[0] != v.Name() {
		return nil, fmt.Errorf("checkpoint origin %q is not the key's name %q", lines[0], v.Name())
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// VerifyCheckpoint checks a signed checkpoint offline with the ledger's
// verifier key vkey alone and returns it parsed.
func VerifyCheckpoint(vkey string, signed []byte) (*Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	return OpenCheckpoint(signed, v)
}

// VerifyConsistency checks offline what a witness checks (LED-9a, C2SP
// tlog-witness): both checkpoints verify with vkey, the old one is not
// larger, and the RFC 9162 consistency proof shows the old tree is a prefix
// of the new one.
func VerifyConsistency(vkey string, oldCP, newCP []byte, pr [][]byte) (old, cur *Checkpoint, err error) {
	if old, err = VerifyCheckpoint(vkey, oldCP); err != nil {
		return nil, nil, fmt.Errorf("old checkpoint: %w", err)
	}
	if cur, err = VerifyCheckpoint(vkey, newCP); err != nil {
		return nil, nil, fmt.Errorf("new checkpoint: %w", err)
	}
	if old.Size > cur.Size {
		return nil, nil, fmt.Errorf("the old checkpoint (size %d) is larger than the new one (size %d)", old.Size, cur.Size)
	}
	if err := proof.VerifyConsistency(hasher, old.Size, cur.Size, pr, old.Root, cur.Root); err != nil {
		return nil, nil, fmt.Errorf("consistency proof from size %d to %d: %w", old.Size, cur.Size, err)
	}
	return old, cur, nil
}

// VerifyReceipt checks offline that token is in the log the receipt names:
// the checkpoint's signature with the ledger's verifier key vkey, the leaf
// hash recomputed from the token bytes, and the inclusion proof against the
// checkpoint's root.
func VerifyReceipt(vkey string, r *Receipt, token []byte) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("ledger key: %w", err)
	}
	c, err := OpenCheckpoint([]byte(r.Checkpoint), v)
	if err != nil {
		return err
	}
	if c.Size != r.TreeSize {
		return fmt.Errorf("receipt tree size %d differs from its checkpoint's %d", r.TreeSize, c.Size)
	}
	leaf := LeafHash(r.Kind, r.ReceivedAt, bytes.TrimSpace(token))
	if !bytes.Equal(leaf, r.LeafHash) {
		return errors.New("the token, kind and receipt time do not give the receipt's leaf hash")
	}
	if err := proof.VerifyInclusion(hasher, r.Index, r.TreeSize, leaf, r.InclusionProof, c.Root); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	if r.JTI != "" {
		if jti := JTIOf(string(bytes.TrimSpace(token))); !strings.EqualFold(jti, r.JTI) {
			return fmt.Errorf("the receipt names task %q, the token is task %q", r.JTI, jti)
		}
	}
	return nil
}

// JTIOf returns the jti a compact JWS claims, unverified ("" when it has
// none): for labels and messages; verification reads it itself.
func JTIOf(token string) string {
	t, err := jws.Parse(token, 0)
	if err != nil {
		return ""
	}
	for _, m := range t.Members {
		if m.Name == "jti" {
			jti, _ := jsonx.DecodeString(m.Value)
			return jti
		}
	}
	return ""
}

// HoldsReceipt reports whether the ledger holds exactly token (ECT-L3): an
// ect.Verifier given the ledger as its Receipts accepts the token as L3.
func (l *Ledger) HoldsReceipt(ctx context.Context, token string) (bool, error) {
	token = strings.TrimSpace(token)
	h := sha256.Sum256([]byte(token))
	e, err := l.byToken(ctx, l.cfg.Store, strings.ToLower(JTIOf(token)), h[:])
	return e != nil, err
}

// ReceiptBook holds receipts checked offline with a ledger's public key; an
// ect.Verifier given a ReceiptBook as its Receipts accepts the tokens they
// cover as L3 without access to the ledger.
type ReceiptBook struct {
	vkey     string
	receipts []*Receipt
}

// NewReceiptBook returns a book of receipts of the ledger whose verifier key
// is vkey.
func NewReceiptBook(vkey string, receipts ...*Receipt) (*ReceiptBook, error) {
	if _, err := note.NewVerifier(vkey); err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	return &ReceiptBook{vkey: vkey, receipts: receipts}, nil
}

// HoldsReceipt reports whether one of the book's receipts verifies for
// token (signature, leaf hash of the exact bytes, inclusion proof).
func (b *ReceiptBook) HoldsReceipt(_ context.Context, token string) (bool, error) {
	for _, r := range b.receipts {
		if VerifyReceipt(b.vkey, r, []byte(token)) == nil {
			return true, nil
		}
	}
	return false, nil
}

// Size returns the number of entries.
func (l *Ledger) Size(ctx context.Context) (uint64, error) { return l.cfg.Store.Size(ctx) }

// Entries returns entries [from, to) in index order.
func (l *Ledger) Entries(ctx context.Context, from, to uint64) ([]Entry, error) {
	return l.cfg.Store.Entries(ctx, from, to)
}

// TileHashes returns the hashes of the C2SP tlog-tiles hash tile at tile
// level tl and index n, width w (1..256): the tree nodes at level 8*tl,
// indexes 256*n .. 256*n+w-1 (all stored, as every completed subtree is).
func (l *Ledger) TileHashes(ctx context.Context, tl, n uint64, w int) ([][]byte, error) {
	ids := make([]compact.NodeID, w)
	for i := range ids {
		ids[i] = compact.NewNodeID(uint(8*tl), 256*n+uint64(i))
	}
	return l.cfg.Store.Hashes(ctx, ids)
}

// batchStore is the store as one batch sees it: ByJTI answers each jti
// from the store once (safe for the batch's parallel phase).
type batchStore struct {
	Store
	mu    sync.Mutex
	byJTI map[string][]Entry
}

// prefetch looks the jtis (lower case; "" skipped) up with one query, for
// ByJTI to answer them from memory.
func (b *batchStore) prefetch(ctx context.Context, all []string) error {
	jtis := make([]string, 0, len(all))
	b.mu.Lock()
	for _, jti := range all {
		if _, ok := b.byJTI[jti]; jti != "" && !ok {
			jtis = append(jtis, jti)
		}
	}
	b.mu.Unlock()
	if len(jtis) == 0 {
		return nil
	}
	es, err := b.Store.ByJTIs(ctx, jtis)
	if err != nil {
		return err
	}
	found := make(map[string][]Entry, len(jtis))
	for _, e := range es {
		found[strings.ToLower(e.JTI)] = append(found[strings.ToLower(e.JTI)], e)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, jti := range jtis {
		if _, ok := b.byJTI[jti]; !ok {
			b.byJTI[jti] = found[jti]
		}
	}
	return nil
}

// ByJTI implements Store, remembering each answer for the batch.
func (b *batchStore) ByJTI(ctx context.Context, jti string) ([]Entry, error) {
	b.mu.Lock()
	es, ok := b.byJTI[jti]
	b.mu.Unlock()
	if ok {
		return es, nil
	}
	es, err := b.Store.ByJTI(ctx, jti)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.byJTI[jti] = es
	b.mu.Unlock()
	return es, nil
}
