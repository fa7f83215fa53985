package dag_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentctx/agentctx/dag"
)

// FuzzGraph: any set of nodes with any edges, cycles and missing
// predecessors included, gives views without panic or hang, and the checker
// answers every node.
func FuzzGraph(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 2, 3, 3, 0})
	f.Add([]byte{5, 5})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 1})
	f.Fuzz(func(t *testing.T, edges []byte) {
		if len(edges) > 512 {
			edges = edges[:512]
		}
		nodes := map[int]*dag.Node{}
		get := func(b byte) *dag.Node {
			n := int(b % 32)
			if nodes[n] == nil {
				nodes[n] = &dag.Node{Kind: dag.KindECT, JTI: id(n), WID: wid, Pred: []string{}, Time: t0.Add(time.Duration(n) * time.Second)}
			}
			return nodes[n]
		}
		for i := 0; i+1 < len(edges); i += 2 {
			to := get(edges[i+1])
			to.Pred = append(to.Pred, id(int(edges[i]%32)))
		}
		var list []dag.Node
		for _, n := range nodes {
			list = append(list, *n)
		}
		g := dag.NewGraph(list)
		_ = g.DOT()
		_ = g.Mermaid()
		_ = g.Text()
		if _, err := g.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) > 0 && len(g.CriticalPath) == 0 {
			t.Fatal("no critical path")
		}
		s := dag.NewMemStore(list...)
		c := dag.NewChecker(s, dag.Config{MaxAncestors: 64, Partial: true})
		for _, n := range list {
			probe := n
			probe.JTI = id(99)
			_, _ = c.Check(context.Background(), probe)
		}
	})
}
