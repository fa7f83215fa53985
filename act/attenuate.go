package act

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/agentctx/agentctx"
)

func escalation(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "cap", format, args...)
}

// attenuates checks that child is no wider than parent (ACT-D3, ACT-D4):
// every action exists in the parent, exp does not outlive the parent's, the
// workflow is kept, and constraints only tighten.
func attenuates(parent, child *Mandate) error {
	for _, c := range child.Capabilities {
		p := parent.Capability(c.Action)
		if p == nil {
			return escalation("action %q is not in the parent mandate", c.Action)
		}
		if err := tightens(c.Action, p.Constraints, c.Constraints); err != nil {
			return err
		}
	}
	if child.Expiry.After(parent.Expiry) {
		return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "exp", "delegated mandate outlives its parent by %s", child.Expiry.Sub(parent.Expiry))
	}
	if parent.WorkflowID != "" && !strings.EqualFold(parent.WorkflowID, child.WorkflowID) {
		return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D3", "wid", "delegated mandate leaves the parent's workflow %q", parent.WorkflowID)
	}
	return nil
}

// tightens applies ACT-D4 to the constraints of one action: max_* numbers
// may only decrease, allowed_* arrays only shrink, deny_* arrays only grow;
// every parent key stays; any other key stays equal. A child may add keys.
func tightens(action string, parentRaw, childRaw json.RawMessage) error {
	var parent, child map[string]json.RawMessage
	if len(parentRaw) > 0 && json.Unmarshal(parentRaw, &parent) != nil {
		return escalation("constraints of %q in the parent are not an object", action)
	}
	if len(childRaw) > 0 && json.Unmarshal(childRaw, &child) != nil {
		return escalation("constraints of %q are not an object", action)
	}
	keys := make([]string, 0, len(parent))
	for k := range parent {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the first violation deterministically
	for _, k := range keys {
		pv := parent[k]
		cv, ok := child[k]
		if !ok {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4", "cap", "constraint %q of %q was dropped", k, action)
		}
		var good bool
		switch {
		case strings.HasPrefix(k, "max_"):
			var p, c json.Number
			good = json.Unmarshal(pv, &p) == nil && json.Unmarshal(cv, &c) == nil && numLE(c, p)
		case strings.HasPrefix(k, "allowed_"):
			var p, c []json.RawMessage
			good = json.Unmarshal(pv, &p) == nil && json.Unmarshal(cv, &c) == nil && subset(c, p)
		case strings.HasPrefix(k, "deny_"):
			var p, c []json.RawMessage
			good = json.Unmarshal(pv, &p) == nil && json.Unmarshal(cv, &c) == nil && subset(p, c)
		default:
			good = jsonEqual(pv, cv)
		}
		if !good {
			return agentctx.Errorf(agentctx.CodePrivilegeEscalation, "ACT-D4", "cap", "constraint %q of %q is wider than the parent's", k, action)
		}
	}
	return nil
}

func numLE(a, b json.Number) bool {
	x, err1 := a.Float64()
	y, err2 := b.Float64()
	return err1 == nil && err2 == nil && x <= y
}

// subset reports whether every element of a is in b (as JSON values).
func subset(a, b []json.RawMessage) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y json.RawMessage) bool { return jsonEqual(x, y) }) {
			return false
		}
	}
	return true
}
