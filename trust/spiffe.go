package trust

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// SPIFFEBundle is a parsed SPIFFE trust bundle (a JWK Set with "use"):
// "wit-svid" keys sign the trust domain's WITs, "x509-svid" entries (one CA
// certificate in x5c, no kid) are X.509 roots; entries with a missing or
// unknown use are ignored, and so are keys of unusable types (RSA).
type SPIFFEBundle struct {
	WITKeys     []Key
	Roots       *x509.CertPool
	RefreshHint time.Duration // spiffe_refresh_hint, 0 when absent
	Ignored     int           // entries skipped (unknown use, RSA keys)
}

// ParseSPIFFEBundle parses a SPIFFE trust bundle (TR-7). A bundle with no
// usable key at all is refused: an empty set invalidates the trust domain.
func ParseSPIFFEBundle(data []byte) (*SPIFFEBundle, error) {
	var f struct {
		Keys        []json.RawMessage `json:"keys"`
		RefreshHint *int64            `json:"spiffe_refresh_hint"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("the SPIFFE bundle is not valid JSON: %w", err)
	}
	b := &SPIFFEBundle{Roots: x509.NewCertPool()}
	if f.RefreshHint != nil && *f.RefreshHint > 0 {
		b.RefreshHint = time.Duration(*f.RefreshHint) * time.Second
	}
	roots := 0
	for _, raw := range f.Keys {
		var e struct {
			Use string   `json:"use"`
			Kid string   `json:"kid"`
			X5C []string `json:"x5c"`
			Kty string   `json:"kty"`
		}
		if json.Unmarshal(raw, &e) != nil {
			b.Ignored++
			continue
		}
		switch e.Use {
		case "wit-svid":
			k, err := ParseJWK(raw)
			if err != nil { // RSA and other unusable keys
				b.Ignored++
				continue
			}
			b.WITKeys = append(b.WITKeys, k)
		case "x509-svid":
			if len(e.X5C) != 1 || e.Kid != "" {
				b.Ignored++
				continue
			}
			der, err := base64.StdEncoding.DecodeString(e.X5C[0])
			if err != nil {
				b.Ignored++
				continue
			}
			c, err := x509.ParseCertificate(der)
			if err != nil || !c.IsCA {
				b.Ignored++
				continue
			}
			b.Roots.AddCert(c)
			roots++
		default:
			b.Ignored++
		}
	}
	if len(b.WITKeys) == 0 && roots == 0 {
		return nil, errors.New("the SPIFFE bundle holds no usable key: the trust domain is invalid")
	}
	if roots == 0 {
		b.Roots = nil
	}
	return b, nil
}

// AddSPIFFEBundle trusts a trust domain's bundle: its wit-svid keys for
// the domain's WITs, its x509-svid roots for the issuers under
// spiffe://<domain>/.
func (s *Set) AddSPIFFEBundle(trustDomain string, b *SPIFFEBundle, clock func() time.Time) error {
	if len(b.WITKeys) > 0 {
		if err := s.AddWIT(trustDomain, b.WITKeys...); err != nil {
			return err
		}
	}
	if b.Roots != nil {
		s.AddX509Roots(Binding{Prefix: "spiffe://" + strings.ToLower(trustDomain) + "/"}, b.Roots, clock, true)
	}
	if b.Ignored > 0 {
		slog.Info("SPIFFE bundle: entries ignored (unknown use or unusable key type, e.g. RSA)", "trust_domain", trustDomain, "ignored", b.Ignored)
	}
	return nil
}
