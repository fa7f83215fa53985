package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/note"
)

// RFC 9942 COSE Receipts (SVC-6a): the labels and values this ledger uses.
const (
	// MediaTypeCOSEReceipt is the media type of a COSE receipt.
	MediaTypeCOSEReceipt = "application/scitt-receipt+cose"

	labelVDS         int64 = 395 // verifiable data structure, protected
	labelVDP         int64 = 396 // verifiable data proofs, unprotected
	vdsRFC9162SHA256 int64 = 1
	proofInclusion   int64 = -1
	proofConsistency int64 = -2
	cwtIssuer        int64 = 1

	// LabelKind is the private unprotected header label of a receipt that
	// carries the entry's kind (tstr: "ect", "act-mandate", "act-record"),
	// part of the LED-5 leaf data.
	LabelKind int64 = -65537
	// LabelReceivedAt carries the entry's receipt time in Unix
	// milliseconds (int), the other part of the leaf data that the token
	// alone does not give. Both are bound by the leaf hash: an altered value
	// gives another root and the signature fails.
	LabelReceivedAt int64 = -65538
	// LabelCheckpoint carries, when witnesses cosigned it, the C2SP
	// checkpoint at the receipt's tree size with its cosignatures (tstr),
	// so that a relying party can require K witnesses offline.
	LabelCheckpoint int64 = -65539
)

// deterministic encodes CBOR as RFC 8949 §4.2.1 Core Deterministic
// Encoding, as the COSE key thumbprint (RFC 9679) needs.
var deterministic, _ = cbor.CoreDetEncOptions().EncMode()

// LedgerKey is the ledger's Ed25519 public key as a relying party loads it,
// from the note verifier key (`name+hash+base64(0x01 || key)`).
type LedgerKey struct {
	// Name is the ledger's origin (its id).
	Name string
	// Public is the Ed25519 public key.
	Public ed25519.PublicKey
}

// ParseVerifierKey returns the key of a ledger's note verifier key.
func ParseVerifierKey(vkey string) (*LedgerKey, error) {
	vkey = strings.TrimSpace(vkey)
	if _, err := note.NewVerifier(vkey); err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	name, rest, _ := strings.Cut(vkey, "+")
	_, b64, _ := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, errors.New("ledger key: not an Ed25519 note verifier key")
	}
	return &LedgerKey{Name: name, Public: ed25519.PublicKey(raw[1:])}, nil
}

// KeyID is the key's COSE `kid`: its RFC 9679 COSE Key Thumbprint, the
// SHA-256 of the deterministic CBOR of {1: 1 (OKP), -1: 6 (Ed25519), -2: x}.
func (k *LedgerKey) KeyID() []byte {
	b, err := deterministic.Marshal(map[int]any{1: 1, -1: 6, -2: []byte(k.Public)})
	if err != nil {
		panic(err) // a fixed map of ints and bytes always encodes
	}
	h := sha256.Sum256(b)
	return h[:]
}

// COSEKey returns the key as a COSE_Key (RFC 9052 §7, RFC 9053 §7.2):
// {1: 1, 2: kid, 3: -8 (EdDSA), -1: 6, -2: x}, deterministically encoded.
func (k *LedgerKey) COSEKey() []byte {
	b, err := deterministic.Marshal(map[int]any{1: 1, 2: k.KeyID(), 3: -8, -1: 6, -2: []byte(k.Public)})
	if err != nil {
		panic(err)
	}
	return b
}

// JWK returns the key as a JSON Web Key (RFC 8037) whose kid is the
// base64url of KeyID: the same identifier as in COSE.
func (k *LedgerKey) JWK() map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(k.Public), "kid": base64.RawURLEncoding.EncodeToString(k.KeyID())}
}

// coseProtected is the protected header of every receipt of ledger id:
// {1: -8, 4: kid, 15: {1: id}, 395: 1}.
func coseProtected(id string, kid []byte) cose.ProtectedHeader {
	return cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA,
		cose.HeaderLabelKeyID:     kid,
		cose.HeaderLabelCWTClaims: cose.CWTClaims{cwtIssuer: id},
		labelVDS:                  vdsRFC9162SHA256,
	}
}

// noteCOSESigner signs COSE Sig_structures with the ledger's note signer
// (Ed25519 over the message, as RFC 9053 EdDSA asks). A Sig_structure
// starts with the byte 0x84, which no note text (valid UTF-8) can start
// with: the two uses of the key cannot be confused.
type noteCOSESigner struct{ s note.Signer }

func (n noteCOSESigner) Algorithm() cose.Algorithm { return cose.AlgorithmEdDSA }
func (n noteCOSESigner) Sign(_ io.Reader, content []byte) ([]byte, error) {
	return n.s.Sign(content)
}

// signCOSE returns the ledger's COSE signature over root: the signature of
// every receipt, inclusion or consistency, at the size whose root it is.
func (l *Ledger) signCOSE(root []byte) ([]byte, error) {
	k, err := ParseVerifierKey(l.meta.VerifierKey)
	if err != nil {
		return nil, err
	}
	m := &cose.Sign1Message{Headers: cose.Headers{Protected: coseProtected(l.meta.ID, k.KeyID())}, Payload: root}
	if err := m.Sign(nil, nil, noteCOSESigner{l.cfg.Signer}); err != nil {
		return nil, fmt.Errorf("ledger: COSE signature: %w", err)
	}
	return m.Signature, nil
}

// ErrNoCOSESignature is returned for a COSE receipt at a size whose
// checkpoint has no stored COSE signature (a ledger created before COSE
// receipts) when the ledger is opened without its signing key.
var ErrNoCOSESignature = errors.New("ledger: no COSE signature is stored for this checkpoint (the ledger predates COSE receipts); open it with its signing key to sign one")

// coseSignature returns the stored COSE signature of the checkpoint c, or
// one made now with the signing key (the same bytes: Ed25519 is
// deterministic) when none is stored.
func (l *Ledger) coseSignature(ctx context.Context, c *Checkpoint) ([]byte, error) {
	sig, err := l.cfg.Store.COSESignature(ctx, c.Size)
	if err != nil || sig != nil {
		return sig, err
	}
	if l.cfg.Signer == nil {
		return nil, ErrNoCOSESignature
	}
	return l.signCOSE(c.Root)
}

// COSEReceipt returns the RFC 9942 receipt of r (a receipt of this
// ledger): a tagged COSE_Sign1 with the inclusion proof in the unprotected
// header, the entry's kind and receipt time under LabelKind and
// LabelReceivedAt, and a detached payload (the root at r.TreeSize).
func (l *Ledger) COSEReceipt(ctx context.Context, r *Receipt) ([]byte, error) {
	c, err := l.OpenCheckpoint(ledgerSigned([]byte(r.Checkpoint)))
	if err != nil {
		return nil, err
	}
	sig, err := l.coseSignature(ctx, c)
	if err != nil {
		return nil, err
	}
	path := r.InclusionProof
	if path == nil {
		path = [][]byte{}
	}
	pr, err := deterministic.Marshal([]any{r.TreeSize, r.Index, path})
	if err != nil {
		return nil, err
	}
	un := cose.UnprotectedHeader{
		labelVDP:        map[int64]any{proofInclusion: [][]byte{pr}},
		LabelKind:       r.Kind,
		LabelReceivedAt: r.ReceivedAt,
	}
	if cp := []byte(r.Checkpoint); !bytes.Equal(cp, ledgerSigned(cp)) {
		// Witnessed: the checkpoint with its cosignatures travels along.
		un[LabelCheckpoint] = r.Checkpoint
	}
	return l.coseMessage(sig, un)
}

// COSEConsistency returns the RFC 9942 consistency receipt from published
// size s1 to published size s2: the proof under -2 and the signature of
// the checkpoint at s2.
func (l *Ledger) COSEConsistency(ctx context.Context, s1, s2 uint64) ([]byte, error) {
	if s1 == 0 || s1 > s2 {
		return nil, fmt.Errorf("a consistency receipt goes from a size over 0 to one at least as large, not %d to %d", s1, s2)
	}
	cp, err := l.cfg.Store.Checkpoint(ctx, s2)
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, fmt.Errorf("%w: no checkpoint of size %d was published", ErrNotFound, s2)
	}
	c, err := l.OpenCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	path, err := l.Consistency(ctx, s1, s2)
	if err != nil {
		return nil, err
	}
	if path == nil {
		path = [][]byte{}
	}
	sig, err := l.coseSignature(ctx, c)
	if err != nil {
		return nil, err
	}
	pr, err := deterministic.Marshal([]any{s1, s2, path})
	if err != nil {
		return nil, err
	}
	return l.coseMessage(sig, cose.UnprotectedHeader{labelVDP: map[int64]any{proofConsistency: [][]byte{pr}}})
}

func (l *Ledger) coseMessage(sig []byte, unprotected cose.UnprotectedHeader) ([]byte, error) {
	k, err := ParseVerifierKey(l.meta.VerifierKey)
	if err != nil {
		return nil, err
	}
	m := &cose.Sign1Message{Headers: cose.Headers{Protected: coseProtected(l.meta.ID, k.KeyID()), Unprotected: unprotected}, Signature: sig}
	return m.MarshalCBOR()
}

// COSEReceiptInfo is what a verified COSE inclusion receipt says.
type COSEReceiptInfo struct {
	Index, TreeSize uint64
	Kind            string
	ReceivedAt      int64
	Root            []byte
	// Checkpoint is the cosigned checkpoint the receipt carries (nil when
	// none), checked with the ledger's key against the receipt's size and
	// root: give it to RequireCosignatures.
	Checkpoint []byte
}

// IsCOSE reports whether b looks like a COSE receipt (a tagged COSE_Sign1).
func IsCOSE(b []byte) bool { return len(b) > 2 && b[0] == 0xd2 && b[1] == 0x84 }

// COSEReceipt is a decoded RFC 9942 receipt of the RFC9162_SHA256
// verifiable data structure, any signer's, not yet verified.
type COSEReceipt struct {
	// Alg is the protected alg (-8 EdDSA for this ledger's receipts).
	Alg int64
	// KeyID is the protected kid; Issuer the CWT claims' iss (both may be
	// empty in another log's receipts).
	KeyID  []byte
	Issuer string
	// Inclusion holds the decoded inclusion proofs (-1): [tree_size,
	// leaf_index, path]; Consistency the consistency proofs (-2):
	// [tree_size_1, tree_size_2, path].
	Inclusion   []MerkleProof
	Consistency []MerkleProof
	// Kind and ReceivedAt are this ledger's private labels (LabelKind,
	// LabelReceivedAt); HasEntry says both were present.
	Kind       string
	ReceivedAt int64
	HasEntry   bool

	msg *cose.Sign1Message
}

// MerkleProof is one RFC9162_SHA256 proof of a COSE receipt: for an
// inclusion proof A is the tree size and B the leaf index; for a
// consistency proof A and B are the older and newer sizes.
type MerkleProof struct {
	A, B uint64
	Path [][]byte
}

// DecodeCOSEReceipt decodes a tagged COSE_Sign1 receipt of the
// RFC9162_SHA256 structure (vds 1) with its proofs, without verifying it.
func DecodeCOSEReceipt(b []byte) (*COSEReceipt, error) {
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("not a COSE receipt (a tagged COSE_Sign1): %w", err)
	}
	p := m.Headers.Protected
	alg, ok := intOf(p[cose.HeaderLabelAlgorithm])
	if !ok {
		return nil, errors.New("COSE receipt: the protected header has no integer alg (1)")
	}
	if v, ok := intOf(p[labelVDS]); !ok || v != vdsRFC9162SHA256 {
		return nil, errors.New("COSE receipt: the protected header's vds (395) is not RFC9162_SHA256 (1)")
	}
	r := &COSEReceipt{Alg: alg, Issuer: cwtIss(p[cose.HeaderLabelCWTClaims]), msg: &m}
	r.KeyID, _ = p[cose.HeaderLabelKeyID].([]byte)
	vdp, ok := m.Headers.Unprotected[labelVDP].(map[any]any)
	if !ok {
		return nil, errors.New("COSE receipt: no verifiable data proofs (396) in the unprotected header")
	}
	for key, v := range vdp {
		label, _ := intOf(key)
		if label != proofInclusion && label != proofConsistency {
			continue
		}
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("COSE receipt: the proofs under %d are not a non-empty array", label)
		}
		for _, item := range list {
			raw, ok := item.([]byte)
			var pr []any
			if !ok || cbor.Unmarshal(raw, &pr) != nil || len(pr) != 3 {
				return nil, fmt.Errorf("COSE receipt: a proof under %d is not a bstr holding [size, index or size, [path]]", label)
			}
			a, ok1 := uintOf(pr[0])
			b, ok2 := uintOf(pr[1])
			path, ok3 := hashes(pr[2])
			if !ok1 || !ok2 || !ok3 {
				return nil, fmt.Errorf("COSE receipt: a proof under %d is not [uint, uint, [32-byte hashes]]", label)
			}
			if label == proofInclusion {
				r.Inclusion = append(r.Inclusion, MerkleProof{A: a, B: b, Path: path})
			} else {
				r.Consistency = append(r.Consistency, MerkleProof{A: a, B: b, Path: path})
			}
		}
	}
	if len(r.Inclusion)+len(r.Consistency) == 0 {
		return nil, errors.New("COSE receipt: no inclusion (-1) or consistency (-2) proof")
	}
	kind, _ := m.Headers.Unprotected[LabelKind].(string)
	at, ok := intOf(m.Headers.Unprotected[LabelReceivedAt])
	r.Kind, r.ReceivedAt, r.HasEntry = kind, at, kind != "" && ok
	return r, nil
}

// openCOSE decodes a receipt and checks that it is one of the ledger whose
// key is k: EdDSA, its kid, its id as issuer.
func openCOSE(k *LedgerKey, b []byte) (*COSEReceipt, error) {
	r, err := DecodeCOSEReceipt(b)
	if err != nil {
		return nil, err
	}
	if r.Alg != int64(cose.AlgorithmEdDSA) {
		return nil, fmt.Errorf("COSE receipt: alg %d is not EdDSA (-8), this ledger's", r.Alg)
	}
	if !bytes.Equal(r.KeyID, k.KeyID()) {
		return nil, errors.New("COSE receipt: its kid is not this ledger key's thumbprint")
	}
	if r.Issuer != k.Name {
		return nil, fmt.Errorf("COSE receipt: issued by %q, not the ledger %q", r.Issuer, k.Name)
	}
	return r, nil
}

// VerifyCOSEReceipt checks offline, with the ledger's verifier key alone,
// that token is in the log: the leaf hash from the token and the kind and
// receipt time the receipt carries, the root from the inclusion proof, and
// the COSE signature over that root.
func VerifyCOSEReceipt(vkey string, receipt, token []byte) (*COSEReceiptInfo, error) {
	k, err := ParseVerifierKey(vkey)
	if err != nil {
		return nil, err
	}
	r, err := openCOSE(k, receipt)
	if err != nil {
		return nil, err
	}
	if len(r.Inclusion) != 1 || len(r.Consistency) != 0 {
		return nil, errors.New("COSE receipt: not an inclusion receipt (exactly one proof under -1)")
	}
	if !r.HasEntry {
		return nil, fmt.Errorf("COSE receipt: no entry kind (%d) or receipt time (%d)", LabelKind, LabelReceivedAt)
	}
	p := r.Inclusion[0]
	leaf := LeafHash(r.Kind, r.ReceivedAt, bytes.TrimSpace(token))
	root, err := proof.RootFromInclusionProof(hasher, p.B, p.A, leaf, p.Path)
	if err != nil {
		return nil, fmt.Errorf("COSE receipt: inclusion proof: %w", err)
	}
	if err := verifyCOSE(k, r.msg, root); err != nil {
		return nil, err
	}
	info := &COSEReceiptInfo{Index: p.B, TreeSize: p.A, Kind: r.Kind, ReceivedAt: r.ReceivedAt, Root: root}
	if cp, ok := r.msg.Headers.Unprotected[LabelCheckpoint].(string); ok {
		c, err := VerifyCheckpoint(vkey, []byte(cp))
		if err != nil || c.Size != p.A || !bytes.Equal(c.Root, root) {
			return nil, errors.New("COSE receipt: the checkpoint it carries is not the ledger's checkpoint of its size and root")
		}
		info.Checkpoint = []byte(cp)
	}
	return info, nil
}

// VerifyCOSEConsistency checks a consistency receipt from the tree of
// size oldSize and root oldRoot (from an earlier receipt or checkpoint) and
// returns the newer size and root, whose signature it checked.
func VerifyCOSEConsistency(vkey string, receipt []byte, oldSize uint64, oldRoot []byte) (uint64, []byte, error) {
	k, err := ParseVerifierKey(vkey)
	if err != nil {
		return 0, nil, err
	}
	r, err := openCOSE(k, receipt)
	if err != nil {
		return 0, nil, err
	}
	if len(r.Consistency) != 1 || len(r.Inclusion) != 0 {
		return 0, nil, errors.New("COSE receipt: not a consistency receipt (exactly one proof under -2)")
	}
	p := r.Consistency[0]
	if p.A != oldSize {
		return 0, nil, fmt.Errorf("COSE receipt: the proof starts at size %d, not %d", p.A, oldSize)
	}
	root, err := rootFromConsistency(p.A, p.B, oldRoot, p.Path)
	if err != nil {
		return 0, nil, fmt.Errorf("COSE receipt: consistency proof: %w", err)
	}
	if err := proof.VerifyConsistency(hasher, p.A, p.B, p.Path, oldRoot, root); err != nil {
		return 0, nil, fmt.Errorf("COSE receipt: consistency proof: %w", err)
	}
	if err := verifyCOSE(k, r.msg, root); err != nil {
		return 0, nil, err
	}
	return p.B, root, nil
}

// verifyCOSESignature checks a stored COSE signature over root with the
// key of the ledger m.
func verifyCOSESignature(m Meta, root, sig []byte) error {
	k, err := ParseVerifierKey(m.VerifierKey)
	if err != nil {
		return err
	}
	return verifyCOSE(k, &cose.Sign1Message{Headers: cose.Headers{Protected: coseProtected(m.ID, k.KeyID())}, Signature: sig}, root)
}

// verifyCOSE checks m's signature with root as its detached payload.
func verifyCOSE(k *LedgerKey, m *cose.Sign1Message, root []byte) error {
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, k.Public)
	if err != nil {
		return err
	}
	m.Payload = root
	defer func() { m.Payload = nil }()
	if err := m.Verify(nil, v); err != nil {
		return fmt.Errorf("COSE receipt: the signature over the root does not verify with the ledger's key: %w", err)
	}
	return nil
}

// rootFromConsistency computes the newer root from the older root and an
// RFC 9162 §2.1.4.2 consistency proof (the merkle library verifies a proof
// between two known roots, but a COSE consistency receipt signs only the
// newer one, which the relying party must derive).
func rootFromConsistency(s1, s2 uint64, root1 []byte, path [][]byte) ([]byte, error) {
	switch {
	case s1 == 0 || s1 > s2:
		return nil, fmt.Errorf("sizes %d to %d cannot be proved consistent", s1, s2)
	case s1 == s2:
		if len(path) != 0 {
			return nil, errors.New("a proof between equal sizes must be empty")
		}
		return bytes.Clone(root1), nil
	}
	if s1&(s1-1) == 0 { // a power of two: the old root is the first node
		path = append([][]byte{root1}, path...)
	}
	if len(path) == 0 {
		return nil, errors.New("empty proof")
	}
	fn, sn := s1-1, s2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return nil, errors.New("proof too long")
		}
		if fn&1 == 1 || fn == sn {
			fr = hasher.HashChildren(c, fr)
			sr = hasher.HashChildren(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = hasher.HashChildren(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return nil, errors.New("proof too short")
	}
	if !bytes.Equal(fr, root1) {
		return nil, errors.New("the proof does not lead to the older root")
	}
	return sr, nil
}

func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		if n <= 1<<63-1 {
			return int64(n), true
		}
	case int:
		return int64(n), true
	case cose.Algorithm:
		return int64(n), true
	}
	return 0, false
}

func uintOf(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint64:
		return n, true
	case int64:
		if n >= 0 {
			return uint64(n), true
		}
	}
	return 0, false
}

func hashes(v any) ([][]byte, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([][]byte, len(list))
	for i, h := range list {
		b, ok := h.([]byte)
		if !ok || len(b) != sha256.Size {
			return nil, false
		}
		out[i] = b
	}
	return out, true
}

// cwtIss returns the issuer (1) of a CWT claims map, "" when absent.
func cwtIss(v any) string {
	var m map[any]any
	switch c := v.(type) {
	case cose.CWTClaims:
		m = c
	case map[any]any:
		m = c
	}
	for k, val := range m {
		if n, ok := intOf(k); ok && n == cwtIssuer {
			s, _ := val.(string)
			return s
		}
	}
	return ""
}
