package transport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"mime"
	"reflect"
)

// MCPResponseMessage returns the bytes an MCP tool call's out_hash covers
// (BND-5): for a Streamable HTTP reply in an SSE stream
// (text/event-stream), the data of the first event whose JSON-RPC message
// answers the request's id, exactly as sent (its data lines joined with
// "\n"); otherwise, or when no event answers it, the whole body.
func MCPResponseMessage(contentType string, body, request []byte) []byte {
	ct, _, _ := mime.ParseMediaType(contentType)
	if ct != "text/event-stream" {
		return body
	}
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(request, &req) != nil || req.ID == nil {
		return body
	}
	for _, ev := range SSEData(body) {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(ev, &m) == nil && m.Method == "" && sameJSON(m.ID, req.ID) {
			return ev
		}
	}
	return body
}

// SSEData splits a text/event-stream body into the data of its events.
func SSEData(stream []byte) [][]byte {
	var out, data [][]byte
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(make([]byte, 0, min(len(stream)+1, 64<<10)), len(stream)+1)
	flush := func() {
		if data != nil {
			out = append(out, bytes.Join(data, []byte("\n")))
			data = nil
		}
	}
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		switch {
		case len(line) == 0:
			flush()
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.Clone(bytes.TrimPrefix(line[5:], []byte(" "))))
		}
	}
	flush()
	return out
}

// sameJSON reports whether two JSON values are equal (a JSON-RPC id: 7
// and 7.0, "a" and "a").
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
