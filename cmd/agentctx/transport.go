package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/telemetry"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

// loadTrustSet reads a trust file as a Set: ECT/ACT issuers and
// wit_issuers (the transport commands need both).
func loadTrustSet(path string) (*trust.Set, error) {
	if path == "" {
		return nil, usagef("a trust file with \"issuers\" and \"wit_issuers\" (agentctx keys trust --wit-domain)", "--trust is required")
	}
	data, err := readFileArg("trust", path)
	if err != nil {
		return nil, err
	}
	s, err := trust.ParseFileWith(data, trust.Options{Clock: time.Now})
	if err != nil {
		return nil, usagef("", "--trust %s: %v", describeArg(path), err)
	}
	return s, nil
}

func cmdWIMSEWit(e *env, args []string) error {
	fs := newFlags(e, "wimse wit", "wimse wit --key ISSUER_KEY --sub WORKLOAD_ID --cnf PUBKEY_FILE [--kid KID] [--lifetime 1h] [--now T]")
	keyPath := fs.String("key", "", "the identity server's private key file (signs the WIT)")
	sub := fs.String("sub", "", "the workload identifier, e.g. spiffe://example.com/agent/a")
	cnf := fs.String("cnf", "", "the workload's public key file (JWK or PEM): cnf.jwk")
	kid := fs.String("kid", "", "the kid written in the WIT's header (default: the issuer key's)")
	iss := fs.String("iss", "", "an informational iss claim")
	lifetime := fs.Duration("lifetime", time.Hour, "time from iat to exp (at most 24h)")
	var now nowFlag
	fs.Var(&now, "now", "issue time: Unix seconds or RFC 3339 (default: the system clock)")
	fs.out()
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *sub == "" || *cnf == "" {
		return usagef("example: agentctx wimse wit --key issuer.jwk --sub spiffe://example.com/agent/a --cnf agent-a.pub.jwk", "--sub and --cnf are required")
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	if *kid != "" {
		if key, err = trust.NewSigningKey(key.Signer(), *kid); err != nil {
			return usagef("", "--kid: %v", err)
		}
	}
	pub, err := loadPublic(e, *cnf)
	if err != nil {
		return err
	}
	tok, err := wimse.IssueWIT(key, wimse.WITClaims{Subject: *sub, Issuer: *iss, Key: pub, Lifetime: *lifetime}, now.clock()())
	if err != nil {
		return failf("the WIT would not validate, so it was not signed: %s", describe(err))
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

func cmdWIMSEVerify(e *env, args []string) error {
	fs := newFlags(e, "wimse verify", "wimse verify --trust FILE [--now T] WIT|@FILE|-")
	trustPath := fs.String("trust", "", "trust file with the WIT issuers of each trust domain (wit_issuers)")
	var now nowFlag
	fs.Var(&now, "now", "verification time: Unix seconds or RFC 3339 (default: the system clock)")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ts, err := loadTrustSet(*trustPath)
	if err != nil {
		return err
	}
	tok, err := readInput(e, fs.Args())
	if err != nil {
		return err
	}
	v, err := wimse.NewValidator(wimse.Config{Trust: ts, Clock: now.clock()})
	if err != nil {
		return usagef("", "%v", err)
	}
	w, err := v.ValidateWIT(context.Background(), tok)
	if err != nil {
		b, _ := json.Marshal(failed(err))
		fmt.Fprintf(e.stdout, "%s\n", b)
		return silent(1)
	}
	jwk, _ := trust.PublicJWK(w.Key)
	var cnf map[string]any
	json.Unmarshal(jwk, &cnf)
	if w.KeyAlg != "" {
		cnf["alg"] = w.KeyAlg
	}
	delete(cnf, "use")
	b, _ := json.Marshal(struct {
		Valid bool           `json:"valid"`
		Sub   string         `json:"sub"`
		Cnf   map[string]any `json:"cnf"`
		Exp   int64          `json:"exp"`
	}{true, w.Subject, map[string]any{"jwk": cnf}, w.Expiry.Unix()})
	fmt.Fprintf(e.stdout, "%s\n", b)
	return nil
}

// headerList is a repeatable -H 'Name: value'.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "; ") }
func (h *headerList) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(name) == "" {
		return errors.New(`want 'Name: value'`)
	}
	*h = append(*h, v)
	return nil
}

func cmdCall(e *env, args []string) error {
	fs := newFlags(e, "call", "call [-X METHOD] [-d @FILE|-|DATA] [-H 'Name: value']... --key WORKLOAD_KEY --wit @WIT --iss ID --exec-act ACTION [--pred-token @T]... [--wid UUID] [--aud AUD]... [--proof wpt|httpsig] [--sign-response] --trust FILE [--ect-out FILE] URL")
	method := fs.String("X", "", "the request method (default GET, or POST with -d)")
	data := fs.String("d", "", "the request body: @FILE, - for standard input, or the data itself")
	var hdrs headerList
	fs.Var(&hdrs, "H", "a request field 'Name: value' (repeatable)")
	keyPath := fs.String("key", "", "the caller's workload key file (the key its WIT binds)")
	witArg := fs.String("wit", "", "the caller's WIT: the token, @FILE or -")
	iss := fs.String("iss", "", "the caller's identity (its WIT's sub)")
	execAct := fs.String("exec-act", "", "the caller's action, the exec_act of its ECT")
	var predTokens, aud stringList
	fs.Var(&predTokens, "pred-token", "a predecessor's ECT (token, @FILE or -), sent inline; its jti becomes a pred (repeatable)")
	wid := fs.String("wid", "", "workflow id (default: the first predecessor's)")
	fs.Var(&aud, "aud", "the ECT's audience: the server's identity, the ledger... (repeatable)")
	proofFlag := fs.String("proof", "wpt", "the proof of possession: wpt or httpsig")
	signResp := fs.Bool("sign-response", false, "ask for a signed response and refuse an unsigned one (with --proof httpsig)")
	trustPath := fs.String("trust", "", "trust file: the keys of the server's ECTs and the WIT issuers (wit_issuers)")
	ectOut := fs.String("ect-out", "", "write the server's response ECT to this file")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var now nowFlag
	fs.Var(&now, "now", "the time of the caller's tokens: Unix seconds or RFC 3339 (default: the system clock)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("example: agentctx call --key a.jwk --wit @a.wit --iss spiffe://example.com/agent/a --exec-act ask --aud spiffe://example.com/tool/b --trust trust.json http://127.0.0.1:8081/api", "give the URL")
	}
	target, err := url.Parse(fs.Arg(0))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return usagef("", "the URL %s is not an http or https URL", describeArg(fs.Arg(0)))
	}
	if *iss == "" || *execAct == "" || *witArg == "" {
		return usagef("", "--iss, --exec-act and --wit are required")
	}
	proofKind, err := transport.ParseProof(*proofFlag)
	if err != nil || proofKind == transport.ProofAny {
		return usagef("", "--proof must be wpt or httpsig")
	}
	if *signResp && proofKind != transport.ProofHTTPSig {
		return usagef("a signed response is asked for in the HTTP signature", "--sign-response goes with --proof httpsig")
	}
	ts, err := loadTrustSet(*trustPath)
	if err != nil {
		return err
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	wit, err := readToken(e, "wit", *witArg)
	if err != nil {
		return err
	}
	var body []byte
	switch {
	case *data == "-":
		s, err := readStdin(e, "the request body")
		if err != nil {
			return err
		}
		body = []byte(s)
	case strings.HasPrefix(*data, "@"):
		if body, err = readFileArg("d", (*data)[1:]); err != nil {
			return err
		}
	default:
		body = []byte(*data)
	}
	c := &transport.Call{ExecAct: *execAct, Audience: aud, WorkflowID: *wid}
	pwid := ""
	if c.Pred, c.PredTokens, pwid, err = readPredTokens(e, predTokens); err != nil {
		return err
	}
	if c.WorkflowID == "" {
		c.WorkflowID = pwid
	}
	if len(c.Audience) == 0 {
		return usagef("the server's identity, e.g. --aud spiffe://example.com/tool/b", "--aud is required: who will verify the ECT")
	}
	client, err := transport.NewClient(transport.ClientConfig{ID: *iss, Key: key, WIT: wit, Trust: ts, WITTrust: ts, Clock: now.clock(),
		Proof: proofKind, SignResponse: *signResp})
	if err != nil {
		return usagef("", "%v", err)
	}
	m := *method
	if m == "" {
		m = "GET"
		if *data != "" {
			m = "POST"
		}
	}
	res := &transport.Result{}
	c.Done = res
	ctx, cancel := context.WithTimeout(transport.WithCall(context.Background(), c), *timeout)
	defer cancel()
	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, m, target.String(), rb)
	if err != nil {
		return usagef("", "%v", err)
	}
	for _, h := range hdrs {
		name, val, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	resp, err := (&http.Client{Transport: client, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		var ae *agentctx.Error
		if errors.As(err, &ae) {
			return failf("the response does NOT verify: %s", describe(ae))
		}
		return usagef("check the URL and that the server is up", "the request failed: %v", stripURL(err))
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var p transport.Problem
		if json.Unmarshal(out, &p) == nil && p.Code != "" {
			fmt.Fprintf(e.stderr, "agentctx: the server refused the call: %d %s [%s, %s]\n", resp.StatusCode, safeText(p.Detail), p.Code, p.Rule)
			e.stdout.Write(out)
			return silent(1)
		}
		e.stdout.Write(out)
		return failf("the server answered %d", resp.StatusCode)
	}
	if *ectOut != "" && res.ResponseECT != nil {
		if err := os.WriteFile(*ectOut, []byte(splitFirst(resp.Header.Get(transport.HeaderExecutionContext))+"\n"), 0o644); err != nil {
			return fileError("ect-out", *ectOut, err)
		}
	}
	e.stdout.Write(out)
	return nil
}

// stripURL removes the URL wrapper of a client error (the message says the
// URL already).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func splitFirst(field string) string {
	first, _, _ := strings.Cut(field, ",")
	return strings.TrimSpace(first)
}

func cmdProxy(e *env, args []string) error {
	fs := newFlags(e, "proxy", "proxy --upstream URL --id ID --key KEY [--wit @WIT] --trust FILE [--listen ADDR] [--public-url URL] [--policy require|verify-if-present|off] [--proof wpt|httpsig|any] [--action 'METHOD /path=ACTION']... [--mcp] [--ledger URL [--ledger-id ID] | --db FILE --db-key KEY] [--spool FILE] [--approvals FILE] | --spool-status")
	upstream := fs.String("upstream", "", "the base URL of the service behind the proxy: a request for path P goes to <upstream>P")
	id := fs.String("id", "", "the proxy's identity: the audience callers' ECTs must name, the iss of the ECTs it signs")
	keyPath := fs.String("key", "", "the proxy's private key file (signs the response ECTs and responses)")
	witArg := fs.String("wit", "", "the proxy's own WIT (token, @FILE or -), for signed responses")
	trustPath := fs.String("trust", "", "trust file: callers' keys and the WIT issuers (wit_issuers)")
	listen := fs.String("listen", proxy.DefaultListen, "the address to listen on")
	publicURL := fs.String("public-url", "", "the base URL callers address (default http://LISTEN): proofs must name <public-url>P")
	policyFlag := fs.String("policy", "require", "require, verify-if-present or off")
	proofFlag := fs.String("proof", "any", "the proof accepted: wpt, httpsig or any")
	var actions stringList
	fs.Var(&actions, "action", "'METHOD /path=ACTION': the exec_act of the ECT signed for such requests (repeatable; METHOD may be *, /path/* is a prefix)")
	timeout := fs.Duration("upstream-timeout", proxy.DefaultUpstreamTimeout, "answer 504 when the upstream takes longer")
	signAll := fs.Bool("sign-responses", false, "sign every response (needs --wit), not only when the caller asks")
	legacy := fs.Bool("legacy", false, "accept the older forms (Workload-Proof-Token, @request-target)")
	outbound := fs.Bool("outbound", false, "the agent's forward proxy (HTTP_PROXY, or the base URL /<scheme>/<host>/<path>): attach its ECT, WIT, proof and mandate to each call, verify what comes back, record its tasks")
	var peerArgs stringList
	fs.Var(&peerArgs, "peer", "outbound: HOST=ID, the identity of the server at HOST (the aud of the agent's ECT); repeatable")
	wid := fs.String("wid", "", "outbound: the agent's workflow id (default: a new one)")
	mandateArg := fs.String("mandate", "", "outbound: the ACT-Mandate chain sent with every call (token, @FILE or -)")
	traceClaim := fs.Bool("trace-claim", false, "put the request span's traceparent into the ECTs the proxy signs (ect_ext.traceparent; tracing needs OTEL_EXPORTER_OTLP_ENDPOINT)")
	mcpMode := fs.Bool("mcp", false, "the upstream is an MCP server (Streamable HTTP): tools/call is the task mcp.<tool>, other methods pass without a record")
	ledgerURL := fs.String("ledger", "", "the audit service (agentctx serve) every signed token is appended to, through the spool")
	ledgerID := fs.String("ledger-id", "", "the audit ledger's ID, added to the aud of the signed ECTs (default: asked from --ledger at start)")
	dbPath := fs.String("db", "", "an embedded ledger (SQLite or postgres://) every signed token is appended to, through the spool")
	dbKey := fs.String("db-key", "", "the embedded ledger's signing key file (agentctx ledger init --key-out)")
	partial := fs.Bool("partial", false, "the embedded ledger accepts tokens whose predecessors it lacks, flagged partial (DAG-2): callers whose ECTs do not name the ledger")
	spoolPath := fs.String("spool", "", "the spool file (SQLite) of tokens on their way to the ledger (default: proxy-spool.db beside --key)")
	spoolStatus := fs.Bool("spool-status", false, "print the spool's pending, sent and refused tokens and exit")
	metricsListen := fs.String("metrics-listen", "", "serve /metrics (the spool's depth) on this address, apart from the proxied paths")
	spoolBackoff := fs.Duration("spool-max-backoff", proxy.DefaultMaxBackoff, "the longest wait between deliveries while the ledger is down")
	approvals := fs.String("approvals", "", "a JSON file of the human approvals granted ([{\"mandate\": JTI, \"action\": A, \"approver\": ID}], not writable by group or others), for actions a mandate's oversight requires; without it such actions are refused")
	spoolKeep := fs.Duration("spool-keep-sent", proxy.DefaultKeepSent, "how long a delivered token stays in the spool after its receipt came back (negative: for ever; pending and refused tokens always stay)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *spoolPath == "" && *keyPath != "" {
		*spoolPath = filepath.Join(filepath.Dir(*keyPath), "proxy-spool.db")
	}
	if *spoolStatus {
		return printSpoolStatus(e, *spoolPath)
	}
	if *approvals != "" {
		if *outbound {
			return usagef("approvals are checked where the mandate is used: on the proxy in front of the service", "--approvals is for the inbound proxy, not --outbound")
		}
		// Checked at start too: a file others may write is refused before
		// the proxy serves anything.
		if err := proxy.CheckApprovalFile(*approvals); err != nil {
			return usagef("", "--approvals: %v", err)
		}
	}
	if *ledgerURL != "" && *dbPath != "" {
		return usagef("choose one", "--ledger and --db both given: the tokens go to one ledger")
	}
	if (*dbPath == "") != (*dbKey == "") {
		return usagef("an embedded ledger needs its signing key", "--db and --db-key go together")
	}
	var up *url.URL
	var err error
	if *outbound {
		if *upstream != "" || *mcpMode {
			return usagef("the outbound proxy forwards to the URLs the agent calls", "--outbound takes no --upstream or --mcp")
		}
		if *witArg == "" || len(peerArgs) == 0 {
			return usagef("example: agentctx proxy --outbound --id spiffe://example.com/agent/a --key a.jwk --wit @a.wit --trust trust.json --peer 127.0.0.1:8081=spiffe://example.com/tool/b",
				"--outbound needs the agent's --wit and at least one --peer HOST=ID")
		}
	} else if up, err = url.Parse(*upstream); err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return usagef("example: --upstream http://127.0.0.1:9000", "--upstream must be an http or https base URL")
	}
	if *id == "" {
		return usagef("", "--id is required: the proxy's identity (outbound: the agent's)")
	}
	pol, err := transport.ParsePolicy(*policyFlag)
	if err != nil {
		return usagef("", "--policy: %v", err)
	}
	proofKind, err := transport.ParseProof(*proofFlag)
	if err != nil {
		return usagef("", "--proof: %v", err)
	}
	var routes []proxy.Route
	for _, a := range actions {
		rt, err := proxy.ParseRoute(a)
		if err != nil {
			return usagef("", "--action %s: %v", describeArg(a), err)
		}
		routes = append(routes, rt)
	}
	ts, err := loadTrustSet(*trustPath)
	if err != nil {
		return err
	}
	key, err := loadKey(e, *keyPath)
	if err != nil {
		return err
	}
	wit := ""
	if *witArg != "" {
		if wit, err = readToken(e, "wit", *witArg); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usagef("choose another --listen address", "--listen %s: %v", describeArg(*listen), err)
	}
	pub := *publicURL
	if pub == "" {
		pub = "http://" + ln.Addr().String()
	}
	pu, err := url.Parse(pub)
	if err != nil || pu.Host == "" {
		ln.Close()
		return usagef("", "--public-url must be a base URL")
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	// SPEC: BND-9 spans only when an OTLP endpoint is configured.
	tp, shutdown, err := telemetry.FromEnv(context.Background(), "agentctx-proxy")
	if err != nil {
		ln.Close()
		return usagef("check the OTEL_EXPORTER_OTLP_* variables", "tracing: %v", err)
	}
	defer shutdown(context.Background())
	// SPEC: BND-3 every signed token goes to the spool, then to the ledger.
	var sender proxy.Sender
	switch {
	case *ledgerURL != "":
		if *ledgerID == "" {
			if *ledgerID, err = askLedgerID(*ledgerURL); err != nil {
				ln.Close()
				return usagef("give --ledger-id when the ledger is not reachable at start", "--ledger %s: %v", describeArg(*ledgerURL), err)
			}
		}
		sender = &proxy.HTTPSender{URL: *ledgerURL}
	case *dbPath != "":
		own := trust.NewSet()
		if err := own.Add(trust.Binding{ID: *id}, key.Public()); err != nil {
			ln.Close()
			return failf("%v", err)
		}
		lf := ledgerFlags{db: *dbPath, key: *dbKey, partial: *partial, resolver: trust.Multi(own, ts)}
		l, store, err := openLedger(context.Background(), e, &lf, true, true)
		if err != nil {
			ln.Close()
			return err
		}
		defer store.Close()
		*ledgerID = l.Meta().ID
		sender = &proxy.LedgerSender{Ledger: l}
	}
	var sink transport.Sink
	if sender != nil {
		sp, err := proxy.OpenSpool(proxy.SpoolConfig{Path: *spoolPath, Sender: sender, Clock: time.Now, MaxBackoff: *spoolBackoff, KeepSent: *spoolKeep, Log: log})
		if err != nil {
			ln.Close()
			return failf("%v", err)
		}
		defer sp.Close()
		sink = sp
		if *metricsListen != "" {
			mln, err := net.Listen("tcp", *metricsListen)
			if err != nil {
				ln.Close()
				return usagef("choose another --metrics-listen address", "--metrics-listen %s: %v", describeArg(*metricsListen), err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /metrics", sp.ServeMetrics)
			ms := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go ms.Serve(mln)
			defer ms.Close()
		}
	}
	var h http.Handler
	if *outbound {
		peers := map[string]string{}
		for _, p := range peerArgs {
			host, pid, ok := strings.Cut(p, "=")
			if !ok || host == "" || pid == "" {
				ln.Close()
				return usagef("give HOST=ID, e.g. --peer 127.0.0.1:8081=spiffe://example.com/tool/b", "--peer %s is not HOST=ID", describeArg(p))
			}
			peers[host] = pid
		}
		mandate := ""
		if *mandateArg != "" {
			if mandate, err = readToken(e, "mandate", *mandateArg); err != nil {
				ln.Close()
				return err
			}
		}
		if *wid == "" {
			*wid = ect.NewID() // one workflow for this agent's run
		}
		h, err = proxy.NewOutbound(proxy.OutboundConfig{Client: transport.ClientConfig{ID: *id, Key: key, WIT: wit, Trust: ts, WITTrust: ts, Clock: time.Now, Proof: proofKind},
			Peers: peers, Routes: routes, WorkflowID: *wid, Mandate: mandate, Sink: sink, LedgerID: *ledgerID, Log: log})
	} else {
		sc := transport.ServerConfig{ID: *id, Key: key, WIT: wit, Trust: ts, WITTrust: ts, Clock: time.Now,
			Policy: pol, Proof: proofKind, SignResponses: *signAll, Legacy: *legacy, Log: log, Sink: sink, LedgerID: *ledgerID,
			TracerProvider: tp, TraceClaim: *traceClaim}
		if *approvals != "" {
			sc.Approve = (&proxy.ApprovalFile{Path: *approvals}).Approve
		}
		h, err = proxy.New(proxy.Config{ServerConfig: sc, Upstream: up, PublicURL: pu, Routes: routes, UpstreamTimeout: *timeout, MCP: *mcpMode})
	}
	if err != nil {
		ln.Close()
		return usagef("", "%v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if *outbound {
		fmt.Fprintf(e.stdout, "agentctx: outbound proxy %s listening at http://%s (HTTP_PROXY=http://%[2]s, or http://%[2]s/<http|https>/<host>/<path>) workflow %s\n", *id, ln.Addr(), *wid)
	} else {
		fmt.Fprintf(e.stdout, "agentctx: proxy %s listening at http://%s (public %s) in front of %s\n", *id, ln.Addr(), pu, up)
	}
	if f, ok := e.stdout.(interface{ Sync() error }); ok {
		f.Sync()
	}
	return serveUntilSignal(srv, func() error { return srv.Serve(ln) }, "the proxy")
}

// askLedgerID reads the audit service's ledger ID from GET /v1/key.
func askLedgerID(base string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(strings.TrimSuffix(base, "/") + "/v1/key")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var k struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&k); err != nil || resp.StatusCode != 200 || k.ID == "" {
		return "", fmt.Errorf("GET /v1/key answered %d without a ledger id", resp.StatusCode)
	}
	return k.ID, nil
}

// printSpoolStatus prints the spool's counts (BND-3).
func printSpoolStatus(e *env, path string) error {
	if path == "" {
		return usagef("give --spool FILE (or --key, beside which it lives)", "no spool file to read")
	}
	if err := mustExist("spool", path); err != nil {
		return err
	}
	st, err := proxy.ReadSpoolStatus(context.Background(), path)
	if err != nil {
		return failf("%v", err)
	}
	fmt.Fprintf(e.stdout, "spool %s: %d pending, %d sent, %d refused", path, st.Pending, st.Sent, st.Refused)
	codes := make([]string, 0, len(st.ByCode))
	for c := range st.ByCode {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for i, c := range codes {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(e.stdout, "%s%s %d", sep, c, st.ByCode[c])
	}
	if len(codes) > 0 {
		fmt.Fprint(e.stdout, ")")
	}
	if st.OldestPendingMillis > 0 {
		fmt.Fprintf(e.stdout, "; oldest pending since %s", time.UnixMilli(st.OldestPendingMillis).UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(e.stdout)
	return nil
}
