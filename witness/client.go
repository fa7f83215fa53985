package witness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// Peer is a witness as a log sees it: its name, its add-checkpoint URL
// prefix and its cosignature key. A log asks it to cosign each new
// checkpoint. Safe for concurrent use.
type Peer struct {
	// Name is the witness's key name; Verifier checks its cosignatures
	// (NewVerifier).
	Name     string
	Verifier note.Verifier
	// URL is the submission prefix: requests go to URL + "/add-checkpoint".
	URL string
	// HTTP is the client (nil: http.DefaultClient).
	HTTP *http.Client

	mu   sync.Mutex
	last uint64 // the size this witness last cosigned, as far as we know
}

// Prover returns the RFC 6962 consistency proof from size old to size new.
type Prover func(ctx context.Context, old, new uint64) ([][]byte, error)

// Cosign submits checkpoint (a signed note of size) with a consistency
// proof from the size the witness last cosigned, and returns the
// cosignature lines it answered, each checked with the witness's key. A
// 409 naming another size is retried once from that size.
func (p *Peer) Cosign(ctx context.Context, checkpoint []byte, size uint64, prove Prover) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		old := p.last
		if old > size {
			return nil, fmt.Errorf("witness %s cosigned size %d, over this checkpoint's %d: the log was rolled back", p.Name, old, size)
		}
		req := &Request{OldSize: old, Checkpoint: checkpoint}
		if old > 0 && old < size {
			pr, err := prove(ctx, old, size)
			if err != nil {
				return nil, err
			}
			req.Proof = pr
		}
		status, body, ctype, err := p.post(ctx, req.Marshal())
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			lines, err := p.check(checkpoint, body)
			if err != nil {
				return nil, err
			}
			p.last = size
			return lines, nil
		case status == http.StatusConflict && strings.HasPrefix(ctype, "text/x.tlog.size") && attempt == 0:
			n, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("witness %s: 409 with a size that is not a number", p.Name)
			}
			p.last = n
			continue
		default:
			return nil, fmt.Errorf("witness %s refused the checkpoint of size %d: %d %s", p.Name, size, status, strings.TrimSpace(firstLine(body)))
		}
	}
	return nil, fmt.Errorf("witness %s: its size changed twice while cosigning", p.Name)
}

func (p *Peer) post(ctx context.Context, body []byte) (int, []byte, string, error) {
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(p.URL, "/")+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("witness %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, b, resp.Header.Get("Content-Type"), err
}

// check keeps the answered lines that are this witness's valid
// cosignatures of checkpoint; none is an error.
func (p *Peer) check(checkpoint, body []byte) ([]string, error) {
	var lines []string
	for _, l := range strings.SplitAfter(string(body), "\n") {
		if !strings.HasPrefix(l, "— "+p.Name+" ") || !strings.HasSuffix(l, "\n") {
			continue
		}
		if _, err := note.Open(append(bytes.Clone(checkpoint), l...), note.VerifierList(p.Verifier)); err == nil {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("witness %s answered no valid cosignature", p.Name)
	}
	return lines, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
