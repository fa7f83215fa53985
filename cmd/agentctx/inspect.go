package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentctx/agentctx/ect"
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
	header, payload, err := ect.UnsafeDecodeWithoutVerification(tok)
	if err != nil {
		return failf("token does not parse: %v", err)
	}
	if header == nil {
		header = []byte("null")
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
