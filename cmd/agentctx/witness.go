package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/witness"
)

// cmdWitnessKeygen writes a new witness key and prints its public key in
// the tlog-cosignature form.
func cmdWitnessKeygen(e *env, args []string) error {
	fs := newFlags(e, "witness keygen", "witness keygen --name NAME --out FILE")
	name := fs.String("name", "", "the witness's name (e.g. witness.example.com/w1)")
	out := fs.String("out", "", "file to write the witness's private key to (mode 0600; never overwritten)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *name == "" || *out == "" {
		return usagef("example: agentctx witness keygen --name witness.example.com/w1 --out witness.key", "--name and --out are required")
	}
	skey, vkey, err := witness.GenerateKey(*name)
	if err != nil {
		return usagef("a name without spaces or '+'", "--name %s: %v", describeArg(*name), err)
	}
	if err := outputPath("out", *out); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return usagef("choose another --out", "--out %s already exists; refusing to overwrite a key", describeArg(*out))
		}
		return fileError("out", *out, err)
	}
	if _, err := fmt.Fprintln(f, skey); err != nil {
		f.Close()
		return failf("writing the key: %v", err)
	}
	if err := f.Close(); err != nil {
		return failf("writing the key: %v", err)
	}
	fmt.Fprintln(e.stdout, vkey)
	return nil
}

// readWitnessSigner reads a witness key file written by witness keygen.
func readWitnessSigner(e *env, path string) (note.Signer, error) {
	b, err := readFileArg("key", path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.stderr, "agentctx: warning: witness key file %q has permissions %#o; use 0600\n", path, fi.Mode().Perm())
	}
	s, err := witness.NewSigner(string(b))
	if err != nil {
		return nil, usagef("the file written by agentctx witness keygen --out", "--key %s is not a witness key", describeArg(path))
	}
	return s, nil
}

// cmdWitnessServe runs a C2SP tlog-witness for the logs given.
func cmdWitnessServe(e *env, args []string) error {
	fs := newFlags(e, "witness serve", "witness serve --key WITNESS_KEY --log ORIGIN=VKEY... [--db FILE] [--listen ADDR]")
	key := fs.String("key", "", "the witness's private key file (agentctx witness keygen)")
	var logs stringList
	fs.Var(&logs, "log", "a log to witness, ORIGIN=VKEY (its note verifier key, or a file holding it); repeatable")
	db := fs.String("db", "witness.db", "the witness's state (SQLite): the latest cosigned checkpoint of each log")
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *key == "" || len(logs) == 0 {
		return usagef("example: agentctx witness serve --key witness.key --log spiffe://example.com/system/ledger=ledger.vkey", "--key and at least one --log are required")
	}
	signer, err := readWitnessSigner(e, *key)
	if err != nil {
		return err
	}
	verifiers := map[string]note.Verifier{}
	for _, l := range logs {
		origin, vk, ok := strings.Cut(l, "=")
		if !ok || origin == "" {
			return usagef("give ORIGIN=VKEY", "--log %s is not ORIGIN=VKEY", describeArg(l))
		}
		vkey, err := readVerifierKey(vk)
		if err != nil {
			return err
		}
		v, err := note.NewVerifier(vkey)
		if err != nil || v.Name() != origin {
			return usagef("a log's origin is its key's name", "--log %s: the key is not named %q", describeArg(l), origin)
		}
		verifiers[origin] = v
	}
	var handler slog.Handler = slog.NewTextHandler(e.stderr, nil)
	switch *logFormat {
	case "text":
	case "json":
		handler = slog.NewJSONHandler(e.stderr, nil)
	default:
		return usagef("", "--log-format must be text or json")
	}
	st, err := witness.OpenStore(*db)
	if err != nil {
		return failf("%v", err)
	}
	defer st.Close()
	w, err := witness.New(witness.Config{Signer: signer, Logs: verifiers, Store: st, Log: slog.New(handler)})
	if err != nil {
		return usagef("", "%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usagef("choose another --listen address", "--listen %s: %v", describeArg(*listen), err)
	}
	hs := &http.Server{Handler: w, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	fmt.Fprintf(e.stdout, "agentctx: witness %s at http://%s (%s)\n", signer.Name(), ln.Addr(), plural(uint64(len(verifiers)), "log", "logs"))
	return serveUntilSignal(hs, func() error { return hs.Serve(ln) }, "the witness")
}

// witnessKeys reads --witness-key values: a cosignature verifier key, or a
// file holding one per line.
func witnessKeys(vals []string) ([]note.Verifier, error) {
	var out []note.Verifier
	for _, v := range vals {
		keys := []string{v}
		if _, err := witness.NewVerifier(v); err != nil {
			b, err := readFileArg("witness-key", v)
			if err != nil {
				return nil, err
			}
			keys = nil
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					keys = append(keys, l)
				}
			}
		}
		for _, k := range keys {
			wv, err := witness.NewVerifier(k)
			if err != nil {
				return nil, usagef("the key agentctx witness keygen printed (name+hash+base64)", "--witness-key %s is not a witness key", describeArg(k))
			}
			out = append(out, wv)
		}
	}
	return out, nil
}

// parseWitnessPeers reads serve's --witness NAME=URL=VKEY values.
func parseWitnessPeers(vals []string) ([]*witness.Peer, error) {
	var out []*witness.Peer
	for _, v := range vals {
		parts := strings.SplitN(v, "=", 3)
		if len(parts) != 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "http") {
			return nil, usagef("give NAME=URL=VKEY, e.g. w1=https://witness.example/=w1.vkey", "--witness %s is not NAME=URL=VKEY", describeArg(v))
		}
		keys, err := witnessKeys([]string{parts[2]})
		if err != nil {
			return nil, err
		}
		if len(keys) != 1 || keys[0].Name() != parts[0] {
			return nil, usagef("NAME is the witness key's name", "--witness %s: the key is not one key named %q", describeArg(v), parts[0])
		}
		out = append(out, &witness.Peer{Name: parts[0], URL: parts[1], Verifier: keys[0], HTTP: &http.Client{Timeout: 10 * time.Second}})
	}
	return out, nil
}
