package httpsig

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/replay"
)

// Tag is the tag of the WIMSE workload-to-workload signature: it selects
// the signature, whatever its label.
const Tag = "wimse-workload-to-workload"

// Label is the label this implementation gives its WIMSE signatures.
const Label = "wimse"

// MaxValidity bounds expires - created [decision].
const MaxValidity = 5 * time.Minute

// RequestFields are the request fields a WIMSE signature covers when they
// are present (TR-6), in the order they are signed.
var RequestFields = []string{"content-type", "content-digest", "authorization", "txn-token", "workload-identity-token", "execution-context", "act-mandate", "act-record"}

// SignRequest adds the WIMSE signature of a request, with the workload's
// key: @method, @path, @query and every present field of RequestFields;
// created, expires, nonce, tag, wimse-aud and, when signResponse,
// wimse-sign-response. A request with a body must carry Content-Digest
// already (SetContentDigest). It returns the nonce.
func SignRequest(r *http.Request, audience string, signResponse bool, alg string, key crypto.Signer, now time.Time, lifetime time.Duration) (string, error) {
	if lifetime <= 0 || lifetime > MaxValidity {
		lifetime = time.Minute
	}
	comps := []Component{{Name: "@method"}, {Name: "@path"}, {Name: "@query"}}
	for _, f := range RequestFields {
		if _, ok := r.Header[http.CanonicalHeaderKey(f)]; ok {
			comps = append(comps, Component{Name: f})
		}
	}
	nonce := newNonce()
	p := httpsfv.NewParams()
	p.Add("created", now.Unix())
	p.Add("expires", now.Add(lifetime).Unix())
	p.Add("nonce", nonce)
	p.Add("tag", Tag)
	p.Add("wimse-aud", audience)
	if signResponse {
		p.Add("wimse-sign-response", true)
	}
	return nonce, Sign(Message{Request: r}, Label, comps, p, alg, key)
}

// SignResponse adds the WIMSE signature of a response by the server's own
// WIT key, bound to the request's nonce: @status, "@method";req,
// "@path";req, "@query";req, the server's workload-identity-token, and
// content-type, content-digest and execution-context when present.
func SignResponse(resp *http.Response, req *http.Request, reqNonce string, alg string, key crypto.Signer, now time.Time) error {
	comps := []Component{{Name: "@status"}, {Name: "@method", Req: true}, {Name: "@path", Req: true}, {Name: "@query", Req: true}}
	for _, f := range []string{"workload-identity-token", "content-type", "content-digest", "execution-context"} {
		if _, ok := resp.Header[http.CanonicalHeaderKey(f)]; ok {
			comps = append(comps, Component{Name: f})
		}
	}
	p := httpsfv.NewParams()
	p.Add("created", now.Unix())
	p.Add("expires", now.Add(time.Minute).Unix())
	p.Add("nonce", newNonce())
	p.Add("tag", Tag)
	p.Add("wimse-req-nonce", reqNonce)
	return Sign(Message{Request: req, Response: resp}, Label, comps, p, alg, key)
}

func newNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SetContentDigest sets Content-Digest (sha-256) for body.
func SetContentDigest(h http.Header, body []byte) { h.Set("Content-Digest", ContentDigest(body)) }

// Verified is a verified WIMSE signature.
type Verified struct {
	Nonce        string
	SignResponse bool
	Created      time.Time
}

// Policy is what the receiver of a WIMSE signature checks.
type Policy struct {
	// Audience is the receiver's configured URI; wimse-aud must equal it
	// (requests only).
	Audience string
	// Clock and Skew check created and expires.
	Clock func() time.Time
	Skew  time.Duration
	// Nonces refuses a nonce seen before, whoever sent it; nil: no replay
	// check (a response's nonce).
	Nonces *replay.Cache
	// Legacy accepts @request-target instead of @path and @query (-06).
	Legacy bool
	// ReqNonce, for a response, is the nonce of the request it answers.
	ReqNonce string
}

// Find returns the WIMSE signature of m: the one tagged Tag; nil when there
// is none; more than one is refused (TR-6).
func Find(m Message) (*Signature, error) {
	sigs, err := Signatures(m)
	if err != nil {
		return nil, err
	}
	var found *Signature
	for _, s := range sigs {
		if v, ok := s.Params.Get("tag"); ok && v == Tag {
			if found != nil {
				return nil, invalid("the message carries two WIMSE signatures (tag %q)", Tag)
			}
			found = s
		}
	}
	return found, nil
}

// VerifyWIMSE checks the WIMSE signature s of m with the sender's WIT key
// (pub, under the JOSE alg of its cnf.jwk) and the receiver's policy: the
// parameters (keyid and alg refused), the covered components, the
// Content-Digest against body, the audience, the times, the signature, and
// last the nonce (TR-6). body is the exact message body (nil for none).
func VerifyWIMSE(m Message, s *Signature, joseAlg string, pub crypto.PublicKey, body []byte, p Policy) (*Verified, error) {
	if s == nil {
		return nil, invalid("the message carries no WIMSE signature")
	}
	alg, err := AlgFor(joseAlg)
	if err != nil {
		return nil, err
	}
	out := &Verified{}
	var created, expires int64
	var hasCreated, hasExpires bool
	isResp := m.Response != nil
	var aud string
	for _, name := range s.Params.Names() {
		v, _ := s.Params.Get(name)
		ok := true
		switch name {
		case "created":
			created, ok = v.(int64)
			hasCreated = ok
		case "expires":
			expires, ok = v.(int64)
			hasExpires = ok
		case "nonce":
			out.Nonce, ok = v.(string)
		case "tag":
		case "wimse-aud":
			aud, ok = v.(string)
			ok = ok && !isResp
		case "wimse-sign-response":
			out.SignResponse, ok = v.(bool)
			ok = ok && !isResp
		case "wimse-req-nonce":
			var rn string
			rn, ok = v.(string)
			ok = ok && isResp && rn == p.ReqNonce
		case "keyid", "alg":
			return nil, invalid("parameter %q is not allowed: the key is the WIT's", name)
		default:
			ok = false
		}
		if !ok {
			return nil, invalid("parameter %q is missing, mistyped or misplaced", name)
		}
	}
	if !hasCreated || !hasExpires || out.Nonce == "" {
		return nil, invalid("created, expires and nonce are required")
	}
	if isResp && p.ReqNonce != "" {
		if v, ok := s.Params.Get("wimse-req-nonce"); !ok || v != p.ReqNonce {
			return nil, invalid("the response signature is not bound to the request's nonce")
		}
	}
	if expires <= created || time.Duration(expires-created)*time.Second > MaxValidity+p.Skew {
		return nil, invalid("expires must be after created, by at most %s", MaxValidity)
	}
	if err := covers(m, s, isResp, p.Legacy); err != nil {
		return nil, err
	}
	if dig := m.header(false).Get("Content-Digest"); dig != "" || len(body) > 0 {
		if dig == "" {
			return nil, invalid("a message with a body needs Content-Digest")
		}
		if err := CheckContentDigest(dig, body); err != nil {
			return nil, err
		}
	}
	// SPEC: TR-6 wimse-aud against the configured URI, never Host.
	if !isResp && aud != p.Audience {
		return nil, agentctx.Errorf(agentctx.CodeAudienceMismatch, "TR-6", "wimse-aud", "the signature is for %q, this receiver is %q", aud, p.Audience)
	}
	now := p.Clock()
	out.Created = time.Unix(created, 0)
	if time.Unix(created, 0).After(now.Add(p.Skew)) {
		return nil, invalid("created is %s in the future", wire.Duration(time.Unix(created, 0).Sub(now)))
	}
	if !time.Unix(expires, 0).Add(p.Skew).After(now) {
		return nil, agentctx.Errorf(agentctx.CodeExpired, "TR-6", "expires", "the signature expired %s ago", wire.Duration(now.Sub(time.Unix(expires, 0))))
	}
	if err := Verify(m, s, alg, pub); err != nil {
		return nil, err
	}
	// SPEC: TR-6 a nonce seen before is refused, whoever sent it; recorded last.
	if p.Nonces != nil {
		if err := p.Nonces.Add("", "httpsig:"+out.Nonce, time.Unix(expires, 0).Add(p.Skew), now); err != nil {
			return nil, agentctx.Errorf(agentctx.CodeReplay, "TR-6", "nonce", "the signature's nonce was seen before")
		}
	}
	return out, nil
}

// covers checks the covered components of the profile.
func covers(m Message, s *Signature, isResp, legacy bool) error {
	has := func(name string, req bool) bool {
		return slices.Contains(s.Components, Component{Name: name, Req: req})
	}
	if isResp {
		if !has("@status", false) {
			return invalid("a response signature must cover @status")
		}
		if !(has("@method", true) && (has("@path", true) && has("@query", true) || legacy && has("@request-target", true))) {
			return invalid("a response signature must cover the request's @method, @path and @query")
		}
		for _, f := range []string{"workload-identity-token", "content-type", "content-digest", "execution-context"} {
			if _, ok := m.Response.Header[http.CanonicalHeaderKey(f)]; ok && !has(f, false) {
				return invalid("the response field %q is present but not covered", f)
			}
		}
		return nil
	}
	if !has("@method", false) || !(has("@path", false) && has("@query", false) || legacy && has("@request-target", false)) {
		return invalid("a request signature must cover @method, @path and @query")
	}
	for _, f := range RequestFields {
		if _, ok := m.Request.Header[http.CanonicalHeaderKey(f)]; ok && !has(f, false) {
			return invalid("the field %q is present but not covered", f)
		}
	}
	return nil
}
