package act_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
)

// FuzzVerify: ACT verification never panics, and every failure carries a
// code of the profile and a rule. The input is a line of --batch: a token
// and its supporting tokens, comma-separated. Seeds: testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	ch := chain3(f)
	rec, m := record(f, act.RecordInput{})
	f.Add(strings.Join(ch, ","))
	f.Add(rec + "," + m)
	f.Add(ch[2])
	f.Add("a.b.c,d.e.f")
	v := verifier(f, idD, now.Add(time.Minute))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, line string) {
		parts := strings.Split(line, ",")
		_, err := v.Verify(ctx, parts[0], parts[1:], act.PhaseDetect)
		if err == nil {
			return
		}
		var e *agentctx.Error
		if !errors.As(err, &e) || e.Code == agentctx.CodeInternal || e.Code == "" || e.Rule == "" {
			t.Fatalf("failure without a code and rule: %#v", err)
		}
	})
}
