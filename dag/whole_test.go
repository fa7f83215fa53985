package dag_test

import (
	"context"
	"slices"
	"strings"
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

// TestViewsSafeAndRootsFirst: text views escape control characters from
// tokens (an iss cannot forge lines or drive a terminal), and the text and
// Mermaid views list roots first.
func TestViewsSafeAndRootsFirst(t *testing.T) {
	a := ectNode(1, 10*time.Second)
	a.Issuer = "evil\x1b[31m\nFAKE LINE\u2028"
	b := ectNode(2, 0)
	c := ectNode(3, 5*time.Second, 1) // after a, though earlier in time (within skew)
	g := dag.NewGraph([]dag.Node{a, b, c})
	text := g.Text()
	if strings.ContainsAny(text, "\x1b\u2028") || strings.Contains(text, "\nFAKE LINE") || !strings.Contains(text, `evil\u001b[31m\u000aFAKE LINE\u2028`) {
		t.Fatalf("text view not escaped:\n%s", text)
	}
	lines := strings.Split(text, "\n")
	if !strings.Contains(lines[0], id(2)) || !strings.Contains(lines[1], id(1)) || !strings.Contains(lines[2], id(3)) {
		t.Fatalf("roots first:\n%s", text)
	}
	m := g.Mermaid()
	if strings.Index(m, "step1") > strings.Index(m, "step3") {
		t.Fatalf("mermaid lists a successor before its root:\n%s", m)
	}
}
