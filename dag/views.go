package dag

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/agentctx/agentctx/internal/wire"
)

// Edge is one dependency: From is a predecessor of To.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Graph is a workflow's task graph with its computed views (spec/dag.md
// "Views"): nothing here is stored, everything is derived from the nodes.
type Graph struct {
	Nodes        []Node   // one per task, in time order; an ACT task shows its record when there is one
	Edges        []Edge   // pred -> task, including edges from predecessors not in Nodes
	Roots        []string // tasks without predecessors
	Leaves       []string // tasks no other task names as predecessor
	CriticalPath []string // the longest chain of dependent tasks, root first
	Missing      []string // predecessors named but not present
}

// NewGraph builds the graph of nodes (typically one workflow).
func NewGraph(nodes []Node) *Graph {
	byID := map[string]int{}
	g := &Graph{}
	for _, n := range nodes {
		k := norm(n.JTI)
		if i, ok := byID[k]; ok {
			if n.Kind == KindACTRecord { // the record is the task's later state
				g.Nodes[i] = n
			}
			continue
		}
		byID[k] = len(g.Nodes)
		g.Nodes = append(g.Nodes, n)
	}
	sort.SliceStable(g.Nodes, func(i, j int) bool {
		if !g.Nodes[i].Time.Equal(g.Nodes[j].Time) {
			return g.Nodes[i].Time.Before(g.Nodes[j].Time)
		}
		return norm(g.Nodes[i].JTI) < norm(g.Nodes[j].JTI)
	})
	for i, n := range g.Nodes {
		byID[norm(n.JTI)] = i
	}
	named := map[string]bool{}
	missing := map[string]bool{}
	for _, n := range g.Nodes {
		if len(n.Pred) == 0 {
			g.Roots = append(g.Roots, n.JTI)
		}
		for _, p := range n.Pred {
			g.Edges = append(g.Edges, Edge{From: p, To: n.JTI})
			named[norm(p)] = true
			if _, ok := byID[norm(p)]; !ok && !missing[norm(p)] {
				missing[norm(p)] = true
				g.Missing = append(g.Missing, p)
			}
		}
	}
	for _, n := range g.Nodes {
		if !named[norm(n.JTI)] {
			g.Leaves = append(g.Leaves, n.JTI)
		}
	}
	g.CriticalPath = g.longestPath(byID)
	return g
}

// longestPath returns the longest chain by number of tasks (ties: the one
// ending earliest in the node order; along the chain, the first predecessor
// in pred order), in O(V + E): depths are computed in a topological order
// (Kahn), each node pulling from its predecessors. A node on a cycle, which
// a verified store cannot hold, counts as a chain of one.
func (g *Graph) longestPath(byID map[string]int) []string {
	order := g.topoOrder(byID)
	depth := make([]int, len(g.Nodes))
	prev := make([]int, len(g.Nodes))
	for _, i := range order {
		depth[i], prev[i] = 1, -1
		for _, p := range g.Nodes[i].Pred {
			if j, ok := byID[norm(p)]; ok && depth[j]+1 > depth[i] {
				depth[i], prev[i] = depth[j]+1, j
			}
		}
	}
	best := -1
	for i := range g.Nodes {
		if depth[i] == 0 { // on a cycle: a chain of one
			depth[i], prev[i] = 1, -1
		}
		if best < 0 || depth[i] > depth[best] {
			best = i
		}
	}
	var path []string
	for i := best; i >= 0; i = prev[i] {
		path = append(path, g.Nodes[i].JTI)
	}
	slices.Reverse(path)
	return path
}

// topoOrder returns the indexes of the nodes in a topological order of the
// edges between them (predecessors first); nodes on a cycle are absent.
func (g *Graph) topoOrder(byID map[string]int) []int {
	indeg := make([]int, len(g.Nodes))
	succ := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, p := range n.Pred {
			if j, ok := byID[norm(p)]; ok {
				indeg[i]++
				succ[j] = append(succ[j], i)
			}
		}
	}
	return kahn(indeg, succ)
}

type jsonNode struct {
	Node
	Time int64 `json:"time"`
}

// MarshalJSON writes {"nodes":[...],"edges":[...],"roots":[...],
// "leaves":[...],"critical_path":[...],"missing":[...]}; each node has jti,
// kind, pred, iss, exec_act, time (unix seconds) and its other set fields.
func (g *Graph) MarshalJSON() ([]byte, error) {
	nodes := make([]jsonNode, len(g.Nodes))
	for i, n := range g.Nodes {
		if n.Pred == nil {
			n.Pred = []string{}
		}
		nodes[i] = jsonNode{n, n.Time.Unix()}
	}
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	edges := g.Edges
	if edges == nil {
		edges = []Edge{}
	}
	return json.Marshal(struct {
		Nodes        []jsonNode `json:"nodes"`
		Edges        []Edge     `json:"edges"`
		Roots        []string   `json:"roots"`
		Leaves       []string   `json:"leaves"`
		CriticalPath []string   `json:"critical_path"`
		Missing      []string   `json:"missing"`
	}{nodes, edges, nz(g.Roots), nz(g.Leaves), nz(g.CriticalPath), nz(g.Missing)})
}

// order returns the node indexes with the roots first: a topological order
// (predecessors before successors, ties in time order), then any node on a
// cycle.
func (g *Graph) order() []int {
	byID := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		byID[norm(n.JTI)] = i
	}
	o := g.topoOrder(byID)
	if len(o) < len(g.Nodes) {
		in := make([]bool, len(g.Nodes))
		for _, i := range o {
			in[i] = true
		}
		for i := range g.Nodes {
			if !in[i] {
				o = append(o, i)
			}
		}
	}
	return o
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func label(n Node) string {
	act := wire.Printable(n.ExecAct)
	if act == "" {
		act = "mandate"
	}
	l := fmt.Sprintf("%s\\n%s %s", act, n.Kind, wire.Printable(short(n.JTI)))
	if n.Status == "failed" {
		l += "\\nFAILED"
	}
	if n.Partial {
		l += "\\nPARTIAL"
	}
	return l
}

func (g *Graph) onPath() map[string]bool {
	m := map[string]bool{}
	for _, id := range g.CriticalPath {
		m[norm(id)] = true
	}
	return m
}

// DOT renders the graph for Graphviz; the critical path is drawn bold and
// missing predecessors dashed.
func (g *Graph) DOT() string {
	var b strings.Builder
	crit := g.onPath()
	b.WriteString("digraph workflow {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n")
	for _, n := range g.Nodes {
		style := ""
		if crit[norm(n.JTI)] {
			style = ", style=bold"
		}
		fmt.Fprintf(&b, "  %q [label=%q%s];\n", n.JTI, strings.ReplaceAll(label(n), `\n`, "\n"), style)
	}
	for _, m := range g.Missing {
		fmt.Fprintf(&b, "  %q [label=%q, style=dashed];\n", m, "missing "+short(m))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %q -> %q;\n", e.From, e.To)
	}
	b.WriteString("}\n")
	return b.String()
}

// Mermaid renders the graph as a Mermaid flowchart.
func (g *Graph) Mermaid() string {
	var b strings.Builder
	ids := map[string]string{}
	id := func(jti string) string {
		k := norm(jti)
		if v, ok := ids[k]; ok {
			return v
		}
		v := fmt.Sprintf("n%d", len(ids))
		ids[k] = v
		return v
	}
	b.WriteString("flowchart LR\n")
	for _, i := range g.order() { // roots first
		n := g.Nodes[i]
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", id(n.JTI), strings.ReplaceAll(strings.ReplaceAll(label(n), `"`, "'"), `\n`, "<br/>"))
	}
	for _, m := range g.Missing {
		fmt.Fprintf(&b, "  %s[/\"missing %s\"/]\n", id(m), wire.Printable(short(m)))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s --> %s\n", id(e.From), id(e.To))
	}
	return b.String()
}

// Text renders the graph for a terminal: every task with its predecessors,
// then roots, leaves and the critical path.
func (g *Graph) Text() string {
	var b strings.Builder
	for _, i := range g.order() { // roots first
		n := g.Nodes[i]
		act := n.ExecAct
		if act == "" {
			act = "(mandate)"
		}
		after := "root"
		if len(n.Pred) > 0 {
			ps := make([]string, len(n.Pred))
			for i, p := range n.Pred {
				ps[i] = short(p)
			}
			after = "after " + strings.Join(ps, ", ")
		}
		extra := ""
		if n.Status != "" {
			extra = " status=" + wire.Printable(n.Status)
		}
		if n.Partial {
			extra += " PARTIAL"
		}
		who := n.Issuer
		if n.Kind == KindACTRecord && n.Subject != "" {
			who = n.Subject // a record is the executor's statement
		}
		fmt.Fprintf(&b, "  %s  %-12s %-20s by %s (%s)%s\n", wire.Printable(n.JTI), n.Kind, wire.Printable(act), wire.Printable(who), wire.Printable(after), extra)
	}
	shorts := func(ids []string) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = short(id)
		}
		return strings.Join(out, ", ")
	}
	fmt.Fprintf(&b, "  roots: %s\n  leaves: %s\n  critical path: %s\n", wire.Printable(shorts(g.Roots)), wire.Printable(shorts(g.Leaves)), wire.Printable(strings.ReplaceAll(shorts(g.CriticalPath), ", ", " -> ")))
	if len(g.Missing) > 0 {
		fmt.Fprintf(&b, "  missing predecessors: %s\n", wire.Printable(shorts(g.Missing)))
	}
	return b.String()
}
