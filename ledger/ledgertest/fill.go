package ledgertest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ledger"
)

// FillSynthetic appends size synthetic entries (8-byte tokens, no
// verification) to an empty store in commits of chunk entries, with their
// tree nodes and a signed checkpoint per commit: a large log for proof and
// read benchmarks. Never use it on a real ledger.
func FillSynthetic(ctx context.Context, s ledger.Store, signer note.Signer, size, chunk uint64) error {
	meta, err := s.Meta(ctx)
	if err != nil {
		return err
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	for from := uint64(0); from < size; from += chunk {
		to := min(from+chunk, size)
		var nodes []ledger.TreeNode
		visit := func(id compact.NodeID, h []byte) { nodes = append(nodes, ledger.TreeNode{ID: id, Hash: h}) }
		entries := make([]ledger.Entry, 0, to-from)
		for i := from; i < to; i++ {
			tok := binary.BigEndian.AppendUint64(nil, i)
			th := sha256.Sum256(tok)
			e := ledger.Entry{Index: i, Kind: ledger.KindECT, JTI: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Pred: []string{},
				Time: time.Unix(0, 0), ReceivedAt: 0, Token: tok, TokenHash: th[:], LeafHash: ledger.LeafHash(ledger.KindECT, 0, tok)}
			if err := rng.Append(e.LeafHash, visit); err != nil {
				return err
			}
			entries = append(entries, e)
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		cp, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", meta.ID, to, base64.StdEncoding.EncodeToString(root))}, signer)
		if err != nil {
			return err
		}
		if err := s.Commit(ctx, entries, nodes, cp, nil); err != nil { // no COSE signature: a filled ledger signs one on demand
			return err
		}
	}
	return nil
}
