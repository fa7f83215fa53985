package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentctx/agentctx/internal/telemetry"
	"github.com/agentctx/agentctx/server"
)

// applyConfig sets every flag not given on the command line from a config
// file (JSON or YAML, the flags' names as keys); an unknown key is an
// error naming it (SVC-1). Flags and AGENTCTX_* win: the file is applied
// only to flags still unset after them.
func applyConfig(fs *flags, path string) error {
	data, err := readFileArg("config", path)
	if err != nil {
		return err
	}
	var m map[string]any
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		err = dec.Decode(&m)
	} else {
		err = yaml.Unmarshal(data, &m)
	}
	if err != nil {
		return usagef("give a JSON object or YAML mapping of flag names to values", "--config %s: %v", describeArg(path), err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for k, v := range m {
		fl := fs.Lookup(k)
		if fl == nil || k == "config" {
			return usagef(fmt.Sprintf("run \"agentctx %s -h\" for the names", fs.Name()), "--config %s: unknown key %q", describeArg(path), k)
		}
		if set[k] {
			continue
		}
		name := "AGENTCTX_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		if v, ok := fs.e.getenv(name); ok && v != "" {
			continue // already taken from the environment
		}
		if err := fl.Value.Set(fmt.Sprint(v)); err != nil {
			return usagef("", "--config %s: %s: %v", describeArg(path), k, err)
		}
	}
	return nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func cmdServe(e *env, args []string) error {
	fs := newFlags(e, "serve", "serve --db FILE|postgres://... --key LEDGER_KEY --trust TRUST [--listen ADDR] [--config FILE] [--read-tokens FILE] [--client-ca FILE] [--tls-cert F --tls-key F] [--insecure-listen]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database (as ledger init made it)")
	fs.StringVar(&f.key, "key", "", "the ledger's signing key file")
	fs.StringVar(&f.trust, "trust", "", "trust file of the agents whose tokens are appended")
	fs.BoolVar(&f.anyIssuer, "any-issuer", false, "trust a plain JWKS or PEM file for every issuer")
	fs.BoolVar(&f.partial, "partial", false, "accept tokens whose predecessors are missing, flagged partial (DAG-2)")
	listen := fs.String("listen", "127.0.0.1:8080", "the address to listen on")
	config := fs.String("config", "", "a JSON or YAML file with the same names as the flags (flags and AGENTCTX_* win)")
	readTokens := fs.String("read-tokens", "", "a file of bearer tokens, one per line, that may read entries, tasks and workflows")
	clientCA := fs.String("client-ca", "", "PEM CA certificates: a client certificate from them may read too")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM)")
	insecure := fs.Bool("insecure-listen", false, "serve on a non-loopback address without TLS or read credentials (you say so explicitly)")
	logFormat := fs.String("log-format", "text", "text or json")
	batchWindow := fs.Duration("batch-window", server.DefaultBatchWindow, "group commit: how long a batch waits for more appends")
	batchMax := fs.Int("batch-max", server.DefaultBatchMax, "group commit: the most tokens in one batch")
	maxBody := fs.Int64("max-body", server.DefaultMaxBody, "the largest request body, in bytes (SVC-10)")
	maxTokens := fs.Int("max-tokens", server.DefaultMaxTokens, "the most tokens in one append request")
	maxToken := fs.Int("max-token", server.DefaultMaxToken, "the largest token, in bytes")
	maxInFlight := fs.Int("max-in-flight", server.DefaultMaxInFlight, "the most tokens being appended at once; beyond it appends get 503")
	var witnesses stringList
	fs.Var(&witnesses, "witness", "a witness that cosigns each new checkpoint, NAME=URL=VKEY (repeatable)")
	pageMaxNodes := fs.Int("page-max-nodes", server.DefaultPageMaxNodes, "the largest workflow the web page draws without asking first")
	headerTimeout := fs.Duration("header-timeout", 5*time.Second, "how long a client may take to send the request headers")
	requestTimeout := fs.Duration("request-timeout", 30*time.Second, "how long a request may take to read and to answer")
	idleTimeout := fs.Duration("idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *config != "" {
		if err := applyConfig(fs, *config); err != nil {
			return err
		}
	}
	var handler slog.Handler = slog.NewTextHandler(e.stderr, nil)
	switch *logFormat {
	case "text":
	case "json":
		handler = slog.NewJSONHandler(e.stderr, nil)
	default:
		return usagef("", "--log-format must be text or json")
	}
	log := slog.New(handler)
	if (*tlsCert == "") != (*tlsKey == "") {
		return usagef("", "--tls-cert and --tls-key go together")
	}
	var tokens []string
	if *readTokens != "" {
		data, err := readFileArg("read-tokens", *readTokens)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(*readTokens); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(e.stderr, "agentctx: warning: --read-tokens file has permissions %#o; use 0600\n", fi.Mode().Perm())
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				tokens = append(tokens, l)
			}
		}
		if len(tokens) == 0 {
			return usagef("", "--read-tokens holds no token")
		}
	}
	// SPEC: SVC-8 off loopback: TLS and a read credential, or --insecure-listen.
	if !isLoopbackAddr(*listen) && !*insecure && (*tlsCert == "" || len(tokens) == 0 && *clientCA == "") {
		return usagef("configure --tls-cert/--tls-key and --read-tokens or --client-ca, or say --insecure-listen",
			"--listen %s is not a loopback address: reads would be open to the network", describeArg(*listen))
	}
	for name, d := range map[string]time.Duration{"header-timeout": *headerTimeout, "request-timeout": *requestTimeout, "idle-timeout": *idleTimeout} {
		if d <= 0 {
			return usagef("", "--%s must be positive (SVC-10: slow clients are cut off)", name)
		}
	}
	peers, err := parseWitnessPeers(witnesses)
	if err != nil {
		return err
	}
	ctx := context.Background()
	// SPEC: BND-9 spans only when an OTLP endpoint is configured.
	tp, shutdown, err := telemetry.FromEnv(ctx, "agentctx-serve")
	if err != nil {
		return usagef("check the OTEL_EXPORTER_OTLP_* variables", "tracing: %v", err)
	}
	defer shutdown(context.Background())
	l, store, err := openLedger(ctx, e, &f, true, true)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := server.New(server.Config{Ledger: l, ReadTokens: tokens, ClientCerts: *clientCA != "", BatchWindow: *batchWindow, BatchMax: *batchMax,
		MaxBody: *maxBody, MaxTokens: *maxTokens, MaxToken: *maxToken, MaxInFlight: *maxInFlight, PageMaxNodes: *pageMaxNodes, Witnesses: peers, TracerProvider: tp, Log: log})
	if err != nil {
		return usagef("", "%v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: *headerTimeout, ReadTimeout: *requestTimeout, WriteTimeout: *requestTimeout, IdleTimeout: *idleTimeout}
	scheme := "http"
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return usagef("", "--tls-cert/--tls-key: %v", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if *clientCA != "" {
			pem, err := readFileArg("client-ca", *clientCA)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return usagef("", "--client-ca holds no PEM certificate")
			}
			hs.TLSConfig.ClientCAs, hs.TLSConfig.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
		scheme = "https"
	} else if *clientCA != "" {
		return usagef("client certificates need TLS", "--client-ca needs --tls-cert and --tls-key")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usagef("choose another --listen address", "--listen %s: %v", describeArg(*listen), err)
	}
	m := l.Meta()
	fmt.Fprintf(e.stdout, "agentctx: serving ledger %s at %s://%s (key %s)\n", m.ID, scheme, ln.Addr(), m.VerifierKey)
	serve := func() error { return hs.Serve(ln) }
	if scheme == "https" {
		serve = func() error { return hs.ServeTLS(ln, "", "") }
	}
	// SPEC: SVC-3 stop accepting, finish in-flight requests (bounded), then close the store.
	if err := serveUntilSignal(hs, serve, "the service"); err != nil {
		return err
	}
	srv.Close()
	return nil
}
