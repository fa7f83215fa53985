package ledger

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/dag"
)

// AuditError names the first index where the stored log differs from what
// its contents prove (LED-9).
type AuditError struct {
	Index  uint64 // first bad entry index
	Reason string
}

// Error describes the finding with its index.
func (e *AuditError) Error() string { return fmt.Sprintf("entry %d: %s", e.Index, e.Reason) }

// KeyFinding is a token the audit could not verify because the trust lacks
// a key (LED-9b): a configuration problem, not tampering. Everything else
// about the entry (hashes, tree, DAG rules on its unverified claims) was
// still checked.
type KeyFinding struct {
	Index  uint64
	Issuer string
	KeyID  string
}

// AuditOptions is what the auditor brings from outside the database
// (LED-9a).
type AuditOptions struct {
	// VerifierKey is the ledger's note verifier key as the auditor knows it
	// (pinned). "" reads the key from the database being audited, which
	// proves nothing against whoever can rewrite that database.
	VerifierKey string
	// Checkpoints are signed checkpoints the auditor obtained earlier: each
	// must verify with the key and be consistent with the current log.
	Checkpoints [][]byte
	// Witnesses are the cosignature keys of the witnesses the auditor
	// trusts; with MinWitnesses > 0 the latest checkpoint (with the
	// cosignatures stored for it) and each of Checkpoints must carry at
	// least MinWitnesses valid cosignatures of them (ErrTooFewCosignatures).
	Witnesses    []note.Verifier
	MinWitnesses int
}

// AuditReport summarizes a successful audit.
type AuditReport struct {
	Size        uint64
	Checkpoints int      // stored checkpoints verified
	External    int      // the auditor's own checkpoints proven consistent
	KeyPinned   bool     // the verifier key came from the auditor, not the database
	Witnessed   int      // valid cosignatures of AuditOptions.Witnesses on the latest checkpoint
	Partial     []uint64 // entries accepted with missing predecessors
	// Unverified lists the tokens whose keys the trust lacks (LED-9b).
	Unverified []KeyFinding
}

const auditChunk = 4096

// Audit is AuditWith without options: the verifier key is read from the
// database (unpinned).
func (l *Ledger) Audit(ctx context.Context) (*AuditReport, error) {
	return l.AuditWith(ctx, AuditOptions{})
}

// AuditWith checks the whole log (LED-9) and returns the first index where
// anything differs as *AuditError: every leaf hash and tree node, every
// checkpoint's signature (with the pinned key when given) and root, that
// the latest checkpoint covers the whole log and each batch has its own,
// the auditor's checkpoints against the recomputed roots, receipt times in
// order (LED-2a), every token re-verified as of its receipt time from the
// ledger's own contents (mandates and delegation parents included), every
// DAG rule, and every index column recomputed from the token (LED-2). A
// token whose key the trust lacks is reported in AuditReport.Unverified
// (LED-9b) and the audit goes on. Any other error is a failure to read the
// store.
func (l *Ledger) AuditWith(ctx context.Context, opts AuditOptions) (*AuditReport, error) {
	if l.ect == nil {
		return nil, fmt.Errorf("ledger: audit needs the trust of the agents")
	}
	// The chunk reader stops with the audit.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := l.cfg.Store
	rep := &AuditReport{}
	verifier := l.verifier
	if opts.VerifierKey != "" {
		v, err := note.NewVerifier(strings.TrimSpace(opts.VerifierKey))
		if err != nil {
			return nil, fmt.Errorf("pinned ledger key: %w", err)
		}
		verifier, rep.KeyPinned = v, true
	}
	// The auditor's own checkpoints must verify with the key: a wrong file is
	// the auditor's error, not the ledger's.
	var ext []*Checkpoint
	for i, raw := range opts.Checkpoints {
		c, err := OpenCheckpoint(raw, verifier)
		if err != nil {
			return nil, fmt.Errorf("%w: the auditor's checkpoint %d does not verify with the key: %v", ErrBadCheckpoint, i+1, err)
		}
		if err := RequireCosignatures(raw, opts.Witnesses, opts.MinWitnesses); err != nil {
			return nil, fmt.Errorf("the auditor's checkpoint %d: %w", i+1, err)
		}
		ext = append(ext, c)
	}
	size, err := st.Size(ctx)
	if err != nil {
		return nil, err
	}
	rep.Size = size
	// SPEC: LED-9a a key replaced in the database is found with the pinned key.
	if rep.KeyPinned && strings.TrimSpace(l.meta.VerifierKey) != strings.TrimSpace(opts.VerifierKey) {
		return nil, &AuditError{Index: 0, Reason: "the verifier key stored in the database is not the pinned key"}
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	roots := map[uint64][]byte{} // size -> root every checkpoint of that size signs
	stored := map[uint64]bool{}  // sizes of stored checkpoints
	var latest uint64
	for _, raw := range cps {
		c, err := OpenCheckpoint(raw, verifier)
		if err != nil {
			// Name the last entry the checkpoint claims to cover, read from its
			// (unverified) body when it can be.
			return nil, &AuditError{Index: claimedLast(raw), Reason: "a checkpoint does not verify: " + err.Error()}
		}
		if c.Size > size {
			return nil, &AuditError{Index: size, Reason: fmt.Sprintf("checkpoint of size %d beyond the %d stored entries", c.Size, size)}
		}
		// SPEC: SVC-6a the COSE signature stored with a checkpoint signs its root.
		if sig, err := st.COSESignature(ctx, c.Size); err != nil {
			return nil, err
		} else if sig != nil && verifyCOSESignature(l.meta, c.Root, sig) != nil {
			return nil, &AuditError{Index: c.Size - 1, Reason: fmt.Sprintf("the COSE signature stored with the checkpoint of size %d does not sign its root", c.Size)}
		}
		roots[c.Size], stored[c.Size] = c.Root, true
		latest = max(latest, c.Size)
	}
	rep.Checkpoints = len(cps)
	if len(opts.Witnesses) > 0 && latest > 0 {
		raw, err := st.Checkpoint(ctx, latest)
		if err != nil {
			return nil, err
		}
		cosigned, err := l.withCosignatures(ctx, raw, latest)
		if err != nil {
			return nil, err
		}
		rep.Witnessed = CountCosignatures(cosigned, opts.Witnesses)
		if err := RequireCosignatures(cosigned, opts.Witnesses, opts.MinWitnesses); err != nil {
			return nil, fmt.Errorf("the latest checkpoint (size %d): %w", latest, err)
		}
	}
	for _, c := range ext {
		if c.Size > size {
			// SPEC: LED-9a a log shorter than a checkpoint the auditor holds was rolled back.
			return nil, &AuditError{Index: size, Reason: fmt.Sprintf("the log has %d entries but the auditor holds a checkpoint of size %d: rolled back or truncated", size, c.Size)}
		}
		if r, ok := roots[c.Size]; ok && !bytes.Equal(r, c.Root) {
			return nil, &AuditError{Index: c.Size - 1, Reason: fmt.Sprintf("the auditor's checkpoint of size %d signs another root than the stored one: a forked or rewritten log", c.Size)}
		}
	}
	extRoots := map[uint64][]byte{}
	for _, x := range ext {
		extRoots[x.Size] = x.Root
	}
	rng := l.rf.NewEmptyRange(0)
	mem := dag.NewMemStore()
	// In append order a cycle can only be closed by a record of a stored
	// mandate (the checker walks those) or by a task that an earlier partial
	// entry named as a missing predecessor: only such a task needs the
	// ancestor walk of DAG-4; for every other one the log is acyclic by
	// construction.
	acyclic := dag.NewChecker(mem, dag.Config{Partial: true, AcyclicStore: true})
	walking := dag.NewChecker(mem, dag.Config{Partial: true})
	missing := map[string]bool{}
	var built []TreeNode
	visit := func(id compact.NodeID, h []byte) { built = append(built, TreeNode{ID: id, Hash: h}) }
	var cur uint64
	find := storeFinder(st, func() uint64 { return cur })
	var prevReceived int64
	chunks := l.readChunks(ctx, size)
	for from := uint64(0); from < size; from += auditChunk {
		to := min(from+auditChunk, size)
		c, ok := <-chunks
		if !ok { // the reader stopped: ctx ended
			return nil, fmt.Errorf("ledger: audit stopped: %w", context.Cause(ctx))
		}
		es, pre, err := c.es, c.pre, c.err
		if err != nil {
			return nil, err
		}
		if uint64(len(es)) != to-from {
			return nil, &AuditError{Index: from, Reason: "entries are missing"}
		}
		built = built[:0]
		for i := range es {
			e := &es[i]
			cur = e.Index
			bad := func(format string, args ...any) error {
				return &AuditError{Index: e.Index, Reason: fmt.Sprintf(format, args...)}
			}
			if e.Index != from+uint64(i) {
				return nil, bad("index out of sequence")
			}
			// SPEC: LED-9 the latest checkpoint covers the whole log.
			if e.Index >= latest {
				return nil, bad("entry is not covered by the latest checkpoint (size %d): appended behind the ledger, or the checkpoints were rolled back", latest)
			}
			// SPEC: LED-2a receipt times never go backwards.
			if e.ReceivedAt < prevReceived {
				return nil, bad("received time %d is before the previous entry's %d", e.ReceivedAt, prevReceived)
			}
			// Each batch commits its own checkpoint: where the receipt time
			// changes, a batch ended, and a checkpoint must end there.
			if e.Index > 0 && e.ReceivedAt != prevReceived && !stored[e.Index] {
				return nil, &AuditError{Index: e.Index - 1, Reason: fmt.Sprintf("no checkpoint of size %d ends the batch that entry %d closes", e.Index, e.Index-1)}
			}
			prevReceived = e.ReceivedAt
			p := &pre[i]
			if !bytes.Equal(p.tokenHash[:], e.TokenHash) {
				return nil, bad("token hash differs from the stored token")
			}
			leaf := p.leaf
			if !bytes.Equal(leaf, e.LeafHash) {
				return nil, bad("leaf hash differs from the stored token, kind and receipt time")
			}
			// Re-verify the token as of its receipt time (ECT audit
			// verification), from the entries before it alone.
			var want *Entry
			var mandateMissing []string
			d, err := p.d, p.err
			if !p.derived {
				d, err = l.derive(ctx, string(e.Token), nil, time.UnixMilli(e.ReceivedAt), find, true)
			}
			switch k := keyFinding(err); {
			case err == nil:
				want, mandateMissing = d.entry, d.missing
			case agentctx.CodeOf(err) == agentctx.CodeInternal && k == nil:
				return nil, err
			case k != nil:
				// SPEC: LED-9b a key the trust lacks is a configuration finding.
				n, perr := unverifiedNode(string(e.Token))
				if perr != nil {
					return nil, bad("token no longer parses: %v", perr)
				}
				rep.Unverified = append(rep.Unverified, KeyFinding{Index: e.Index, Issuer: k.Issuer, KeyID: k.KeyID})
				want = entryOf(n, string(e.Token))
			default:
				return nil, bad("token no longer verifies: %v", err)
			}
			n := toNode(want)
			checker := acyclic
			if missing[e.JTI] {
				checker = walking
			}
			verdict, err := checker.Check(ctx, n)
			if err != nil {
				return nil, bad("DAG rule: %v", err)
			}
			miss := append(verdict.Missing, mandateMissing...)
			want.Partial = len(miss) > 0
			// SPEC: LED-2 every index column is what the token gives.
			if col := differs(e, want); col != "" {
				return nil, bad("stored column %s differs from what the token gives", col)
			}
			if want.Partial {
				rep.Partial = append(rep.Partial, e.Index)
				for _, m := range miss {
					missing[strings.ToLower(m)] = true
				}
			}
			n.Partial = want.Partial
			mem.Add(n)
			if err := rng.Append(leaf, visit); err != nil {
				return nil, err
			}
			for _, rs := range []map[uint64][]byte{roots, extRoots} {
				if want, ok := rs[e.Index+1]; ok {
					got, err := rng.GetRootHash(nil)
					if err != nil {
						return nil, err
					}
					if !bytes.Equal(got, want) {
						return nil, bad("the checkpoint of size %d signs another root", e.Index+1)
					}
					delete(rs, e.Index+1)
				}
			}
		}
		// Every stored node of this chunk equals the recomputed one (read
		// level by level, as runs).
		slices.SortFunc(built, func(a, b TreeNode) int {
			return cmp.Or(cmp.Compare(a.ID.Level, b.ID.Level), cmp.Compare(a.ID.Index, b.ID.Index))
		})
		ids := make([]compact.NodeID, len(built))
		for i, b := range built {
			ids[i] = b.ID
		}
		got, err := st.Hashes(ctx, ids)
		if errors.Is(err, ErrNotFound) {
			return nil, &AuditError{Index: from, Reason: "tree nodes are missing: " + err.Error()}
		} else if err != nil {
			return nil, err // reading failed: no verdict
		}
		for i, b := range built {
			if !bytes.Equal(got[i], b.Hash) {
				return nil, &AuditError{Index: b.ID.Index << b.ID.Level, Reason: fmt.Sprintf("stored tree node (%d, %d) differs", b.ID.Level, b.ID.Index)}
			}
		}
	}
	if len(roots) > 0 || len(extRoots) > 0 {
		return nil, &AuditError{Index: size, Reason: "a checkpoint names a size no entry ends"}
	}
	rep.External = len(ext)
	return rep, nil
}

// claimedLast reads the size a checkpoint claims, unverified, and returns
// its last index (0 when it cannot be read).
func claimedLast(raw []byte) uint64 {
	if lines := strings.SplitN(string(raw), "\n", 3); len(lines) == 3 {
		if n, err := strconv.ParseUint(lines[1], 10, 64); err == nil && n > 0 {
			return n - 1
		}
	}
	return 0
}

// chunk is one read of the audit: entries [from, from+auditChunk) and
// what precompute gives of them.
type chunk struct {
	es  []Entry
	pre []precomputed
	err error
}

// readChunks reads the log's entries in chunks of auditChunk and
// precomputes them, one chunk ahead of the audit's ordered pass, which
// takes them in order: what depends on an entry's bytes alone (its hashes,
// an ECT's verification as of its receipt time) is computed on every core
// while the ordered pass decides the chunk before, so the first bad index
// is still the first. The reader stops at the first error (sent as the
// last chunk) or when ctx ends.
func (l *Ledger) readChunks(ctx context.Context, size uint64) <-chan chunk {
	ch := make(chan chunk, 1)
	go func() {
		defer close(ch)
		for from := uint64(0); from < size; from += auditChunk {
			es, err := l.cfg.Store.Entries(ctx, from, min(from+auditChunk, size))
			var pre []precomputed
			if err == nil {
				pre = l.precompute(ctx, es)
			}
			select {
			case ch <- chunk{es, pre, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// precomputed is what the audit computes of an entry from its bytes alone.
type precomputed struct {
	tokenHash [32]byte
	leaf      []byte
	// derived says d and err are the ECT's verification as of its receipt
	// time (an ACT's depends on the entries before it: derived in order).
	derived bool
	d       *derived
	err     error
}

// precompute computes, on every core, the hashes of es and the
// verification of their ECTs; for ACTs it checks the signatures only, for
// their results to be cached (the ledger's verifiers keep more than a
// chunk); it decides nothing: the audit's ordered pass does.
func (l *Ledger) precompute(ctx context.Context, es []Entry) []precomputed {
	out := make([]precomputed, len(es))
	parallel(len(es), func(i int) error {
		e, p := &es[i], &out[i]
		p.tokenHash = sha256.Sum256(e.Token)
		p.leaf = LeafHash(e.Kind, e.ReceivedAt, e.Token)
		at := time.UnixMilli(e.ReceivedAt)
		if kind, err := kindOf(string(e.Token)); err == nil && kind == KindECT {
			p.derived = true
			p.d, p.err = l.deriveECT(ctx, string(e.Token), at)
		} else if err == nil {
			l.act.VerifyAudit(ctx, string(e.Token), nil, at)
		}
		return nil
	})
	return out
}
