package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	tlogproof "github.com/transparency-dev/formats/proof"
)

// MediaTypeTLogProof is the media type of a C2SP tlog-proof@v1 receipt.
const MediaTypeTLogProof = "text/x.tlog.proof"

// tlogProofHeader starts every tlog-proof@v1 text.
const tlogProofHeader = "c2sp.org/tlog-proof@v1\n"

// IsTLogProof reports whether b looks like a C2SP tlog-proof.
func IsTLogProof(b []byte) bool { return bytes.HasPrefix(b, []byte(tlogProofHeader)) }

// leafExtra is the tlog-proof "extra" data of an entry: its LED-5 leaf
// data up to the token (LeafPrefix, kind, receipt time), so that the leaf
// is SHA-256(0x00 || extra || token) and a relying party holding the token
// needs nothing else.
func leafExtra(kind string, receivedAt int64) []byte {
	return LeafData(kind, receivedAt, nil)
}

// TLogProof encodes r as C2SP tlog-proof@v1 (SVC-6a): the entry's index,
// the inclusion proof, the checkpoint, and as extra data the leaf data
// before the token.
func TLogProof(r *Receipt) ([]byte, error) {
	p := tlogproof.TLogProof{Index: r.Index, Checkpoint: []byte(r.Checkpoint), ExtraData: leafExtra(r.Kind, r.ReceivedAt)}
	for _, h := range r.InclusionProof {
		if len(h) != 32 {
			return nil, errors.New("ledger: an inclusion proof hash is not 32 bytes")
		}
		p.Hashes = append(p.Hashes, [32]byte(h))
	}
	return p.Marshal(), nil
}

// ParseTLogProof decodes a tlog-proof of this ledger's form into a Receipt
// (its leaf hash computed from token) that VerifyReceipt checks.
func ParseTLogProof(b, token []byte) (*Receipt, error) {
	var p tlogproof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("not a tlog-proof: %w", err)
	}
	rest, ok := bytes.CutPrefix(p.ExtraData, []byte(LeafPrefix))
	lines := strings.Split(string(rest), "\n")
	if !ok || len(lines) != 3 || lines[2] != "" || lines[0] == "" {
		return nil, errors.New("tlog-proof: the extra data is not this ledger's leaf data (prefix, kind, receipt time)")
	}
	at, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return nil, errors.New("tlog-proof: the receipt time in the extra data is not an integer")
	}
	lines2 := strings.SplitN(string(p.Checkpoint), "\n", 3)
	if len(lines2) < 3 {
		return nil, errors.New("tlog-proof: the checkpoint is not origin, size, root")
	}
	size, err := strconv.ParseUint(lines2[1], 10, 64)
	if err != nil {
		return nil, errors.New("tlog-proof: the checkpoint size is not an integer")
	}
	r := &Receipt{Index: p.Index, TreeSize: size, Kind: lines[0], ReceivedAt: at, Checkpoint: string(p.Checkpoint),
		LeafHash: LeafHash(lines[0], at, bytes.TrimSpace(token)), InclusionProof: [][]byte{}}
	for _, h := range p.Hashes {
		r.InclusionProof = append(r.InclusionProof, bytes.Clone(h[:]))
	}
	return r, nil
}
