package routing

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// SecretValue is a key or secret carried in the table exactly as the Secret holds it.
// Most are text (whsec_… secrets, PEM keys) and are written as JSON strings; a value that
// is not valid UTF-8 (a raw binary HMAC key) would be mangled by a JSON string, so it is
// written as {"base64": "…"} instead. Both forms are read.
type SecretValue string

type binarySecret struct {
	Base64 string `json:"base64"`
}

// MarshalJSON writes text as a string and binary as base64.
func (s SecretValue) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(binarySecret{Base64: base64.StdEncoding.EncodeToString([]byte(s))})
}

// UnmarshalJSON reads either form.
func (s *SecretValue) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		*s = SecretValue(text)
		return nil
	}
	var bin binarySecret
	if err := json.Unmarshal(b, &bin); err != nil {
		return errors.New("a secret must be a string or {\"base64\": ...}")
	}
	raw, err := base64.StdEncoding.DecodeString(bin.Base64)
	if err != nil {
		return errors.New("a secret's base64 does not decode")
	}
	*s = SecretValue(raw)
	return nil
}
