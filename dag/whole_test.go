package dag_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentctx/agentctx/dag"
)

// chain returns n ECT nodes 0 -> 1 -> ... -> n-1.
func chain(n int) []dag.Node {
	out := make([]dag.Node, n)
	out[0] = ectNode(0, 0)
	for i := 1; i < n; i++ {
		out[i] = ectNode(i, time.Duration(i)*time.Millisecond, i-1)
	}
	return out
}

// TestSort covers DAG-4 over a whole set: Sort orders any input by its
// edges (a mandate before its record) and sets the nodes of a cycle apart,
// the record-of-a-mandate cycle included.
func TestSort(t *testing.T) {
	nodes := chain(5)
	slices.Reverse(nodes)
	sorted, cyclic := dag.Sort(nodes)
	if len(cyclic) != 0 || len(sorted) != 5 {
		t.Fatalf("sorted %d cyclic %d", len(sorted), len(cyclic))
	}
	for i, n := range sorted {
		if n.JTI != id(i) {
			t.Fatalf("position %d holds %s", i, n.JTI)
		}
	}
	// Mandate X, Y after X, X's record after Y: X -> Y -> X.
	x := dag.Node{Kind: dag.KindACTMandate, JTI: id(10), WID: wid, Pred: []string{}, Time: t0}
	y := ectNode(11, time.Second, 10)
	xr := dag.Node{Kind: dag.KindACTRecord, JTI: id(10), WID: wid, Pred: []string{id(11)}, Time: t0.Add(2 * time.Second), ExecAct: "a", Caps: []string{"a"}}
	_, cyclic = dag.Sort([]dag.Node{xr, y, x})
	if len(cyclic) != 2 {
		t.Fatalf("DAG-4: the mandate/record cycle: cyclic %+v", cyclic)
	}
	// Without the cycle, the record comes after its mandate.
	xr.Pred = []string{}
	sorted, cyclic = dag.Sort([]dag.Node{xr, x})
	if len(cyclic) != 0 || sorted[0].Kind != dag.KindACTMandate {
		t.Fatalf("mandate first: %+v %+v", sorted, cyclic)
	}
}

// TestWholeWorkflowLinear covers the Cost rule of spec/dag.md: a 100 000-node
// chain is sorted, checked and drawn (critical path included) in O(V + E);
// the quadratic versions took minutes and hundreds of MB here.
func TestWholeWorkflowLinear(t *testing.T) {
	const n = 100000
	nodes := chain(n)
	slices.Reverse(nodes)
	sorted, cyclic := dag.Sort(nodes)
	if len(cyclic) != 0 {
		t.Fatal("cycle in a chain")
	}
	store := dag.NewMemStore()
	c := dag.NewChecker(store, dag.Config{AcyclicStore: true})
	for _, nd := range sorted {
		if _, err := c.Check(context.Background(), nd); err != nil {
			t.Fatal(err)
		}
		store.Add(nd)
	}
	g := dag.NewGraph(store.Nodes())
	if len(g.CriticalPath) != n || g.CriticalPath[0] != id(0) || g.CriticalPath[n-1] != id(n-1) {
		t.Fatalf("critical path of %d nodes", len(g.CriticalPath))
	}
}

func BenchmarkGraph100k(b *testing.B) {
	nodes := chain(100000)
	for b.Loop() {
		g := dag.NewGraph(nodes)
		if len(g.CriticalPath) != len(nodes) {
			b.Fatal("path")
		}
	}
}
