package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"

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

// AuditReport summarizes a successful audit.
type AuditReport struct {
	Size        uint64
	Checkpoints int
	Partial     []uint64 // entries accepted with missing predecessors
}

const auditChunk = 4096

// Audit recomputes every leaf hash and the tree, checks every stored node,
// every checkpoint's signature and root (which makes consecutive checkpoints
// consistent), re-verifies every token as of its receipt time and every DAG
// rule, and returns the first index where anything differs as *AuditError
// (LED-9).
func (l *Ledger) Audit(ctx context.Context) (*AuditReport, error) {
	if l.ect == nil {
		return nil, fmt.Errorf("ledger: audit needs the trust of the agents")
	}
	st := l.cfg.Store
	size, err := st.Size(ctx)
	if err != nil {
		return nil, err
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	roots := map[uint64][]byte{}
	for _, raw := range cps {
		c, err := l.OpenCheckpoint(raw)
		if err != nil {
			// Name the last entry the checkpoint claims to cover, read from its
			// (unverified) body when it can be.
			idx := uint64(0)
			if lines := strings.SplitN(string(raw), "\n", 3); len(lines) == 3 {
				if n, perr := strconv.ParseUint(lines[1], 10, 64); perr == nil && n > 0 {
					idx = n - 1
				}
			}
			return nil, &AuditError{Index: idx, Reason: "a checkpoint does not verify: " + err.Error()}
		}
		if c.Size > size {
			return nil, &AuditError{Index: size, Reason: fmt.Sprintf("checkpoint of size %d beyond the %d stored entries", c.Size, size)}
		}
		roots[c.Size] = c.Root
	}
	rep := &AuditReport{Size: size, Checkpoints: len(cps)}
	rng := l.rf.NewEmptyRange(0)
	mem := dag.NewMemStore()
	// In append order a cycle can only be closed by a task that an earlier
	// partial entry named as a missing predecessor: only such a task needs
	// the ancestor walk of DAG-4; for every other one the log is acyclic by
	// construction.
	acyclic := dag.NewChecker(mem, dag.Config{Partial: true, AcyclicStore: true})
	walking := dag.NewChecker(mem, dag.Config{Partial: true})
	missing := map[string]bool{}
	var built []TreeNode
	visit := func(id compact.NodeID, h []byte) { built = append(built, TreeNode{ID: id, Hash: h}) }
	lookup := func(jti string) []Entry {
		es, _ := st.ByJTI(ctx, jti)
		return es
	}
	for from := uint64(0); from < size; from += auditChunk {
		to := min(from+auditChunk, size)
		es, err := st.Entries(ctx, from, to)
		if err != nil {
			return nil, err
		}
		if uint64(len(es)) != to-from {
			return nil, &AuditError{Index: from, Reason: "entries are missing"}
		}
		built = built[:0]
		for i := range es {
			e := &es[i]
			bad := func(format string, args ...any) error {
				return &AuditError{Index: e.Index, Reason: fmt.Sprintf(format, args...)}
			}
			if e.Index != from+uint64(i) {
				return nil, bad("index out of sequence")
			}
			th := sha256.Sum256(e.Token)
			if !bytes.Equal(th[:], e.TokenHash) {
				return nil, bad("token hash differs from the stored token")
			}
			leaf := LeafHash(e.Kind, e.ReceivedAt, e.Token)
			if !bytes.Equal(leaf, e.LeafHash) {
				return nil, bad("leaf hash differs from the stored token, kind and receipt time")
			}
			// Re-verify the token as of its receipt time (ECT audit verification).
			v, err := l.verify(ctx, Input{Token: string(e.Token)}, time.UnixMilli(e.ReceivedAt), lookup)
			if err != nil {
				return nil, bad("token no longer verifies: %v", err)
			}
			if v.Kind != e.Kind || v.JTI != e.JTI || v.WID != e.WID || v.Issuer != e.Issuer || v.ExecAct != e.ExecAct ||
				!slices.Equal(v.Pred, e.Pred) || !v.Time.Equal(e.Time) || v.Status != e.Status {
				return nil, bad("index columns differ from the token's claims")
			}
			n := toNode(v)
			checker := acyclic
			if missing[e.JTI] {
				checker = walking
			}
			verdict, err := checker.Check(ctx, n)
			if err != nil {
				return nil, bad("DAG rule: %v", err)
			}
			if len(verdict.Missing) > 0 {
				if !e.Partial {
					return nil, bad("predecessors %v are missing and the entry is not marked partial", verdict.Missing)
				}
				rep.Partial = append(rep.Partial, e.Index)
				for _, m := range verdict.Missing {
					missing[strings.ToLower(m)] = true
				}
			}
			mem.Add(n)
			if err := rng.Append(leaf, visit); err != nil {
				return nil, err
			}
			if want, ok := roots[e.Index+1]; ok {
				got, err := rng.GetRootHash(nil)
				if err != nil {
					return nil, err
				}
				if !bytes.Equal(got, want) {
					return nil, bad("the checkpoint of size %d signs another root", e.Index+1)
				}
				delete(roots, e.Index+1)
			}
		}
		// Every stored node of this chunk equals the recomputed one.
		ids := make([]compact.NodeID, len(built))
		for i, b := range built {
			ids[i] = b.ID
		}
		stored, err := st.Hashes(ctx, ids)
		if err != nil {
			return nil, &AuditError{Index: from, Reason: "tree nodes are missing: " + err.Error()}
		}
		for i, b := range built {
			if !bytes.Equal(stored[i], b.Hash) {
				return nil, &AuditError{Index: b.ID.Index << b.ID.Level, Reason: fmt.Sprintf("stored tree node (%d, %d) differs", b.ID.Level, b.ID.Index)}
			}
		}
	}
	if len(roots) > 0 {
		return nil, &AuditError{Index: size, Reason: "a checkpoint names a size no entry ends"}
	}
	return rep, nil
}
