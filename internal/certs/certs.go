// Package certs makes the X.509 certificates hookgate needs for itself: the events API's
// CA and serving certificate (the operator's), and the test control plane's front-proxy
// and serving certificates. ECDSA P-256 keys, PEM encoded.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// Pair is a certificate with its key, parsed and PEM encoded.
type Pair struct {
	Cert            *x509.Certificate
	Key             *ecdsa.PrivateKey
	CertPEM, KeyPEM []byte
}

// Request says what a certificate is for. Its life starts five minutes before
// NotBefore, for clocks a little behind.
type Request struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// Usage is the leaf's extended key usage (server or client authentication).
	Usage     x509.ExtKeyUsage
	NotBefore time.Time
	Validity  time.Duration
}

// NewCA makes a self-signed CA.
func NewCA(r Request) (*Pair, error) { return issue(r, nil) }

// Sign makes a leaf certificate for r signed by ca.
func (ca *Pair) Sign(r Request) (*Pair, error) { return issue(r, ca) }

func issue(r Request, parent *Pair) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: r.CommonName}, DNSNames: r.DNSNames, IPAddresses: r.IPs,
		NotBefore: r.NotBefore.Add(-5 * time.Minute), NotAfter: r.NotBefore.Add(r.Validity), KeyUsage: x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{r.Usage}
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert: cert, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Parse reads a PEM certificate and its PEM key, reporting false unless both parse and
// belong together.
func Parse(certPEM, keyPEM []byte) (*Pair, bool) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, false
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, false
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, false
	}
	return &Pair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, true
}
