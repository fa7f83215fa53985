package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jsonx"
)

// inspected is what inspect prints for one token: its header and claims as
// they are, and each NumericDate claim in RFC 3339 (UTC) beside them.
type inspected struct {
	Header json.RawMessage   `json:"header"`
	Claims json.RawMessage   `json:"claims"`
	Dates  map[string]string `json:"dates,omitempty"`
}

// dateClaims are the NumericDate claims of both families.
var dateClaims = []string{"iat", "exp", "nbf", "exec_ts"}

func cmdInspect(e *env, args []string) error {
	fs := newFlags(e, "inspect", "inspect [TOKEN[,TOKEN...]|@FILE|-]")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	in, err := readInput(e, fs.Args())
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "agentctx: UNVERIFIED: signature, issuer, audience and times were NOT checked; use agentctx verify")
	// A chain (leaf first, as in the ACT-Mandate header): every token.
	toks := strings.Split(in, ",")
	var all []inspected
	for i, tok := range toks {
		header, payload, err := ect.UnsafeDecodeWithoutVerification(strings.TrimSpace(tok))
		if err != nil {
			if len(toks) > 1 {
				return failf("token %d of the chain does not parse: %v", i+1, err)
			}
			return failf("token does not parse: %v", err)
		}
		if header == nil {
			header = []byte("null")
		}
		all = append(all, inspected{Header: header, Claims: payload, Dates: dates(payload)})
	}
	var v any = all[0]
	if len(all) > 1 {
		v = all
	}
	b, err := json.Marshal(v)
	if err != nil {
		return failf("%v", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return failf("%v", err)
	}
	fmt.Fprintln(e.stdout, buf.String())
	return nil
}

// dates returns the RFC 3339 form of every integer NumericDate claim.
func dates(payload []byte) map[string]string {
	ms, err := jsonx.ParseObject(payload)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, m := range ms {
		for _, d := range dateClaims {
			if m.Name == d {
				if v, ok := jsonx.DecodeInt(m.Value); ok {
					out[d] = time.Unix(v, 0).UTC().Format(time.RFC3339)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
