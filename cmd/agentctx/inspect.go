package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
)

func cmdInspect(e *env, args []string) error {
	fs := newFlags(e, "inspect", "inspect [TOKEN|-]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tok, err := readInput(e, fs.Args())
	if err != nil {
		return err
	}
	if i := strings.IndexByte(tok, ','); i >= 0 {
		tok = tok[:i] // a header value with supporting tokens: show the first
	}
	fmt.Fprintln(e.stderr, "agentctx: UNVERIFIED: signature, issuer, audience and times were NOT checked; use agentctx verify")
	var header, payload []byte
	if strings.Count(tok, ".") == 2 {
		t, err := jws.Parse(tok, 1<<20)
		if err != nil {
			return failf("token does not parse: %v", err)
		}
		header, payload = t.Header.Raw, t.Payload
	} else {
		p, err := jws.DecodeSegment(tok)
		if err != nil {
			return failf("token does not parse: not a JWS and not an unsigned (L1) payload")
		}
		if _, err := jsonx.ParseObject(p); err != nil {
			return failf("token does not parse: unsigned (L1) payload: %v", err)
		}
		header, payload = []byte("null"), p
	}
	out := struct {
		Header json.RawMessage `json:"header"`
		Claims json.RawMessage `json:"claims"`
	}{header, payload}
	b, err := json.Marshal(out)
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
