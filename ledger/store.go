// Package ledger is the tamper-evident audit ledger of spec/ledger.md: an
// append-only log of verified ECTs and ACT tokens, kept as an RFC 9162
// Merkle tree with C2SP signed checkpoints, so that anyone holding the
// ledger's public key can check a receipt, an inclusion proof or a
// consistency proof offline. It gives ECTs level L3.
//
// Entry i (0-based, in append order) has the leaf data
//
//	"agentctx-ledger-v1\n" + kind + "\n" + decimal(received_unix_millis) + "\n" + token
//
// and the leaf hash SHA-256(0x00 || leaf data); interior nodes are
// SHA-256(0x01 || left || right) (LED-5). A checkpoint is the C2SP
// tlog-checkpoint body "<origin>\n<size>\n<base64 root>\n" signed as a C2SP
// signed note with the ledger's Ed25519 key (LED-6).
//
// A Ledger runs on a Store: ledger/sqlite (the embedded default) or
// ledger/postgres. Every Store passes the suite in ledger/ledgertest.
package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// Kinds of entries (LED-1).
const (
	KindECT        = "ect"
	KindACTMandate = "act-mandate"
	KindACTRecord  = "act-record"
)

// Entry is one stored token with its index columns (LED-2).
type Entry struct {
	Index      uint64
	Kind       string
	JTI        string // lower case
	WID        string // lower case, "" when absent
	Issuer     string
	Subject    string
	ExecAct    string
	Pred       []string
	Time       time.Time // exec_ts for an ACT record, iat otherwise
	ReceivedAt int64     // unix milliseconds
	Partial    bool
	Status     string
	Policy     string   // ect_ext.pol_decision
	Caps       []string // ACT cap actions
	Token      []byte   // the exact bytes received
	TokenHash  []byte   // SHA-256 of Token
	LeafHash   []byte
}

// EntryJSON is an entry as the CLI (ledger get, list) and the service
// (GET /v1/entries, /v1/tasks) show it: the index columns, the exact token,
// the received time and the leaf hash.
type EntryJSON struct {
	Index      uint64   `json:"index"`
	Kind       string   `json:"kind"`
	JTI        string   `json:"jti"`
	WID        string   `json:"wid,omitempty"`
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub,omitempty"`
	ExecAct    string   `json:"exec_act,omitempty"`
	Pred       []string `json:"pred"`
	Time       int64    `json:"time"`        // unix seconds
	ReceivedAt int64    `json:"received_at"` // unix milliseconds
	Partial    bool     `json:"partial,omitempty"`
	Status     string   `json:"status,omitempty"`
	Policy     string   `json:"pol_decision,omitempty"`
	Caps       []string `json:"caps,omitempty"`
	LeafHash   []byte   `json:"leaf_hash"`
	Token      string   `json:"token"`
}

// JSON returns the entry's JSON form.
func (e *Entry) JSON() EntryJSON {
	pred := e.Pred
	if pred == nil {
		pred = []string{}
	}
	return EntryJSON{Index: e.Index, Kind: e.Kind, JTI: e.JTI, WID: e.WID, Issuer: e.Issuer, Subject: e.Subject,
		ExecAct: e.ExecAct, Pred: pred, Time: e.Time.Unix(), ReceivedAt: e.ReceivedAt, Partial: e.Partial,
		Status: e.Status, Policy: e.Policy, Caps: e.Caps, LeafHash: e.LeafHash, Token: string(e.Token)}
}

// TreeNode is a stored Merkle tree node: a perfect subtree's root.
type TreeNode struct {
	ID   compact.NodeID
	Hash []byte
}

// Meta identifies a ledger.
type Meta struct {
	ID          string // the ledger's identity and checkpoint origin
	VerifierKey string // the note verifier key "name+hash+base64"
}

// ErrNotFound is returned by Store look-ups that find nothing.
var ErrNotFound = errors.New("ledger: not found")

// ErrNotInitialized is returned by Store.Meta before Create.
var ErrNotInitialized = errors.New("ledger: not initialized (run agentctx ledger init)")

// Store is the durable, append-only storage of a ledger. Implementations
// refuse updates and deletes in the database itself (LED-3).
type Store interface {
	// Create makes the schema and records m; it fails if a ledger exists.
	Create(ctx context.Context, m Meta) error
	// Meta returns the ledger's identity (ErrNotInitialized before Create).
	Meta(ctx context.Context) (Meta, error)
	// Commit appends entries (their Index fields continue the log), the tree
	// nodes they complete and the checkpoint of the new size, in one durable
	// transaction (LED-10). It fails without writing anything when the log
	// no longer has size entries[0].Index (a concurrent writer), with
	// ErrConflict. cose is the ledger's COSE signature over the new root
	// (SVC-6a), stored beside the checkpoint (a ledger created before COSE
	// receipts has no place for it and drops it: Ledger signs on demand).
	Commit(ctx context.Context, entries []Entry, nodes []TreeNode, checkpoint, cose []byte) error
	// Size returns the number of entries.
	Size(ctx context.Context) (uint64, error)
	// Entries returns entries [from, to) in index order.
	Entries(ctx context.Context, from, to uint64) ([]Entry, error)
	// ByJTI returns every entry whose jti is jti (lower case), any workflow.
	ByJTI(ctx context.Context, jti string) ([]Entry, error)
	// ByJTIs is ByJTI for many jtis at once (lower case, at most 500):
	// every entry whose jti is one of them, in index order.
	ByJTIs(ctx context.Context, jtis []string) ([]Entry, error)
	// ByLeafHash returns the entries whose RFC 9162 leaf hash is hash, in
	// index order (at most one in a ledger: the leaf data holds the receipt
	// time and the token, and an identical token is not appended twice).
	ByLeafHash(ctx context.Context, hash []byte) ([]Entry, error)
	// Workflow returns the entries of workflow wid (lower case) in index order.
	Workflow(ctx context.Context, wid string) ([]Entry, error)
	// Hashes returns the hashes of the given tree nodes, in order.
	Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
	// Checkpoint returns the signed checkpoint of size, or the latest when
	// size is 0 (nil before the first append).
	Checkpoint(ctx context.Context, size uint64) ([]byte, error)
	// COSESignature returns the COSE signature stored with the checkpoint
	// of size, nil when there is none.
	COSESignature(ctx context.Context, size uint64) ([]byte, error)
	// AddCosignatures stores witness cosignature lines (C2SP signed-note
	// signature lines, "— name base64\n") of the checkpoint of size; a
	// line already stored is skipped. ErrNoCosignatures for a ledger made
	// before witnesses.
	AddCosignatures(ctx context.Context, size uint64, lines []string) error
	// Cosignatures returns the stored cosignature lines of the checkpoint
	// of size, in the order stored (nil when none).
	Cosignatures(ctx context.Context, size uint64) ([]string, error)
	// Checkpoints returns every stored checkpoint in size order.
	Checkpoints(ctx context.Context) ([][]byte, error)
	// Close releases the store.
	Close() error
}

// ErrConflict is returned by Commit when another writer appended first.
var ErrConflict = errors.New("ledger: the log grew concurrently; retry")

// ErrNoCosignatures is returned by AddCosignatures on a ledger created
// before witness cosignatures were stored (it has no table for them).
var ErrNoCosignatures = errors.New("ledger: this ledger predates witness cosignatures and cannot store them; create a new ledger to witness it")

// ErrBadCheckpoint is returned when a checkpoint the caller supplies (an
// auditor's or a witness's) does not verify with the ledger's key.
var ErrBadCheckpoint = errors.New("ledger: checkpoint does not verify")
