// Package witness is a C2SP tlog-witness (https://c2sp.org/tlog-witness)
// for any log that publishes C2SP checkpoints, this project's ledgers
// included: it cosigns (tlog-cosignature/v1) a checkpoint only when it is
// consistent with the last one it cosigned for that log, so a forked or
// rolled-back log is caught by a party that does not trust its operator.
// It also holds the client a log uses to ask a witness for cosignatures.
package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// MaxProofLines is the most consistency proof lines a request may carry
// (tlog-witness).
const MaxProofLines = 63

// maxBody caps an add-checkpoint request: 63 proof lines and a checkpoint
// with a few dozen signatures fit well within it.
const maxBody = 64 << 10

// Config holds what a Witness needs. Signer, Logs and Store are required.
type Config struct {
	// Signer makes the cosignatures: a tlog-cosignature/v1 signer
	// (NewSigner).
	Signer note.Signer
	// Logs are the logs witnessed: origin -> the log's note verifier.
	Logs map[string]note.Verifier
	// Store keeps the latest cosigned checkpoint of each log, durably.
	Store Store
	// Log receives one line per refused or cosigned checkpoint (nil:
	// slog.Default()).
	Log *slog.Logger
}

// Witness answers add-checkpoint requests. It is safe for concurrent use.
type Witness struct {
	cfg Config
	mu  sync.Mutex // serializes check-and-persist (the race of tlog-witness)
}

// New returns a witness over cfg.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil || cfg.Store == nil || len(cfg.Logs) == 0 {
		return nil, errors.New("witness: Signer, Store and at least one log are required")
	}
	for origin, v := range cfg.Logs {
		if v == nil || v.Name() != origin {
			return nil, fmt.Errorf("witness: the key of log %q is named %q; a log's key name is its origin", origin, v.Name())
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Witness{cfg: cfg}, nil
}

// Error is a refusal with the HTTP status tlog-witness gives it; Size is
// the witness's latest cosigned size for a 409 on the old size.
type Error struct {
	Status  int
	Message string
	Size    uint64
	HasSize bool
}

// Error implements error.
func (e *Error) Error() string { return "witness: " + e.Message }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Request is a parsed add-checkpoint body.
type Request struct {
	OldSize    uint64
	Proof      [][]byte
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint body: "old N", up to 63 base64
// hashes, an empty line, the checkpoint.
func ParseRequest(body []byte) (*Request, error) {
	first, rest, ok := bytes.Cut(body, []byte("\n"))
	num, isOld := bytes.CutPrefix(first, []byte("old "))
	if !ok || !isOld {
		return nil, errors.New(`the body does not start with an "old N" line`)
	}
	size, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || (len(num) > 1 && num[0] == '0') {
		return nil, errors.New("the old size is not a decimal without leading zeros")
	}
	r := &Request{OldSize: size}
	for {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errors.New("no empty line before the checkpoint")
		}
		rest = after
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, fmt.Errorf("more than %d consistency proof lines", MaxProofLines)
		}
		h, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil || len(h) != 32 {
			return nil, errors.New("a consistency proof line is not a base64 SHA-256 hash")
		}
		r.Proof = append(r.Proof, h)
	}
	if len(rest) == 0 {
		return nil, errors.New("no checkpoint after the empty line")
	}
	r.Checkpoint = rest
	return r, nil
}

// Marshal encodes r as an add-checkpoint body.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// AddCheckpoint checks req as tlog-witness says and, when it holds,
// records the checkpoint as the log's latest and returns the witness's
// cosignature lines ("— name base64\n").
func (w *Witness) AddCheckpoint(ctx context.Context, req *Request) ([]byte, error) {
	origin, _, _ := bytes.Cut(req.Checkpoint, []byte("\n"))
	v, ok := w.cfg.Logs[string(origin)]
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown log %q", origin)
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified) || errors.As(err, &invalid):
		return nil, refuse(http.StatusForbidden, "the checkpoint of %q is not signed by its key", origin)
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "the checkpoint is not a signed note: %v", err)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != string(origin) {
		return nil, refuse(http.StatusBadRequest, "the checkpoint of %q is not origin, size, root", origin)
	}
	if req.OldSize > cp.Size {
		return nil, refuse(http.StatusBadRequest, "old size %d is over the checkpoint's size %d", req.OldSize, cp.Size)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st, err := w.cfg.Store.Latest(ctx, cp.Origin)
	if err != nil {
		return nil, err
	}
	if req.OldSize != st.Size {
		return nil, &Error{Status: http.StatusConflict, Message: fmt.Sprintf("old size %d is not the latest cosigned size %d of %q", req.OldSize, st.Size, cp.Origin), Size: st.Size, HasSize: true}
	}
	switch {
	case req.OldSize == cp.Size:
		if st.Size > 0 && !bytes.Equal(st.Root, cp.Hash) {
			w.cfg.Log.Warn("fork: a checkpoint of a cosigned size with another root", "origin", cp.Origin, "size", cp.Size)
			return nil, refuse(http.StatusConflict, "the checkpoint of %q at size %d has another root than the one cosigned: a forked log", cp.Origin, cp.Size)
		}
	case req.OldSize == 0:
		if len(req.Proof) != 0 {
			return nil, refuse(http.StatusUnprocessableEntity, "a proof from size 0 must be empty")
		}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, st.Root, cp.Hash); err != nil {
			w.cfg.Log.Warn("inconsistent checkpoint", "origin", cp.Origin, "old", req.OldSize, "size", cp.Size, "err", err)
			return nil, refuse(http.StatusUnprocessableEntity, "the checkpoint of %q at size %d is not consistent with the cosigned size %d: %v", cp.Origin, cp.Size, req.OldSize, err)
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.cfg.Signer)
	if err != nil {
		return nil, err
	}
	if err := w.cfg.Store.Put(ctx, cp.Origin, req.OldSize, State{Size: cp.Size, Root: cp.Hash, Checkpoint: req.Checkpoint}); err != nil {
		return nil, err
	}
	w.cfg.Log.Info("cosigned", "origin", cp.Origin, "size", cp.Size)
	_, sigs, _ := bytes.Cut(signed, []byte("\n\n"))
	return sigs, nil
}

// ServeHTTP answers POST /add-checkpoint (tlog-witness).
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", "POST")
		http.Error(rw, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(rw, "the body is unreadable or over 64 KiB", http.StatusBadRequest)
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	sigs, err := w.AddCheckpoint(r.Context(), req)
	var we *Error
	switch {
	case errors.As(err, &we) && we.HasSize:
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(we.Status)
		fmt.Fprintf(rw, "%d\n", we.Size)
	case errors.As(err, &we):
		http.Error(rw, we.Message, we.Status)
	case err != nil:
		w.cfg.Log.Error("add-checkpoint", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
	}
}

// NewSigner returns the tlog-cosignature/v1 signer of a note signer key
// (GenerateKey).
func NewSigner(skey string) (note.Signer, error) {
	return fnote.NewSignerForCosignatureV1(strings.TrimSpace(skey))
}

// NewVerifier returns the cosignature verifier of a witness's public key
// in the form GenerateKey prints (name+hash+base64(0x04 || key)).
func NewVerifier(vkey string) (note.Verifier, error) {
	return fnote.NewVerifierForCosignatureV1(strings.TrimSpace(vkey))
}

// GenerateKey returns a new witness key named name: the secret note signer
// key (keep it in a 0600 file) and the public key in the tlog-cosignature
// form, name+hash+base64(0x04 || key), that logs and relying parties load.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, v, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", err
	}
	vkey, err = fnote.VKeyToCosignatureV1(v)
	return skey, vkey, err
}
