package ect_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
)

// FuzzVerify: Verify never panics, and every failure carries a code of the
// profile (never internal_error) and a rule. Seeds: testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add(signRaw(f, edKey, header(edKey), baseClaims()))
	f.Add(signRaw(f, ecKey, header(ecKey), baseClaims()))
	f.Add("a.b.c")
	f.Add("")
	v, _ := newVerifier(f, func(c *ect.Config) { c.MinLevel = ect.L1 })
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := v.Verify(ctx, tok)
		if err == nil {
			return
		}
		var e *agentctx.Error
		if !errors.As(err, &e) || e.Code == agentctx.CodeInternal || e.Code == "" || e.Rule == "" {
			t.Fatalf("failure without a code and rule: %#v", err)
		}
	})
}

// TestHugeInputRefusedCheaply: a 1 MB input is refused with too_large before
// any parsing (ECT-V1): no allocation proportional to its size.
func TestHugeInputRefusedCheaply(t *testing.T) {
	v, _ := newVerifier(t, nil)
	huge := strings.Repeat("eyJh", 1<<18) // 1 MiB
	ctx := context.Background()
	var err error
	allocs := testing.AllocsPerRun(20, func() { _, err = v.Verify(ctx, huge) })
	if agentctx.CodeOf(err) != agentctx.CodeTooLarge {
		t.Fatalf("1 MiB input: %v, want too_large", err)
	}
	if allocs > 5 {
		t.Fatalf("1 MiB input cost %.0f allocations before being refused", allocs)
	}
}
