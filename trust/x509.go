package trust

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
)

// X5CResolver is the X.509 trust profile (TR-7): the key of a token that
// carries an x5c chain is the leaf's, when the chain validates to a
// configured root and the leaf names the issuer as its one URI SAN.
type X5CResolver interface {
	// ResolveX5C returns the leaf key for issuer, or an unknown_key error.
	// A source with no X.509 roots for issuer resolves kid as ResolveKey
	// does (the x5c is then not used).
	ResolveX5C(ctx context.Context, issuer, kid string, x5c []byte, alg string) (crypto.PublicKey, error)
}

// x509Roots is an x509_roots entry: roots for the issuers a binding covers.
type x509Roots struct {
	binding Binding
	pool    *x509.CertPool
	spiffe  bool
	clock   func() time.Time
}

// parseRoots reads PEM certificates into a pool.
func parseRoots(pemData string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(pemData)
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("x509_roots: %w", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("x509_roots holds no PEM certificate")
	}
	return pool, nil
}

func x5cErr(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "x5c", format, args...)
}

// ResolveX5C implements X5CResolver over the set's x509_roots entries.
func (s *Set) ResolveX5C(ctx context.Context, issuer, kid string, x5c []byte, alg string) (crypto.PublicKey, error) {
	var roots []x509Roots
	for _, r := range s.x509 {
		if r.binding.covers(issuer) {
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 {
		return s.ResolveKey(ctx, issuer, kid, alg) // x5c is used only by the X.509 profile
	}
	ders, ok := jsonx.DecodeStrings(x5c)
	if !ok || len(ders) == 0 || len(ders) > 10 {
		return nil, x5cErr("x5c is not an array of 1..10 certificates")
	}
	var certs []*x509.Certificate
	for i, d := range ders {
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			return nil, x5cErr("x5c certificate %d is not base64", i)
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, x5cErr("x5c certificate %d does not parse", i)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != issuer {
		return nil, x5cErr("the leaf certificate must carry exactly one URI SAN, the issuer %q", issuer)
	}
	if !jws.KeyMatchesAlg(leaf.PublicKey, alg) {
		return nil, x5cErr("the leaf certificate's key is not a %s key", alg)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, r := range roots {
		if r.spiffe && (leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0) {
			return nil, x5cErr("a SPIFFE leaf must be cA=false with digitalSignature and without keyCertSign or cRLSign")
		}
		opts := x509.VerifyOptions{Roots: r.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if r.clock != nil {
			opts.CurrentTime = r.clock()
		}
		if _, err := leaf.Verify(opts); err == nil {
			return leaf.PublicKey, nil
		}
	}
	return nil, x5cErr("the x5c chain does not validate to a trusted root")
}
