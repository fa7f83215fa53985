package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ledger"
)

// entryJSON is an entry with, on request, its inclusion proof.
type entryJSON struct {
	ledger.EntryJSON
	Proof *ledger.Receipt `json:"proof,omitempty"`
}

func notFound(w http.ResponseWriter, format string, args ...any) {
	problem(w, agentctx.Errorf(agentctx.CodeMalformed, "SVC-5", "", format, args...), http.StatusNotFound)
}

func (s *Server) internal(w http.ResponseWriter, err error) {
	s.cfg.Log.Error("read failed", "err", err)
	problem(w, &agentctx.Error{Code: agentctx.CodeInternal, Rule: "SVC-5", Message: "the store could not be read"}, http.StatusInternalServerError)
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 63)
	if err != nil {
		problem(w, badRequest("the index must be a non-negative integer"), http.StatusBadRequest)
		return
	}
	es, err := s.l.Entries(r.Context(), idx, idx+1)
	if err != nil {
		s.internal(w, err)
		return
	}
	if len(es) == 0 {
		notFound(w, "no entry %d", idx)
		return
	}
	out := entryJSON{EntryJSON: es[0].JSON()}
	if r.URL.Query().Get("proof") == "1" {
		if out.Proof, err = s.l.Prove(r.Context(), idx, 0); err != nil {
			s.internal(w, err)
			return
		}
	}
	writeJSON(w, out)
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	es, err := s.l.Get(r.Context(), r.PathValue("jti"), r.URL.Query().Get("wid"))
	if errors.Is(err, ledger.ErrNotFound) {
		notFound(w, "no task %q", r.PathValue("jti"))
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	out := make([]ledger.EntryJSON, len(es))
	for i := range es {
		out[i] = es[i].JSON()
	}
	writeJSON(w, map[string]any{"entries": out})
}

// workflowSummary is one line of GET /v1/workflows.
type workflowSummary struct {
	WID      string         `json:"wid"`
	Nodes    int            `json:"nodes"`
	First    int64          `json:"first_time"`
	Last     int64          `json:"last_time"`
	Latest   uint64         `json:"latest_index"`
	Statuses map[string]int `json:"statuses,omitempty"`
	Policy   map[string]int `json:"pol_decisions,omitempty"`
	Partial  bool           `json:"partial,omitempty"`
}

// cursor encodes the entry index a page continues below.
func cursorOf(idx uint64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, idx))
}

func parseCursor(c string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 8 {
		return 0, badRequest("the cursor is not one this service gave")
	}
	return binary.BigEndian.Uint64(b), nil
}

func pageLimit(r *http.Request) (int, error) {
	n, err := uintParam(r, "limit", DefaultPageLimit)
	if err != nil || n == 0 || n > MaxPageLimit {
		return 0, badRequest("limit must be 1..%d", MaxPageLimit)
	}
	return int(n), nil
}

func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		problem(w, err, http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	top, err := s.l.Size(ctx)
	if err != nil {
		s.internal(w, err)
		return
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		v, err := parseCursor(c)
		if err != nil || v > top {
			problem(w, badRequest("the cursor is not one this service gave"), http.StatusBadRequest)
			return
		}
		top = v
	}
	// q narrows the list to workflows with an entry whose wid, jti, issuer,
	// subject or action contains it (ASCII case folded).
	q := strings.ToLower(r.URL.Query().Get("q"))
	if len(q) > 256 {
		problem(w, badRequest("q is at most 256 bytes"), http.StatusBadRequest)
		return
	}
	below := top
	seen := map[string]bool{}
	var out []workflowSummary
	next := ""
	const chunk = 1024
scan:
	for hi := top; hi > 0; {
		lo := hi - min(hi, chunk)
		es, err := s.l.Entries(ctx, lo, hi)
		if err != nil {
			s.internal(w, err)
			return
		}
		for i := len(es) - 1; i >= 0; i-- {
			x := &es[i]
			if x.WID == "" || seen[x.WID] || q != "" && !matches(x, q) {
				continue
			}
			if len(out) == limit {
				next = cursorOf(x.Index + 1)
				break scan
			}
			seen[x.WID] = true
			wes, err := s.l.WorkflowEntries(ctx, x.WID)
			if err != nil {
				s.internal(w, err)
				return
			}
			// The list orders workflows by their newest (matching) entry; one
			// whose newest is at or above the cursor was on an earlier page.
			newest := x.Index
			for j := range wes {
				if wes[j].Index > newest && (q == "" || matches(&wes[j], q)) {
					newest = wes[j].Index
				}
			}
			if newest >= below {
				continue
			}
			sum := summary(x.WID, wes)
			sum.Latest = wes[len(wes)-1].Index
			out = append(out, *sum)
		}
		hi = lo
	}
	if out == nil {
		out = []workflowSummary{}
	}
	res := map[string]any{"workflows": out}
	if next != "" {
		res["next_cursor"] = next
	}
	writeJSON(w, res)
}

// matches reports whether entry x's wid, jti, issuer, subject or action
// contains q (lower case).
func matches(x *ledger.Entry, q string) bool {
	for _, f := range []string{x.WID, x.JTI, x.Issuer, x.Subject, x.ExecAct} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// summary is the list line of workflow wid, from its entries.
func summary(wid string, es []ledger.Entry) *workflowSummary {
	g := ledger.GraphOf(es)
	sum := &workflowSummary{WID: wid, Nodes: len(g.Nodes), Statuses: map[string]int{}, Policy: map[string]int{}}
	for i, n := range g.Nodes {
		t := n.Time.Unix()
		if i == 0 || t < sum.First {
			sum.First = t
		}
		if t > sum.Last {
			sum.Last = t
		}
		if n.Status != "" {
			sum.Statuses[n.Status]++
		}
		if n.PolicyDecision != "" {
			sum.Policy[n.PolicyDecision]++
		}
		sum.Partial = sum.Partial || n.Partial
	}
	if len(sum.Statuses) == 0 {
		sum.Statuses = nil
	}
	if len(sum.Policy) == 0 {
		sum.Policy = nil
	}
	return sum
}

func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	g, err := s.l.Workflow(r.Context(), r.PathValue("wid"))
	if err != nil {
		s.internal(w, err)
		return
	}
	if len(g.Nodes) == 0 {
		notFound(w, "no workflow %q", r.PathValue("wid"))
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, g)
	case "dot":
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		io.WriteString(w, g.DOT())
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, g.Mermaid())
	default:
		problem(w, badRequest("format must be json, dot or mermaid"), http.StatusBadRequest)
	}
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.l.CosignedCheckpoint(r.Context(), 0) // with the witnesses' cosignatures
	if err != nil {
		s.internal(w, err)
		return
	}
	if cp == nil {
		notFound(w, "the ledger is empty: no checkpoint yet")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(cp)
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	m := s.l.Meta()
	writeJSON(w, map[string]string{"id": m.ID, "verifier_key": m.VerifierKey})
}

func (s *Server) getInclusion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if (q.Get("index") == "") == (q.Get("leaf_hash") == "") {
		problem(w, badRequest("give index or leaf_hash (and optionally size)"), http.StatusBadRequest)
		return
	}
	size, err := uintParam(r, "size", 0)
	if err != nil {
		problem(w, err, http.StatusBadRequest)
		return
	}
	format, ok := negotiate(w, r)
	if !ok {
		return
	}
	var rc *ledger.Receipt
	if lh := q.Get("leaf_hash"); lh != "" {
		h, ok := decodeHash(lh)
		if !ok {
			problem(w, badRequest("leaf_hash must be a SHA-256 hash in base64 (as in receipts), base64url or hex"), http.StatusBadRequest)
			return
		}
		rc, err = s.l.ProveLeaf(r.Context(), h, size)
	} else {
		idx, perr := uintParam(r, "index", 0)
		if perr != nil {
			problem(w, perr, http.StatusBadRequest)
			return
		}
		rc, err = s.l.Prove(r.Context(), idx, size)
	}
	s.answerReceipt(w, r, rc, err, format)
}

func (s *Server) getConsistency(w http.ResponseWriter, r *http.Request) {
	from, err1 := uintParam(r, "from", 0)
	to, err2 := uintParam(r, "to", 0)
	if err1 != nil || err2 != nil || to == 0 || from > to {
		problem(w, badRequest("give from <= to, both published sizes"), http.StatusBadRequest)
		return
	}
	size, err := s.l.Size(r.Context())
	if err != nil {
		s.internal(w, err)
		return
	}
	if to > size {
		notFound(w, "the log has %d entries", size)
		return
	}
	format, ok := negotiate(w, r)
	if !ok {
		return
	}
	if format == formatCOSE {
		// SPEC: SVC-6a a consistency receipt (-2), signed at the newer size.
		b, err := s.l.COSEConsistency(r.Context(), from, to)
		if errors.Is(err, ledger.ErrNotFound) {
			notFound(w, "%v", err)
			return
		}
		if err != nil {
			problem(w, badRequest("%v", err), http.StatusBadRequest)
			return
		}
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Content-Type", ledger.MediaTypeCOSEReceipt)
		w.Write(b)
		return
	}
	if format == formatTLogProof {
		problem(w, badRequest("C2SP tlog-proof has no consistency form: ask for JSON or COSE"), http.StatusNotAcceptable)
		return
	}
	pr, err := s.l.Consistency(r.Context(), from, to)
	if err != nil {
		problem(w, badRequest("%v", err), http.StatusBadRequest)
		return
	}
	if pr == nil {
		pr = [][]byte{}
	}
	writeJSON(w, map[string]any{"from": from, "to": to, "proof": pr})
}

// getTile serves C2SP tlog-tiles: /tile/<L>/<N>[.p/<W>] and
// /tile/entries/<N>[.p/<W>] (SVC-6). Full tiles are immutable; partial ones
// are not cached; a tile beyond the latest checkpoint is 404.
func (s *Server) getTile(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/tile/")
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		notFound(w, "not a tile path")
		return
	}
	n, width, err := parseTileIndex(rest)
	if err != nil {
		notFound(w, "%v", err)
		return
	}
	ctx := r.Context()
	cp, err := s.l.Checkpoint(ctx)
	if err != nil {
		s.internal(w, err)
		return
	}
	if cp == nil {
		notFound(w, "the ledger is empty")
		return
	}
	c, err := s.l.OpenCheckpoint(cp)
	if err != nil {
		s.internal(w, err)
		return
	}
	var body []byte
	if level == "entries" {
		avail := tileWidth(c.Size, 0, n)
		if avail == 0 || width > avail || width == 0 && avail < 256 {
			notFound(w, "no such entry bundle at size %d", c.Size)
			return
		}
		if width == 0 {
			width = 256
		}
		es, err := s.l.Entries(ctx, n*256, n*256+uint64(width))
		if err != nil || len(es) != width {
			s.internal(w, errors.Join(err, errors.New("entries missing")))
			return
		}
		for i := range es {
			data := ledger.LeafData(es[i].Kind, es[i].ReceivedAt, es[i].Token)
			if len(data) > 65535 {
				s.internal(w, errors.New("an entry over 65535 bytes"))
				return
			}
			body = binary.BigEndian.AppendUint16(body, uint16(len(data)))
			body = append(body, data...)
		}
	} else {
		tl, err := strconv.ParseUint(level, 10, 8)
		if err != nil || tl > 7 {
			notFound(w, "not a tile level")
			return
		}
		avail := tileWidth(c.Size, tl, n)
		if avail == 0 || width > avail || width == 0 && avail < 256 {
			notFound(w, "no such tile at size %d", c.Size)
			return
		}
		if width == 0 {
			width = 256
		}
		hs, err := s.l.TileHashes(ctx, tl, n, width)
		if err != nil {
			s.internal(w, err)
			return
		}
		for _, h := range hs {
			body = append(body, h...)
		}
	}
	if width == 256 {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

// tileWidth returns how many hashes tile (level tl, index n) holds in a
// tree of size: at level 8*tl there are size >> (8*tl) complete nodes.
func tileWidth(size, tl, n uint64) int {
	nodes := size >> (8 * tl)
	if nodes <= n*256 {
		return 0
	}
	return int(min(nodes-n*256, 256))
}

// parseTileIndex reads "x001/x234/067[.p/<W>]" (C2SP tlog-tiles).
func parseTileIndex(s string) (uint64, int, error) {
	width := 0
	if i := strings.Index(s, ".p/"); i >= 0 {
		wv, err := strconv.Atoi(s[i+3:])
		if err != nil || wv < 1 || wv > 255 {
			return 0, 0, errors.New("a partial tile width is 1..255")
		}
		width, s = wv, s[:i]
	}
	parts := strings.Split(s, "/")
	var n uint64
	for i, p := range parts {
		last := i == len(parts)-1
		if !last {
			if !strings.HasPrefix(p, "x") {
				return 0, 0, errors.New("not a tile index")
			}
			p = p[1:]
		}
		if len(p) != 3 || strings.Trim(p, "0123456789") != "" {
			return 0, 0, errors.New("not a tile index")
		}
		v, _ := strconv.ParseUint(p, 10, 64)
		n = n*1000 + v
	}
	return n, width, nil
}

// decodeHash reads a 32-byte hash in standard base64 (the receipts' JSON),
// base64url (padded or not) or hex. A '+' sent unescaped in a query
// arrives as a space and is read as '+'.
func decodeHash(v string) ([]byte, bool) {
	v = strings.ReplaceAll(v, " ", "+")
	for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, base64.URLEncoding.DecodeString,
		base64.RawURLEncoding.DecodeString, base64.RawStdEncoding.DecodeString, hex.DecodeString} {
		if b, err := dec(v); err == nil && len(b) == 32 {
			return b, true
		}
	}
	return nil, false
}
