package act_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/trust"
)

// actVector mirrors internal/cmd/genvectors.ACTVector, the file format.
type actVector struct {
	Description string     `json:"description"`
	Rule        string     `json:"rule"`
	Audience    string     `json:"audience"`
	Now         int64      `json:"now"`
	Phase       string     `json:"phase"`
	Before      [][]string `json:"before"`
	Token       string     `json:"token"`
	Supporting  []string   `json:"supporting"`
	Expect      string     `json:"expect"`
}

var phases = map[string]act.Phase{"any": act.PhaseDetect, "mandate": act.PhaseMandate, "record": act.PhaseRecord}

// actCode reports whether e is in the vectors' closed vocabulary: the
// error codes and "valid".
func actCode(e string) bool {
	return e == "valid" || slices.Contains(agentctx.Codes(), agentctx.Code(e))
}

// TestVectors runs every scenario of testdata/vectors/act.
func TestVectors(t *testing.T) {
	dir := filepath.Join("..", "testdata", "vectors", "act")
	raw, err := os.ReadFile(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := trust.ParseFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "trust.json" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			var vec actVector
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &vec); err != nil {
				t.Fatal(err)
			}
			phase, ok := phases[vec.Phase]
			if !ok || !actCode(vec.Expect) || vec.Rule == "" {
				t.Fatalf("bad vector: phase %q expect %q rule %q", vec.Phase, vec.Expect, vec.Rule)
			}
			at := time.Unix(vec.Now, 0)
			v, err := act.NewVerifier(act.Config{Trust: set, Audience: vec.Audience, Clock: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i, line := range vec.Before {
				if _, err := v.Verify(ctx, line[0], line[1:], act.PhaseDetect); err != nil {
					t.Fatalf("before[%d]: %v", i, err)
				}
			}
			_, err = v.Verify(ctx, vec.Token, vec.Supporting, phase)
			got := string(agentctx.CodeOf(err))
			if err == nil {
				got = "valid"
			}
			if got != vec.Expect {
				t.Fatalf("%s (%s): got %s (%v), want %s", vec.Description, vec.Rule, got, err, vec.Expect)
			}
			// The rule field names the rule the error reports.
			var e *agentctx.Error
			if err != nil && (!errors.As(err, &e) || e.Rule != vec.Rule) {
				t.Fatalf("%s: error reports rule %q, the vector names %q", vec.Description, e.Rule, vec.Rule)
			}
		})
	}
	if n < 50 {
		t.Fatalf("only %d vectors", n)
	}
}
