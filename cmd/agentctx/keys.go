package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/agentctx/agentctx/trust"
)

func cmdKeygen(e *env, args []string) error {
	fs := newFlags(e, "keygen", "keygen --alg ES256|EdDSA [--kid KID] --out FILE [--pub-out FILE]")
	alg := fs.String("alg", "EdDSA", "signature algorithm: ES256 or EdDSA")
	kid := fs.String("kid", "", "key ID written in the kid header of signed tokens (default: the RFC 7638 thumbprint)")
	out := fs.String("out", "", "file to write the private JWK to (created with mode 0600; never overwritten)")
	pubOut := fs.String("pub-out", "", "file to write the public JWK to, atomically (default: standard output)")
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("example: agentctx keygen --alg EdDSA --kid agent-a-1 --out agent-a.jwk --pub-out agent-a.pub.jwk", "--out is required")
	}
	for name, p := range map[string]string{"out": *out, "pub-out": *pubOut} {
		if err := outputPath(name, p); err != nil {
			return err
		}
	}
	if *pubOut != "" {
		if *pubOut == *out {
			return usagef("", "--pub-out and --out must be different files")
		}
		e.out.toFile(*pubOut)
	}
	k, err := trust.GenerateKey(*alg, *kid)
	if err != nil {
		return usagef("use --alg ES256 or --alg EdDSA", "%v", err)
	}
	priv, err := k.MarshalJWK()
	if err != nil {
		return failf("encoding the key: %v", err)
	}
	// SPEC: TR-8 private keys live in files with mode 0600.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return usagef("choose another --out or remove the old key first", "%s already exists; refusing to overwrite a key", describeArg(*out))
		}
		return fileError("out", *out, err)
	}
	if _, err := f.Write(append(priv, '\n')); err != nil {
		f.Close()
		return failf("writing key file: %v", err)
	}
	if err := f.Close(); err != nil {
		return failf("writing key file: %v", err)
	}
	return printPublic(e, k.Public())
}

func printPublic(e *env, k trust.Key) error {
	pub, err := trust.PublicJWK(k)
	if err != nil {
		return failf("encoding the public key: %v", err)
	}
	fmt.Fprintf(e.stdout, "%s\n", pub)
	return nil
}

// loadPublic reads a public key from a JWK or PEM file, or the public half of
// a private key file.
func loadPublic(e *env, path string) (trust.Key, error) {
	data, err := readFileArg("", path)
	if err != nil {
		return trust.Key{}, err
	}
	if keys, err := trust.ParseKeys(data); err == nil {
		if len(keys) != 1 {
			return trust.Key{}, usagef("", "%s holds %d keys; give one key per file", path, len(keys))
		}
		return keys[0], nil
	}
	sk, err := trust.LoadSigningKey(path, func(w string) { fmt.Fprintf(e.stderr, "agentctx: warning: %s\n", w) })
	if err != nil {
		return trust.Key{}, usagef("give a JWK or PEM key file", "%s: not a usable key: %v", path, err)
	}
	return sk.Public(), nil
}

func cmdKeysPublic(e *env, args []string) error {
	fs := newFlags(e, "keys public", "keys public [--out FILE] KEYFILE")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("example: agentctx keys public agent-a.jwk", "expected one key file")
	}
	k, err := loadPublic(e, fs.Arg(0))
	if err != nil {
		return err
	}
	return printPublic(e, k)
}

func cmdKeysTrust(e *env, args []string) error {
	fs := newFlags(e, "keys trust", "keys trust (--id ISSUER | --prefix PREFIX | --wit-domain TRUST_DOMAIN) [--merge TRUSTFILE] [--out FILE] PUBFILE...")
	id := fs.String("id", "", "the exact issuer these keys sign for")
	prefix := fs.String("prefix", "", `an issuer prefix ending in "/" or ":" these keys sign for`)
	witDomain := fs.String("wit-domain", "", "a trust domain (e.g. example.com) whose WITs these identity-server keys sign (wit_issuers)")
	merge := fs.String("merge", "", "an existing trust file to add this entry to (with --out the same file is replaced safely)")
	fs.out()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if n := btoi(*id != "") + btoi(*prefix != "") + btoi(*witDomain != ""); n != 1 {
		return usagef("example: agentctx keys trust --id spiffe://example.com/agent/a agent-a.pub.jwk", "give exactly one of --id, --prefix and --wit-domain")
	}
	if fs.NArg() == 0 {
		return usagef("", "give at least one public key file")
	}
	b := trust.Binding{ID: *id, Prefix: *prefix}
	entry := struct {
		ID          string            `json:"id,omitempty"`
		Prefix      string            `json:"prefix,omitempty"`
		TrustDomain string            `json:"trust_domain,omitempty"`
		Keys        []json.RawMessage `json:"keys"`
	}{ID: *id, Prefix: *prefix, TrustDomain: *witDomain}
	set := trust.NewSet()
	for _, p := range fs.Args() {
		k, err := loadPublic(e, p)
		if err != nil {
			return err
		}
		if *witDomain != "" {
			err = set.AddWIT(*witDomain, k)
		} else {
			err = set.Add(b, k)
		}
		if err != nil {
			return usagef("", "%v", err)
		}
		j, err := trust.PublicJWK(k)
		if err != nil {
			return failf("%v", err)
		}
		entry.Keys = append(entry.Keys, j)
	}
	issuers, witIssuers := []any{}, []any{}
	if *merge != "" {
		data, err := readFileArg("merge", *merge)
		if err != nil {
			return err
		}
		if _, err := trust.ParseFileWith(data, trust.Options{Clock: time.Now}); err != nil {
			return usagef("", "%s: %v", *merge, err)
		}
		var old struct {
			Issuers    []json.RawMessage `json:"issuers"`
			WITIssuers []json.RawMessage `json:"wit_issuers"`
		}
		if err := json.Unmarshal(data, &old); err != nil {
			return usagef("", "%s: %v", *merge, err)
		}
		for _, o := range old.Issuers {
			issuers = append(issuers, o)
		}
		for _, o := range old.WITIssuers {
			witIssuers = append(witIssuers, o)
		}
	}
	if *witDomain != "" {
		witIssuers = append(witIssuers, entry)
	} else {
		issuers = append(issuers, entry)
	}
	doc := map[string]any{"issuers": issuers}
	if len(witIssuers) > 0 {
		doc["wit_issuers"] = witIssuers
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return failf("%v", err)
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
