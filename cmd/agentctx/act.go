package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/trust"
)

// capList is the repeatable --cap ACTION[=JSON_CONSTRAINTS] flag.
type capList []act.Capability

func (c *capList) String() string { return fmt.Sprint(len(*c)) }
func (c *capList) Set(v string) error {
	action, constraints, hasConstraints := strings.Cut(v, "=")
	cp := act.Capability{Action: action}
	if hasConstraints {
		if !json.Valid([]byte(constraints)) || !strings.HasPrefix(strings.TrimSpace(constraints), "{") {
			return fmt.Errorf("constraints of %q must be a JSON object, e.g. read.data='{\"max_calls\":10}'", action)
		}
		cp.Constraints = json.RawMessage(constraints)
	}
	*c = append(*c, cp)
	return nil
}

// readChain reads a CHAIN argument: tokens separated by commas, nearest
// first (the ACT-Mandate header form), or @FILE holding that text.
// readChain reads a chain of tokens, leaf first, comma-separated (the
// ACT-Mandate header form), given as for every token: the value, @FILE or -.
func readChain(e *env, flagName, arg string) ([]string, error) {
	if arg == "" {
		return nil, usagef("give the mandate chain, comma-separated, leaf first, or @FILE or -", "--%s is required", flagName)
	}
	v, err := readToken(e, flagName, arg)
	if err != nil {
		return nil, err
	}
	first, rest := splitLine(v)
	return append([]string{first}, rest...), nil
}

func parseMandateChain(e *env, flagName, arg string) ([]string, *act.Result, error) {
	chain, err := readChain(e, flagName, arg)
	if err != nil {
		return nil, nil, err
	}
	m, err := act.ParseUnverified(chain[0])
	if err != nil {
		return nil, nil, usagef("", "--%s: the mandate does not parse: %s", flagName, describe(err))
	}
	if m.Phase != act.PhaseMandate {
		return nil, nil, usagef("", "--%s: the first token of the chain is a %s, not a mandate", flagName, m.Phase)
	}
	return chain, m, nil
}

func lifetimeOK(d time.Duration) error {
	if d <= 0 || d%time.Second != 0 {
		return usagef("example: --lifetime 15m", "--lifetime must be a positive whole number of seconds")
	}
	return nil
}

func cmdACTMandate(e *env, args []string) error {
	fs := newFlags(e, "act mandate", "act mandate --key FILE --iss ISS --sub SUB --aud AUD... --purpose TEXT [--created-by X] [--sensitivity S] --cap ACTION[=JSON_CONSTRAINTS]... [--wid UUID] [--max-depth N] [--approval-required ACTION]... [--approver ID] [--lifetime 15m] [--now UNIX]")
	keyPath := fs.String("key", "", "private key file of the authorizing agent (iss)")
	iss := fs.String("iss", "", "the authorizing agent")
	sub := fs.String("sub", "", "the agent authorized to act (it signs the record)")
	var aud, approval stringList
	var caps capList
	fs.Var(&aud, "aud", "who may accept the mandate (repeatable)")
	fs.Var(&caps, "cap", `an allowed action, optionally with constraints: read.data='{"max_calls":10}' (repeatable)`)
	fs.Var(&approval, "approval-required", "an action that needs a human approval before execution (repeatable)")
	approver := fs.String("approver", "", "who approves the actions of --approval-required")
	purpose := fs.String("purpose", "", "what the task is for")
	createdBy := fs.String("created-by", "", "who originated the task, e.g. the human principal")
	sensitivity := fs.String("sensitivity", "", "data sensitivity: public, internal, confidential or restricted")
	wid := fs.String("wid", "", "workflow id (UUID)")
	jti := fs.String("jti", "", "task id (UUID; default: a new one)")
	maxDepth := fs.Int("max-depth", 0, "how many delegation hops the mandate allows (default 3)")
	lifetime := fs.Duration("lifetime", act.DefaultMandateLifetime, "time from iat to exp")
	fs.out()
	var now nowFlag
	fs.Var(&now, "now", "issue time: Unix seconds or RFC 3339 (default: the system clock)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if err := lifetimeOK(*lifetime); err != nil {
		return err
	}
	if *maxDepth < 0 {
		return usagef("", "--max-depth must not be negative")
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	t := now.clock()().Truncate(time.Second)
	m := &act.Mandate{
		Issuer: *iss, Subject: *sub, Audience: aud, IssuedAt: t, Expiry: t.Add(*lifetime), WorkflowID: *wid, ID: *jti,
		Task:         act.Task{Purpose: *purpose, CreatedBy: *createdBy, DataSensitivity: *sensitivity},
		Capabilities: caps,
	}
	if *maxDepth > 0 {
		m.Delegation = &act.Delegation{MaxDepth: *maxDepth, Chain: []act.Link{}}
	}
	if len(approval) > 0 || *approver != "" {
		m.Oversight = &act.Oversight{ApprovalRequired: approval, Approver: *approver}
	}
	tok, err := act.NewMandate(key, m, t)
	if err != nil {
		return failf("the mandate would not verify, so it was not signed: %s", describe(err))
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

func cmdACTDelegate(e *env, args []string) error {
	fs := newFlags(e, "act delegate", "act delegate --key FILE --parent CHAIN --sub SUB --aud AUD... --cap ACTION[=JSON]... [--purpose TEXT] [--max-depth N] [--lifetime D] [--now UNIX]")
	keyPath := fs.String("key", "", "private key file of the delegating agent (the parent's sub)")
	parentArg := fs.String("parent", "", "the parent mandate followed by its own parents, comma-separated, nearest first; or @FILE, or -")
	sub := fs.String("sub", "", "the agent the narrower mandate authorizes")
	var aud stringList
	var caps capList
	fs.Var(&aud, "aud", "who may accept the mandate (repeatable)")
	fs.Var(&caps, "cap", "an allowed action (a subset of the parent's), optionally with tighter constraints (repeatable)")
	purpose := fs.String("purpose", "", "what the delegated task is for (default: the parent's purpose)")
	maxDepth := fs.Int("max-depth", 0, "a smaller delegation limit (default: the parent's)")
	lifetime := fs.Duration("lifetime", act.DefaultMandateLifetime, "time from iat to exp, capped at the parent's exp")
	fs.out()
	var now nowFlag
	fs.Var(&now, "now", "issue time: Unix seconds or RFC 3339 (default: the system clock)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if err := lifetimeOK(*lifetime); err != nil {
		return err
	}
	chain, parent, err := parseMandateChain(e, "parent", *parentArg)
	if err != nil {
		return err
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	t := now.clock()().Truncate(time.Second)
	task := parent.Mandate.Task
	if *purpose != "" {
		task = act.Task{Purpose: *purpose, CreatedBy: task.CreatedBy, DataSensitivity: task.DataSensitivity}
	}
	exp := t.Add(*lifetime)
	if exp.After(parent.Mandate.Expiry) {
		exp = parent.Mandate.Expiry
	}
	child := &act.Mandate{Subject: *sub, Audience: aud, IssuedAt: t, Expiry: exp, Task: task, Capabilities: caps}
	if *maxDepth > 0 {
		child.Delegation = &act.Delegation{MaxDepth: *maxDepth}
	}
	tok, err := act.Delegate(key, parent, child, t)
	if err != nil {
		return failf("the delegated mandate was refused and not signed: %s", describe(err))
	}
	fmt.Fprintln(e.stdout, strings.Join(append([]string{tok}, chain...), ","))
	return nil
}

func cmdACTRecord(e *env, args []string) error {
	fs := newFlags(e, "act record", "act record --key FILE --mandate CHAIN --exec-act ACTION --status completed|failed|partial [--pred JTI]... [--input FILE] [--output FILE] [--err-code C --err-message M] [--now UNIX]")
	keyPath := fs.String("key", "", "private key file of the executing agent (the mandate's sub)")
	mandateArg := fs.String("mandate", "", "the mandate (followed by its parents, which are ignored here), or @FILE, or -")
	execAct := fs.String("exec-act", "", "the action performed, one of the mandate's capabilities")
	status := fs.String("status", "", "completed, failed or partial")
	var pred stringList
	fs.Var(&pred, "pred", "jti of a predecessor task (repeatable)")
	input := fs.String("input", "", "file holding the task's exact input bytes (sets inp_hash)")
	output := fs.String("output", "", "file holding the task's exact output bytes (sets out_hash)")
	errCode := fs.String("err-code", "", "error code of a failed execution")
	errMessage := fs.String("err-message", "", "error message of a failed execution")
	fs.out()
	var now nowFlag
	fs.Var(&now, "now", "execution end time (exec_ts): Unix seconds or RFC 3339 (default: the system clock)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *errMessage != "" && *errCode == "" {
		return usagef("", "--err-message needs --err-code")
	}
	_, m, err := parseMandateChain(e, "mandate", *mandateArg)
	if err != nil {
		return err
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	// SPEC: ACT-P2 the signer is the mandate's sub; a did:key sub is checked
	// against the key itself.
	sub := m.Mandate.Subject
	if strings.HasPrefix(sub, "did:key:") {
		k, err := trust.ParseDIDKey(sub)
		if err != nil || !sameKey(k, key.Public()) {
			return usagef("sign with the key of the mandate's sub", "the key is not the one of the mandate's sub %q", sub)
		}
	}
	in := act.RecordInput{ExecAct: *execAct, Pred: pred, Status: *status}
	if in.InputHash, err = hashFile("input", *input); err != nil {
		return err
	}
	if in.OutputHash, err = hashFile("output", *output); err != nil {
		return err
	}
	if *errCode != "" {
		in.Err = &act.ExecError{Code: *errCode, Message: *errMessage}
	}
	t := now.clock()().Truncate(time.Second)
	in.ExecTS = t
	tok, err := act.NewRecord(key, sub, m, in, t)
	if err != nil {
		return failf("the record would not verify, so it was not signed: %s", describe(err))
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

func sameKey(a, b trust.Key) bool {
	ja, err1 := trust.Thumbprint(a.Public)
	jb, err2 := trust.Thumbprint(b.Public)
	return err1 == nil && err2 == nil && ja == jb
}
