package verify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
)

func TestRSASignature(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	forms := map[string]string{
		"base64 DER (as the seed publishes it)": base64.StdEncoding.EncodeToString(der),
		"PEM PKIX":                              string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"PEM PKCS1":                             string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})),
	}
	body := []byte(`{"id":"evt_1"}`)
	digest := sha256.Sum256(body)
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	wrong, _ := rsa.SignPKCS1v15(rand.Reader, other, crypto.SHA256, digest[:])
	for name, text := range forms {
		pub, err := ParseRSAPublicKey(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := RSASignature(pub, "X-Signature", base64.StdEncoding.EncodeToString(sig), body); err != nil {
			t.Errorf("%s: valid signature refused: %v", name, err)
		}
		if reasonOf(RSASignature(pub, "X-Signature", base64.StdEncoding.EncodeToString(wrong), body)) != ReasonInvalidSignature {
			t.Errorf("%s: another key's signature accepted", name)
		}
		if reasonOf(RSASignature(pub, "X-Signature", base64.StdEncoding.EncodeToString(sig), []byte(`{}`))) != ReasonInvalidSignature {
			t.Errorf("%s: tampered body accepted", name)
		}
	}
	if _, err := ParseRSAPublicKey("not a key"); err == nil {
		t.Error("garbage parsed as a key")
	}
}
