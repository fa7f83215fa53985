package ect_test

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
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/trust"
)

//go:generate go run ../internal/cmd/genvectors

// vector mirrors internal/cmd/genvectors.Vector, the file format.
type vector struct {
	Description string   `json:"description"`
	Rule        string   `json:"rule"`
	Audience    string   `json:"audience"`
	Now         int64    `json:"now"`
	MinLevel    int      `json:"min_level"`
	Before      []string `json:"before"`
	Token       string   `json:"token"`
	Expect      string   `json:"expect"`
}

// knownExpect is the closed vocabulary of the vectors' expect field: the
// error codes and "valid".
func knownExpect(e string) bool {
	return e == "valid" || slices.Contains(agentctx.Codes(), agentctx.Code(e))
}

// TestVectors runs every scenario of testdata/vectors/ect.
func TestVectors(t *testing.T) {
	dir := filepath.Join("..", "testdata", "vectors", "ect")
	trustJSON, err := os.ReadFile(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := trust.ParseFile(trustJSON)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "trust.json" {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			var v vector
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if !knownExpect(v.Expect) || v.Rule == "" || v.Token == "" && v.Expect != "malformed" {
				t.Fatalf("bad vector: expect %q rule %q", v.Expect, v.Rule)
			}
			at := time.Unix(v.Now, 0)
			ver, err := ect.NewVerifier(ect.Config{Trust: set, Audience: v.Audience, Clock: func() time.Time { return at }, MinLevel: ect.Level(v.MinLevel)})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i, tok := range v.Before {
				if _, err := ver.Verify(ctx, tok); err != nil {
					t.Fatalf("before[%d]: %v", i, err)
				}
			}
			_, err = ver.Verify(ctx, v.Token)
			got := string(agentctx.CodeOf(err))
			if err == nil {
				got = "valid"
			}
			if got != v.Expect {
				t.Fatalf("%s (%s): got %s (%v), want %s", v.Description, v.Rule, got, err, v.Expect)
			}
			// The rule field names the rule the error reports.
			var e *agentctx.Error
			if err != nil && (!errors.As(err, &e) || e.Rule != v.Rule) {
				t.Fatalf("%s: error reports rule %q, the vector names %q", v.Description, e.Rule, v.Rule)
			}
		})
	}
	if n < 50 {
		t.Fatalf("only %d vectors found", n)
	}
}
