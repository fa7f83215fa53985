// Package dag is the task graph that ECTs and ACT records of one workflow
// build (spec/dag.md): every record is a node named by its jti, and its pred
// claim lists its incoming edges. Fork, join and diamonds are normal.
//
// A Checker applies the rules DAG-1..DAG-8 to a new node against a Store of
// the nodes already accepted: the ledger, or a MemStore built from the
// predecessor tokens a verifier received inline (verified first). Verifiers
// call it through the Validator interface (ECT-V13, ACT-V5).
//
// Graph computes the views of a workflow: roots, leaves, the critical path,
// and exports as JSON, Graphviz DOT, Mermaid and text.
package dag

import (
	"context"
	"strings"
	"time"
)

// Node kinds.
const (
	KindECT        = "ect"
	KindACTMandate = "act-mandate"
	KindACTRecord  = "act-record"
)

// Node is one verified task record, reduced to what the DAG rules and the
// views read. JTI and WID are compared case-insensitively (UUIDs).
type Node struct {
	Kind    string    `json:"kind"`          // KindECT, KindACTMandate or KindACTRecord
	JTI     string    `json:"jti"`           // task id
	WID     string    `json:"wid,omitempty"` // workflow id, "" when absent
	Pred    []string  `json:"pred"`          // predecessor task ids, [] for a root
	Time    time.Time `json:"-"`             // exec_ts for an ACT record, iat otherwise (DAG-3)
	Issuer  string    `json:"iss"`
	Subject string    `json:"sub,omitempty"`      // ACT only
	ExecAct string    `json:"exec_act,omitempty"` // the action performed, "" for a mandate
	// Caps are the actions of an ACT mandate's cap (and of its record's).
	Caps []string `json:"cap,omitempty"`
	// PolicyDecision is ect_ext.pol_decision ("" when absent), read by DAG-6.
	PolicyDecision string `json:"pol_decision,omitempty"`
	// Status is an ACT record's status ("" otherwise).
	Status string `json:"status,omitempty"`
	// Partial marks a node accepted with missing predecessors (DAG-2
	// partial mode).
	Partial bool `json:"partial,omitempty"`
}

// Validator applies the DAG rules to a new node.
type Validator interface {
	// Check returns what it found when n may be accepted (in partial mode,
	// the missing predecessors), or an *agentctx.Error with a dag_* code (or
	// invalid_claim / capability_violation) naming the rule. Any other error
	// is a failure of the store, not a verdict.
	Check(ctx context.Context, n Node) (*Verdict, error)
}

// Store holds accepted nodes.
type Store interface {
	// Lookup returns every node with task id jti, in any workflow and in
	// either ACT state (a mandate and its record share the jti). It returns
	// an empty slice, not an error, when there is none.
	Lookup(ctx context.Context, jti string) ([]Node, error)
}

func norm(id string) string { return strings.ToLower(id) }

// MemStore is an in-memory Store: the inline store of a verifier that
// received its predecessors with the request, and the graph of a batch of
// tokens. It is not safe for concurrent use.
type MemStore struct {
	byJTI map[string][]Node
	order []Node
}

// NewMemStore returns a store holding nodes.
func NewMemStore(nodes ...Node) *MemStore {
	s := &MemStore{byJTI: make(map[string][]Node)}
	for _, n := range nodes {
		s.Add(n)
	}
	return s
}

// Add stores n (unchecked: use a Checker first).
func (s *MemStore) Add(n Node) {
	k := norm(n.JTI)
	s.byJTI[k] = append(s.byJTI[k], n)
	s.order = append(s.order, n)
}

// Lookup implements Store.
func (s *MemStore) Lookup(_ context.Context, jti string) ([]Node, error) {
	return s.byJTI[norm(jti)], nil
}

// Nodes returns the stored nodes in the order they were added.
func (s *MemStore) Nodes() []Node { return s.order }
