package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Witness cosignatures (C2SP tlog-witness, tlog-cosignature): a witness
// that cosigned a checkpoint vouches that it saw no other history of this
// ledger. The ledger stores the cosignature lines beside the checkpoint and
// publishes the checkpoint with them; receipts carry the cosigned form.

// AddCosignatures stores witness cosignature lines of the published
// checkpoint of size. Each must be one signed-note signature line ("— name
// base64\n"); the caller checked them with the witnesses' keys.
func (l *Ledger) AddCosignatures(ctx context.Context, size uint64, lines []string) error {
	for _, s := range lines {
		if !strings.HasPrefix(s, "— ") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
			return fmt.Errorf("ledger: %q is not a signed-note signature line", s)
		}
	}
	cp, err := l.cfg.Store.Checkpoint(ctx, size)
	if err != nil {
		return err
	}
	if cp == nil || size == 0 {
		return fmt.Errorf("%w: no checkpoint of size %d was published", ErrNotFound, size)
	}
	if err := l.cfg.Store.AddCosignatures(ctx, size, lines); err != nil {
		return err
	}
	l.witnessed.Store(true)
	return nil
}

// Cosignatures returns the witness cosignature lines stored for the
// published checkpoint of size.
func (l *Ledger) Cosignatures(ctx context.Context, size uint64) ([]string, error) {
	return l.cfg.Store.Cosignatures(ctx, size)
}

// CosignedCheckpoint returns the published checkpoint of size (0: the
// latest) with the witness cosignatures stored for it, nil for an empty
// log.
func (l *Ledger) CosignedCheckpoint(ctx context.Context, size uint64) ([]byte, error) {
	cp, err := l.cfg.Store.Checkpoint(ctx, size)
	if err != nil || cp == nil {
		return cp, err
	}
	c, err := l.OpenCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	return l.withCosignatures(ctx, cp, c.Size)
}

// withCosignatures appends the stored cosignature lines of size to cp.
func (l *Ledger) withCosignatures(ctx context.Context, cp []byte, size uint64) ([]byte, error) {
	lines, err := l.cfg.Store.Cosignatures(ctx, size)
	if err != nil || len(lines) == 0 {
		return cp, err
	}
	l.witnessed.Store(true)
	out := bytes.Clone(cp)
	for _, s := range lines {
		out = append(out, s...)
	}
	return out, nil
}

// ledgerSigned returns the checkpoint note up to and including its first
// signature line: the ledger's own, as stored (cosignatures follow it).
func ledgerSigned(cp []byte) []byte {
	i := bytes.Index(cp, []byte("\n\n"))
	if i < 0 {
		return cp
	}
	j := bytes.IndexByte(cp[i+2:], '\n')
	if j < 0 {
		return cp
	}
	return cp[:i+2+j+1]
}

// ErrTooFewCosignatures is returned by RequireCosignatures.
var ErrTooFewCosignatures = errors.New("too few witness cosignatures")

// CountCosignatures returns how many of the witnesses (cosignature
// verifiers, e.g. from formats/note.NewVerifierForCosignatureV1) validly
// cosigned the signed checkpoint cp.
func CountCosignatures(cp []byte, witnesses []note.Verifier) int {
	n := 0
	for _, w := range witnesses {
		if _, err := note.Open(cp, note.VerifierList(w)); err == nil {
			n++
		}
	}
	return n
}

// RequireCosignatures checks that at least k of the witnesses cosigned cp.
func RequireCosignatures(cp []byte, witnesses []note.Verifier, k int) error {
	if k <= 0 {
		return nil
	}
	if n := CountCosignatures(cp, witnesses); n < k {
		return fmt.Errorf("%w: the checkpoint carries %d valid cosignatures of the %d witness keys given, %d required", ErrTooFewCosignatures, n, len(witnesses), k)
	}
	return nil
}

// mayBeWitnessed reports whether a proof should look for cosignatures: a
// ledger known to hold some always; one that held none when last looked
// at looks again at most once a second (a proof of an unwitnessed ledger
// then costs no query for them; a witness that starts cosigning is seen
// within a second, at once in this process).
func (l *Ledger) mayBeWitnessed() bool {
	if l.witnessed.Load() {
		return true
	}
	now := l.cfg.Clock().UnixNano()
	last := l.cosigLook.Load()
	if last != 0 && now-last < int64(time.Second) && now >= last {
		return false
	}
	return l.cosigLook.CompareAndSwap(last, now)
}
