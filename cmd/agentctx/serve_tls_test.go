package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCA is a throw-away CA that issues the server's and a client's
// certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key in PEM for a server (with
// 127.0.0.1 as its address) or a client.
func (ca *testCA) issue(t *testing.T, serial int64, server bool) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// TestServeTLS (SVC-8): with --tls-cert/--tls-key and --client-ca the
// service serves HTTPS, on a non-loopback address too; a verified client
// certificate reads, a request without one gets 401, and the public routes
// stay open.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "a1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/a", "--out", "trust.json", "a.pub")
	must("ledger", "init", "--db", "l.db", "--id", "spiffe://ex.com/ledger", "--key-out", "l.key")
	tok := strings.TrimSpace(must("ect", "create", "--key", "a.jwk", "--iss", "spiffe://ex.com/a", "--aud", "spiffe://ex.com/ledger", "--exec-act", "x"))
	ca := newTestCA(t)
	sc, sk := ca.issue(t, 2, true)
	cc, ck := ca.issue(t, 3, false)
	for name, b := range map[string][]byte{"ca.pem": ca.pem, "srv.pem": sc, "srv.key": sk} {
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	_, _, first := startServe(t, dir, "serve", "--db", "l.db", "--key", "l.key", "--trust", "trust.json", "--listen", "0.0.0.0:0",
		"--tls-cert", "srv.pem", "--tls-key", "srv.key", "--client-ca", "ca.pem")
	m := regexp.MustCompile(`at https://\S*:(\d+) \(key`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("SVC-8: start line over TLS: %q", first)
	}
	base := "https://127.0.0.1:" + m[1]
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	pair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	resp, err := anon.Post(base+"/v1/entries", "application/jwt", strings.NewReader(tok))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SVC-8: an append over TLS needs no read credential: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, c := range []struct {
		client *http.Client
		path   string
		status int
	}{
		{anon, "/v1/entries/0", 401},
		{withCert, "/v1/entries/0", 200},
		{anon, "/checkpoint", 200},
		{anon, "/v1/proofs/inclusion?index=0", 200},
		{anon, "/v1/key", 200},
	} {
		resp, err := c.client.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("SVC-8: GET %s (client certificate: %v): %d, want %d", c.path, c.client == withCert, resp.StatusCode, c.status)
		}
		if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("SVC-8: 401 without WWW-Authenticate: Bearer")
		}
	}
}
