package jsonx

import (
	"encoding/json"
	"testing"
)

// FuzzValidate: what this strict reader accepts, encoding/json accepts too
// (it is never laxer), and it never panics.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `"x\u00e9\ud83d\ude00"`, `{"a":1,"a":2}`, `[1e5,-0.5,true,false]`, `{"a":"\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, _, err := Validate(b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if err == nil && k == Object {
			ms, err := ParseObject(b)
			if err != nil {
				t.Fatalf("Validate accepted an object ParseObject refuses: %v", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil || len(m) != len(ms) {
				t.Fatalf("member count %d vs encoding/json %d (%v)", len(ms), len(m), err)
			}
			for _, mem := range ms {
				if _, ok := m[mem.Name]; !ok {
					t.Fatalf("member %q unknown to encoding/json", mem.Name)
				}
			}
		}
	})
}
