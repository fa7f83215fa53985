package jws

import (
	"errors"
	"reflect"
	"testing"

	"github.com/agentctx/agentctx"
)

// FuzzParse: Parse never panics; a failure is an *agentctx.Error with code
// too_large or malformed; a success has a JSON object header and payload.
func FuzzParse(f *testing.F) {
	f.Add("eyJhbGciOiJFZERTQSJ9.eyJhIjoxfQ.AAAA")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJ9.e30.AA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := Parse(tok, 0)
		// ParseHeader never accepts what Parse refuses for the envelope or
		// header, and reads the same header from what Parse accepts.
		h, herr := ParseHeader(tok, 0)
		if err == nil && (herr != nil || !reflect.DeepEqual(*h, p.Header)) {
			t.Fatalf("ParseHeader disagrees with Parse: %v, %+v vs %+v", herr, h, p.Header)
		}
		if herr != nil && agentctx.CodeOf(herr) != agentctx.CodeOf(err) {
			t.Fatalf("ParseHeader refused with %v, Parse with %v", herr, err)
		}
		if err != nil {
			var e *agentctx.Error
			if !errors.As(err, &e) || (e.Code != agentctx.CodeMalformed && e.Code != agentctx.CodeTooLarge) {
				t.Fatalf("unexpected error %#v", err)
			}
			return
		}
		if p.Header.Raw == nil || p.Members == nil {
			t.Fatalf("parsed token without parts: %+v", p)
		}
		_ = p.CheckAlg()
	})
}
