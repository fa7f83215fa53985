package mcp

import (
	"bytes"
	"io"
	"net/http"

	"github.com/agentctx/agentctx/transport"
)

// NewRoundTripper returns the RoundTripper for an MCP client's HTTP client
// (the Go SDK's StreamableClientTransport.HTTPClient): a tools/call whose
// context carries a transport.Call (transport.WithCall on the context given
// to CallTool) goes through c, which attaches the caller's ECT, WIT, proof
// and mandate and verifies the ECT or ACT record that comes back (into
// Call.Done); every other request (initialize, notifications, the
// session's stream) goes through base unchanged.
func NewRoundTripper(c *transport.Client, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &roundTripper{c: c, base: base}
}

type roundTripper struct {
	c    *transport.Client
	base http.RoundTripper
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil || transport.CallOf(req.Context()) == nil {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, transport.DefaultMaxBody+1))
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if call, err := parseMCP(body); err == nil && call.isToolCall() {
		return t.c.RoundTrip(req)
	}
	return t.base.RoundTrip(req)
}
