package dag_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/dag"
)

var t0 = time.Unix(1767225600, 0)

const wid = "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"

func id(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func ectNode(n int, at time.Duration, pred ...int) dag.Node {
	p := []string{}
	for _, x := range pred {
		p = append(p, id(x))
	}
	return dag.Node{Kind: dag.KindECT, JTI: id(n), WID: wid, Pred: p, Time: t0.Add(at), Issuer: "agent", ExecAct: fmt.Sprintf("step%d", n)}
}

// diamond: 1 -> 2, 1 -> 3, (2, 3) -> 4.
func diamond() *dag.MemStore {
	return dag.NewMemStore(ectNode(1, 0), ectNode(2, time.Second, 1), ectNode(3, 2*time.Second, 1), ectNode(4, 3*time.Second, 2, 3))
}

func check(t *testing.T, s dag.Store, cfg dag.Config, n dag.Node, want agentctx.Code) *dag.Verdict {
	t.Helper()
	v, err := dag.NewChecker(s, cfg).Check(context.Background(), n)
	if agentctx.CodeOf(err) != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	return v
}

func TestRules(t *testing.T) {
	s := diamond()
	t.Run("DAG-2/join of known tasks", func(t *testing.T) { check(t, s, dag.Config{}, ectNode(5, 4*time.Second, 4, 2), "") })
	t.Run("DAG-1/duplicate jti", func(t *testing.T) { check(t, s, dag.Config{}, ectNode(2, 4*time.Second, 1), agentctx.CodeDAGDuplicate) })
	t.Run("DAG-1/same jti in another workflow", func(t *testing.T) {
		n := ectNode(2, 4*time.Second)
		n.WID = "9d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
		check(t, s, dag.Config{}, n, "")
	})
	t.Run("DAG-1/record shares its mandate's jti", func(t *testing.T) {
		m := dag.Node{Kind: dag.KindACTMandate, JTI: id(7), WID: wid, Pred: []string{}, Time: t0, Caps: []string{"read.data"}}
		st := dag.NewMemStore(m)
		r := m
		r.Kind, r.ExecAct, r.Status, r.Time = dag.KindACTRecord, "read.data", "completed", t0.Add(time.Second)
		check(t, st, dag.Config{}, r, "")
		st.Add(r)
		check(t, st, dag.Config{}, r, agentctx.CodeDAGDuplicate) // a second record is not
		check(t, st, dag.Config{}, m, agentctx.CodeDAGDuplicate) // nor a second mandate
	})
	t.Run("DAG-2/unknown predecessor", func(t *testing.T) {
		check(t, s, dag.Config{}, ectNode(5, 4*time.Second, 9), agentctx.CodeDAGUnknownPred)
	})
	t.Run("DAG-2/partial mode", func(t *testing.T) {
		v := check(t, s, dag.Config{Partial: true}, ectNode(5, 4*time.Second, 4, 9), "")
		if len(v.Missing) != 1 || v.Missing[0] != id(9) {
			t.Fatalf("missing %v", v.Missing)
		}
	})
	t.Run("DAG-3/predecessor later than skew", func(t *testing.T) {
		check(t, s, dag.Config{}, ectNode(5, 3*time.Second-31*time.Second, 4), agentctx.CodeDAGTimeOrder)
	})
	t.Run("DAG-3/within skew", func(t *testing.T) { check(t, s, dag.Config{}, ectNode(5, 3*time.Second-29*time.Second, 4), "") })
	t.Run("DAG-4/cycle in a forged inline store", func(t *testing.T) {
		// 10 <- 11 <- 12 stored, and 10 claims 12 as predecessor: a cycle.
		st := dag.NewMemStore(ectNode(11, 0, 10), ectNode(12, 0, 11))
		n := ectNode(10, time.Second, 12)
		check(t, st, dag.Config{}, n, agentctx.CodeDAGCycle)
		// An acyclic (append-only) store skips the walk.
		check(t, st, dag.Config{AcyclicStore: true}, n, "")
	})
	t.Run("DAG-4/walk bound", func(t *testing.T) {
		st := dag.NewMemStore(ectNode(1, 0))
		for i := 2; i <= 50; i++ {
			st.Add(ectNode(i, 0, i-1))
		}
		check(t, st, dag.Config{MaxAncestors: 20}, ectNode(100, time.Second, 50), agentctx.CodeDAGTooDeep)
		check(t, st, dag.Config{MaxAncestors: 60}, ectNode(100, time.Second, 50), "")
	})
	t.Run("DAG-5/predecessor in another workflow", func(t *testing.T) {
		n := ectNode(5, 4*time.Second, 4)
		n.WID = "9d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
		check(t, s, dag.Config{}, n, agentctx.CodeDAGWorkflowMismatch)
	})
	t.Run("DAG-5/no wid naming a workflow task", func(t *testing.T) {
		n := ectNode(5, 4*time.Second, 4)
		n.WID = ""
		check(t, s, dag.Config{}, n, agentctx.CodeDAGWorkflowMismatch)
	})
	t.Run("DAG-6/rejected predecessor", func(t *testing.T) {
		p := ectNode(20, 0)
		p.PolicyDecision = "rejected"
		check(t, dag.NewMemStore(p), dag.Config{}, ectNode(21, time.Second, 20), agentctx.CodeDAGPolicyViolation)
		p.PolicyDecision = "pending_human_review"
		check(t, dag.NewMemStore(p), dag.Config{}, ectNode(21, time.Second, 20), agentctx.CodeDAGPolicyViolation)
		p.PolicyDecision = "approved"
		check(t, dag.NewMemStore(p), dag.Config{}, ectNode(21, time.Second, 20), "")
	})
	t.Run("DAG-6/failed ACT record may be built on", func(t *testing.T) {
		r := dag.Node{Kind: dag.KindACTRecord, JTI: id(30), WID: wid, Pred: []string{}, Time: t0, Status: "failed", ExecAct: "a", Caps: []string{"a"}}
		v := check(t, dag.NewMemStore(r), dag.Config{}, ectNode(31, time.Second, 30), "")
		if len(v.FailedPreds) != 1 {
			t.Fatalf("failed predecessor not noted: %v", v)
		}
	})
	t.Run("DAG-7/fan-in", func(t *testing.T) {
		n := ectNode(5, 4*time.Second, 1, 2, 3)
		check(t, s, dag.Config{MaxPred: 2}, n, agentctx.CodeInvalidClaim)
	})
	t.Run("DAG-8/record outside its mandate's cap", func(t *testing.T) {
		r := dag.Node{Kind: dag.KindACTRecord, JTI: id(40), WID: wid, Pred: []string{}, Time: t0, ExecAct: "drop.table", Caps: []string{"read.data"}}
		check(t, dag.NewMemStore(), dag.Config{}, r, agentctx.CodeCapabilityViolation)
	})
	t.Run("DAG-1/UUIDs compare case-insensitively", func(t *testing.T) {
		n := ectNode(2, 4*time.Second, 1)
		n.JTI = strings.ToUpper(n.JTI)
		check(t, s, dag.Config{}, n, agentctx.CodeDAGDuplicate)
	})
}

func TestGraphViews(t *testing.T) {
	g := dag.NewGraph(diamond().Nodes())
	if strings.Join(g.Roots, ",") != id(1) || strings.Join(g.Leaves, ",") != id(4) {
		t.Fatalf("roots %v leaves %v", g.Roots, g.Leaves)
	}
	if len(g.CriticalPath) != 3 || g.CriticalPath[0] != id(1) || g.CriticalPath[2] != id(4) {
		t.Fatalf("critical path %v", g.CriticalPath)
	}
	if len(g.Edges) != 4 {
		t.Fatalf("edges %v", g.Edges)
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Nodes []struct {
			JTI     string   `json:"jti"`
			Kind    string   `json:"kind"`
			Pred    []string `json:"pred"`
			Iss     string   `json:"iss"`
			ExecAct string   `json:"exec_act"`
			Time    int64    `json:"time"`
		} `json:"nodes"`
		Edges []dag.Edge `json:"edges"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Nodes) != 4 || out.Nodes[3].ExecAct != "step4" || len(out.Nodes[3].Pred) != 2 ||
		out.Nodes[0].Time != t0.Unix() || out.Edges[0] != (dag.Edge{From: id(1), To: id(2)}) || out.Nodes[0].Pred == nil {
		t.Fatalf("%v %s", err, b)
	}
	dot := g.DOT()
	if !strings.Contains(dot, fmt.Sprintf("%q -> %q;", id(2), id(4))) || !strings.Contains(dot, "style=bold") {
		t.Fatalf("dot:\n%s", dot)
	}
	mm := g.Mermaid()
	if !strings.HasPrefix(mm, "flowchart LR\n") || strings.Count(mm, "-->") != 4 {
		t.Fatalf("mermaid:\n%s", mm)
	}
	txt := g.Text()
	if !strings.Contains(txt, "critical path: 00000000 -> 00000000 -> 00000000") {
		t.Fatalf("text:\n%s", txt)
	}
	// An ACT task appears once, in its record state; missing predecessors are listed.
	m := dag.Node{Kind: dag.KindACTMandate, JTI: id(8), WID: wid, Pred: []string{}, Time: t0}
	r := m
	r.Kind, r.Pred, r.ExecAct, r.Time = dag.KindACTRecord, []string{id(99)}, "read.data", t0.Add(time.Second)
	g2 := dag.NewGraph([]dag.Node{m, r})
	if len(g2.Nodes) != 1 || g2.Nodes[0].Kind != dag.KindACTRecord || len(g2.Missing) != 1 || g2.Missing[0] != id(99) {
		t.Fatalf("%+v", g2)
	}
}
