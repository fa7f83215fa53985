package agentctx

import (
	"errors"
	"fmt"
	"testing"
)

// TestCodes: the codes are distinct wire strings, errors carry them through
// wrapping, and CodeOf reports internal_error for foreign errors.
func TestCodes(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range Codes() {
		if c == "" || seen[c] {
			t.Fatalf("code %q empty or repeated", c)
		}
		seen[c] = true
	}
	e := Errorf(CodeExpired, "ECT-V8", "exp", "token expired %s ago", "3m2s")
	wrapped := fmt.Errorf("verifying: %w", e)
	if !errors.Is(wrapped, CodeExpired.Err()) || errors.Is(wrapped, CodeReplay.Err()) {
		t.Fatal("errors.Is does not follow the code")
	}
	if CodeOf(wrapped) != CodeExpired || CodeOf(errors.New("x")) != CodeInternal || CodeOf(nil) != "" {
		t.Fatal("CodeOf")
	}
	if e.Error() != "token expired 3m2s ago (exp)" {
		t.Fatalf("message %q", e.Error())
	}
}
