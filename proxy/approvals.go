package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/agentctx/agentctx/act"
)

// ApprovalFile supplies the human approvals of actions that mandates'
// oversight requires (transport.ServerConfig.Approve, ACT-M10) from a JSON
// file that people, or the approval tool they use, write: an array of
//
//	{"mandate": "<the mandate's jti>", "action": "<action>", "approver": "<who approved>"}
//
// Whoever can write the file approves actions, so a file that its group or
// others may write is refused (CheckApprovalFile). The file is read on each
// request that needs an approval, so an approval written while the proxy
// runs counts from the next request, and one removed stops counting.
type ApprovalFile struct {
	// Path is the file's path.
	Path string
}

// approvalEntry is one line of the approvals file.
type approvalEntry struct {
	Mandate  string `json:"mandate"`
	Action   string `json:"action"`
	Approver string `json:"approver"`
}

// CheckApprovalFile reports why the approvals file at path cannot be used:
// it cannot be read, others may write it, or it is not a valid approvals
// array.
func CheckApprovalFile(path string) error {
	_, err := readApprovals(path)
	return err
}

func readApprovals(path string) ([]approvalEntry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("approvals file: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("approvals file %s may be written by its group or others (mode %v), and whoever writes it approves actions: chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("approvals file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var es []approvalEntry
	if err := dec.Decode(&es); err != nil {
		return nil, fmt.Errorf("approvals file %s is not a JSON array of {\"mandate\", \"action\", \"approver\"}: %v", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("approvals file %s holds more than one JSON value", path)
	}
	for i, e := range es {
		if e.Mandate == "" || e.Action == "" || e.Approver == "" {
			return nil, fmt.Errorf("approvals file %s: entry %d needs mandate, action and approver", path, i+1)
		}
	}
	return es, nil
}

// Approve implements transport.ServerConfig.Approve: the approval of action
// under mandate m the file holds, from the approver m's oversight names
// when it names one; nil when there is none.
func (f *ApprovalFile) Approve(_ *http.Request, m *act.Mandate, action string) (*act.Approval, error) {
	es, err := readApprovals(f.Path)
	if err != nil {
		return nil, err
	}
	want := ""
	if m.Oversight != nil {
		want = m.Oversight.Approver
	}
	for _, e := range es {
		if strings.EqualFold(e.Mandate, m.ID) && e.Action == action && (want == "" || e.Approver == want) {
			return &act.Approval{MandateID: e.Mandate, Action: e.Action, Approver: e.Approver}, nil
		}
	}
	return nil, nil
}
