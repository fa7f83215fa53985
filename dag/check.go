package dag

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/wire"
)

// Defaults of the rules.
const (
	DefaultSkew         = 30 * time.Second // DAG-3
	DefaultMaxPred      = 100              // DAG-7
	DefaultMaxAncestors = 10000            // DAG-4
)

// Config tunes a Checker. Zero values take the defaults.
type Config struct {
	Skew         time.Duration // DAG-3 clock skew; 0 means DefaultSkew
	MaxPred      int           // DAG-7 fan-in; 0 means DefaultMaxPred
	MaxAncestors int           // DAG-4 walk bound; 0 means DefaultMaxAncestors
	// Partial accepts a node whose predecessors are missing, marking it
	// partial and listing them (DAG-2 partial mode).
	Partial bool
	// AcyclicStore says every stored node passed DAG-2 against this store
	// (an append-only ledger): a new task cannot close a cycle, so the
	// ancestor walk of DAG-4 is skipped and a check costs O(len(pred))
	// look-ups. A node whose jti a stored node carries (the record of a
	// stored mandate: one node, two states) is walked all the same.
	AcyclicStore bool
}

// Checker applies DAG-1..DAG-8 against a Store. It is safe for concurrent
// use when its Store is.
type Checker struct {
	store Store
	cfg   Config
}

// NewChecker returns a Checker over store.
func NewChecker(store Store, cfg Config) *Checker {
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxPred == 0 {
		cfg.MaxPred = DefaultMaxPred
	}
	if cfg.MaxAncestors == 0 {
		cfg.MaxAncestors = DefaultMaxAncestors
	}
	return &Checker{store: store, cfg: cfg}
}

// Verdict is what a successful check found besides acceptance.
type Verdict struct {
	// Missing lists predecessors not in the store (partial mode only).
	Missing []string
	// FailedPreds lists predecessors that are failed ACT records (DAG-6
	// allows building on them; the result notes it).
	FailedPreds []string
}

func fail(code agentctx.Code, rule, format string, args ...any) error {
	return agentctx.Errorf(code, rule, "pred", format, args...)
}

// current returns the state of a task a successor builds on: the record
// when there is one, else the mandate or ECT, restricted to workflow wid.
func current(nodes []Node, wid string) (Node, bool) {
	var best Node
	found := false
	for _, n := range nodes {
		if norm(n.WID) != norm(wid) {
			continue
		}
		if !found || n.Kind == KindACTRecord {
			best, found = n, true
		}
	}
	return best, found
}

// Check applies the rules to n and returns what it found. It implements
// Validator.
func (c *Checker) Check(ctx context.Context, n Node) (*Verdict, error) {
	v := &Verdict{}
	// SPEC: DAG-7 fan-in.
	if len(n.Pred) > c.cfg.MaxPred {
		return nil, agentctx.Errorf(agentctx.CodeInvalidClaim, "DAG-7", "pred", "pred has %d entries, the limit is %d", len(n.Pred), c.cfg.MaxPred)
	}
	// SPEC: DAG-8 an ACT record's exec_act is in its mandate's cap.
	if n.Kind == KindACTRecord && !slices.Contains(n.Caps, n.ExecAct) {
		return nil, agentctx.Errorf(agentctx.CodeCapabilityViolation, "DAG-8", "exec_act", "exec_act %q is not in the mandate's cap", n.ExecAct)
	}
	// SPEC: DAG-1 uniqueness in scope; a record may share its own mandate's jti.
	same, err := c.store.Lookup(ctx, n.JTI)
	if err != nil {
		return nil, err
	}
	known := false // a stored node of n's scope carries n's jti
	for _, o := range same {
		if norm(o.WID) != norm(n.WID) {
			continue
		}
		known = true
		if n.Kind == KindACTRecord && o.Kind == KindACTMandate {
			continue
		}
		return nil, agentctx.Errorf(agentctx.CodeDAGDuplicate, "DAG-1", "jti", "task %q already exists in this workflow (as %s)", n.JTI, o.Kind)
	}
	for _, p := range n.Pred {
		nodes, err := c.store.Lookup(ctx, p)
		if err != nil {
			return nil, err
		}
		pn, ok := current(nodes, n.WID)
		if !ok {
			// SPEC: DAG-5 a predecessor in another workflow (or with/without wid).
			if len(nodes) > 0 {
				return nil, fail(agentctx.CodeDAGWorkflowMismatch, "DAG-5", "predecessor %q belongs to another workflow", p)
			}
			// SPEC: DAG-2 predecessors exist (or partial mode).
			if c.cfg.Partial {
				v.Missing = append(v.Missing, p)
				continue
			}
			return nil, fail(agentctx.CodeDAGUnknownPred, "DAG-2", "predecessor %q is not known", p)
		}
		// SPEC: DAG-3 time order, with skew.
		if pn.Time.After(n.Time.Add(c.cfg.Skew)) {
			return nil, fail(agentctx.CodeDAGTimeOrder, "DAG-3", "predecessor %q is %s later than this task", p, wire.Duration(pn.Time.Sub(n.Time)))
		}
		// SPEC: DAG-6 policy of predecessors.
		if pn.PolicyDecision == "rejected" || pn.PolicyDecision == "pending_human_review" {
			return nil, fail(agentctx.CodeDAGPolicyViolation, "DAG-6", "predecessor %q has policy decision %q", p, pn.PolicyDecision)
		}
		if pn.Kind == KindACTRecord && pn.Status == "failed" {
			v.FailedPreds = append(v.FailedPreds, p)
		}
	}
	// SPEC: DAG-4 acyclic, with a bounded walk: skipped on an acyclic store
	// only for a task no stored node carries.
	if !c.cfg.AcyclicStore || known {
		if err := c.walk(ctx, n); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// walk searches n's ancestors for n itself, visiting at most MaxAncestors
// nodes.
func (c *Checker) walk(ctx context.Context, n Node) error {
	self := norm(n.JTI)
	seen := map[string]bool{}
	queue := append([]string(nil), n.Pred...)
	for len(queue) > 0 {
		id := norm(queue[0])
		queue = queue[1:]
		if id == self {
			return fail(agentctx.CodeDAGCycle, "DAG-4", "task %q is among its own ancestors", n.JTI)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if len(seen) > c.cfg.MaxAncestors {
			return fail(agentctx.CodeDAGTooDeep, "DAG-4", "more than %d ancestors; refusing rather than walking further", c.cfg.MaxAncestors)
		}
		nodes, err := c.store.Lookup(ctx, id)
		if err != nil {
			return err
		}
		if p, ok := current(nodes, n.WID); ok {
			queue = append(queue, p.Pred...)
		}
	}
	return nil
}

// String describes v briefly.
func (v *Verdict) String() string {
	return fmt.Sprintf("missing=%v failed_preds=%v", v.Missing, v.FailedPreds)
}

// Sort orders a set of nodes so that every node comes after the nodes it
// names in pred and an ACT record after its mandate, keeping the input order
// where the edges leave it free (Kahn's algorithm, O(V + E)). Nodes on a
// cycle (DAG-4) cannot be ordered: they are returned in cyclic, in input
// order. Checking the sorted nodes one by one with a Checker over an
// AcyclicStore then validates a whole set in O(V + E).
func Sort(nodes []Node) (sorted, cyclic []Node) {
	byJTI := make(map[string][]int, len(nodes))
	for i, n := range nodes {
		k := norm(n.JTI)
		byJTI[k] = append(byJTI[k], i)
	}
	indeg := make([]int, len(nodes))
	succ := make([][]int, len(nodes))
	edge := func(from, to int) {
		indeg[to]++
		succ[from] = append(succ[from], to)
	}
	for i, n := range nodes {
		for _, p := range n.Pred {
			for _, j := range byJTI[norm(p)] {
				if j != i {
					edge(j, i)
				}
			}
		}
		if n.Kind == KindACTRecord {
			for _, j := range byJTI[norm(n.JTI)] {
				if nodes[j].Kind == KindACTMandate {
					edge(j, i) // one task, two states: the mandate first
				}
			}
		}
	}
	order := kahn(indeg, succ)
	placed := make([]bool, len(nodes))
	sorted = make([]Node, 0, len(order))
	for _, i := range order {
		placed[i] = true
		sorted = append(sorted, nodes[i])
	}
	for i, n := range nodes {
		if !placed[i] {
			cyclic = append(cyclic, n)
		}
	}
	return sorted, cyclic
}

// kahn returns a topological order of the graph given by in-degrees and
// successor lists (Kahn's algorithm, O(V + E)): the nodes without
// predecessors in index order, then each node once its last predecessor is
// placed. Nodes on a cycle are absent. indeg is consumed.
func kahn(indeg []int, succ [][]int) []int {
	order := make([]int, 0, len(indeg))
	for i, d := range indeg {
		if d == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, c := range succ[order[k]] {
			if indeg[c]--; indeg[c] == 0 {
				order = append(order, c)
			}
		}
	}
	return order
}
