package ect

import (
	"testing"
	"time"

	"github.com/agentctx/agentctx/trust"
)

// TestReplayWindow covers ECT-V12: the replay window ends at min(exp, iat +
// max age) + skew, so a far-future exp cannot pin a cache slot.
func TestReplayWindow(t *testing.T) {
	v, err := NewVerifier(Config{Trust: trust.NewSet(), Audience: "b", Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(1767225600, 0)
	for _, c := range []struct {
		exp, want time.Time
	}{
		{iat.Add(24 * time.Hour), iat.Add(DefaultMaxAge + DefaultSkew)},
		{iat.Add(5 * time.Minute), iat.Add(5*time.Minute + DefaultSkew)},
	} {
		if got := v.replayUntil(&Claims{IssuedAt: iat, Expiry: c.exp}); !got.Equal(c.want) {
			t.Errorf("ECT-V12: exp %v: window ends %v, want %v", c.exp, got, c.want)
		}
	}
}
