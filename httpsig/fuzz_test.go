package httpsig_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/agentctx/agentctx/httpsig"
	"github.com/agentctx/agentctx/internal/testkeys"
)

// FuzzSignatureFields: any Signature-Input, Signature and Content-Digest
// values give a verdict, never a panic: the structured-field parsing, the
// signature base and the WIMSE checks.
func FuzzSignatureFields(f *testing.F) {
	f.Add(`wimse=("@method" "@request-target" "workload-identity-token");created=1785155797;expires=1785156097;nonce="abcd1111";tag="wimse-workload-to-workload";wimse-aud="https://svcb.example.com/gimme-ice-cream";wimse-sign-response`,
		`wimse=:zSK+kx5EnoZct9FZ6LMYzfx0mk32oI/hHpB7y4rgHxkRDcAA72yBW5xgzA03nKviXLjL7nphq840Uwznp6IKAw==:`, `sha-256=:UHKweBl9cpjdVqgTB65El8SexXlJYGG+XIslAYqC1mY=:`)
	f.Add(`sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`, `sig-b26=:wqcA:`, `sha-512=:AA==:`)
	f.Add(`a=("@status";req "x";bs);tag="wimse-workload-to-workload"`, `a=:AA==:, b=?1`, `x`)
	f.Add(`a=("@query" "@path" "@path")`, `a=:AA==:`, ``)
	key := testkeys.EdDSA("fuzz httpsig", "k")
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		r, _ := http.NewRequest("GET", "http://b.example.com/p?q=1", nil)
		r.Header.Set("Signature-Input", input)
		r.Header.Set("Signature", sig)
		if digest != "" {
			r.Header.Set("Content-Digest", digest)
		}
		r.Header.Set("Workload-Identity-Token", "wit")
		for _, m := range []httpsig.Message{{Request: r}, {Request: r, Response: &http.Response{StatusCode: 200, Header: r.Header}}} {
			sigs, err := httpsig.Signatures(m)
			if err != nil {
				continue
			}
			for _, s := range sigs {
				_, _ = httpsig.Base(m, s.Components, s.Params)
				_, _ = httpsig.VerifyWIMSE(m, s, "EdDSA", key.Public().Public, []byte("body"), httpsig.Policy{Audience: "https://b.example.com/p", Clock: time.Now, Legacy: true})
			}
			_, _ = httpsig.Find(m)
		}
		_ = httpsig.CheckContentDigest(digest, []byte("body"))
	})
}
