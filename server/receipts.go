package server

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentctx/agentctx/ledger"
)

// Receipt encodings (SVC-6a), by their ?format= name.
const (
	formatJSON      = "json"
	formatTLogProof = "tlog-proof"
	formatCOSE      = "cose"
)

var formatTypes = map[string]string{
	formatJSON:      "application/json",
	formatTLogProof: ledger.MediaTypeTLogProof,
	formatCOSE:      ledger.MediaTypeCOSEReceipt,
}

// errNotAcceptable is a request whose Accept names no receipt encoding.
var errNotAcceptable = errors.New("the Accept header names no receipt encoding this service writes: application/json, " + ledger.MediaTypeTLogProof + " or " + ledger.MediaTypeCOSEReceipt)

// receiptFormat reads the encoding a request asks for: ?format= first, then
// the Accept media type of highest q among the three (JSON without either).
func receiptFormat(r *http.Request) (string, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		if _, ok := formatTypes[f]; !ok {
			return "", badRequest("format must be json, tlog-proof or cose")
		}
		return f, nil
	}
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return formatJSON, nil
	}
	best, bestQ := "", 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		var f string
		switch mt {
		case "application/json", "*/*", "application/*":
			f = formatJSON
		case ledger.MediaTypeTLogProof:
			f = formatTLogProof
		case ledger.MediaTypeCOSEReceipt:
			f = formatCOSE
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = f, q
		}
	}
	if best == "" {
		return "", errNotAcceptable
	}
	return best, nil
}

// writeReceipt answers rc in format; Vary says the body depends on Accept.
func (s *Server) writeReceipt(w http.ResponseWriter, r *http.Request, rc *ledger.Receipt, format string) {
	w.Header().Add("Vary", "Accept")
	var b []byte
	var err error
	switch format {
	case formatTLogProof:
		b, err = ledger.TLogProof(rc)
	case formatCOSE:
		b, err = s.l.COSEReceipt(r.Context(), rc)
	default:
		writeJSON(w, rc)
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	w.Header().Set("Content-Type", formatTypes[format])
	w.Write(b)
}

// negotiate reads the receipt format of r, answering 400 or 406 itself when
// it cannot.
func negotiate(w http.ResponseWriter, r *http.Request) (string, bool) {
	f, err := receiptFormat(r)
	if errors.Is(err, errNotAcceptable) {
		problem(w, badRequest("%v", err), http.StatusNotAcceptable)
		return "", false
	}
	if err != nil {
		problem(w, err, http.StatusBadRequest)
		return "", false
	}
	return f, true
}

// getReceipt answers GET /v1/entries/{index}/receipt (SVC-6a): the
// receipt of an entry at ?size= (default the latest checkpoint), in the
// encoding asked for.
func (s *Server) getReceipt(w http.ResponseWriter, r *http.Request) {
	format, ok := negotiate(w, r)
	if !ok {
		return
	}
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 63)
	if err != nil {
		problem(w, badRequest("the index must be a non-negative integer"), http.StatusBadRequest)
		return
	}
	size, err := uintParam(r, "size", 0)
	if err != nil {
		problem(w, err, http.StatusBadRequest)
		return
	}
	rc, err := s.l.Prove(r.Context(), idx, size)
	s.answerReceipt(w, r, rc, err, format)
}

// answerReceipt writes the receipt a proof gave, or its error: 404 for
// what the log does not hold, 500 otherwise.
func (s *Server) answerReceipt(w http.ResponseWriter, r *http.Request, rc *ledger.Receipt, err error, format string) {
	if errors.Is(err, ledger.ErrNotFound) {
		notFound(w, "%v", err)
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	s.writeReceipt(w, r, rc, format)
}
