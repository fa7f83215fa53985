// Package dag defines the task graph that ECTs and ACT records of one workflow
// build (spec/dag.md): every record is a node named by its jti, and its pred
// claim lists its incoming edges.
//
// Verifiers hand each verified node to a [Validator], the store-backed check of
// the rules DAG-1..DAG-8 (ECT-V13, ACT-V5).
package dag

import (
	"context"
	"time"
)

// Node kinds.
const (
	KindECT        = "ect"
	KindACTMandate = "act-mandate"
	KindACTRecord  = "act-record"
)

// Node is one verified task record, reduced to what the DAG rules read.
type Node struct {
	Kind    string    // KindECT, KindACTMandate or KindACTRecord
	JTI     string    // task id
	WID     string    // workflow id, "" when absent
	Pred    []string  // predecessor task ids, [] for a root
	Time    time.Time // exec_ts for an ACT record, iat otherwise (DAG-3)
	ExecAct string    // the action performed, "" for a mandate
	// PolicyDecision is ect_ext.pol_decision ("" when absent), read by DAG-6.
	PolicyDecision string
	// Status is an ACT record's status ("" otherwise).
	Status string
}

// Validator applies the DAG rules to a new node against a store.
type Validator interface {
	// Validate returns nil when n may be accepted, or an *agentctx.Error with
	// a dag_* code (or invalid_claim / capability_violation) naming the rule.
	// Any other error is a failure of the store, not a verdict.
	Validate(ctx context.Context, n Node) error
}
