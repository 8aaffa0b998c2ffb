package routing

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

const (
	// SecretDataKey holds the gzip'd JSON table in the routing Secret.
	SecretDataKey = "table.json.gz"
	// AnnotationSerial and AnnotationHash repeat the table's identity on the Secret (and on
	// each receiver's Lease) so that they can be read without decoding the table.
	AnnotationSerial = "hookgate.io/routing-serial"
	AnnotationHash   = "hookgate.io/routing-hash"
	// DefaultSecretName is the routing Secret's name in the receiver's namespace.
	DefaultSecretName = "hookgate-routing"
	// MaxSecretBytes is the Kubernetes limit on a Secret's data.
	MaxSecretBytes = 1 << 20
	// maxDecodedBytes bounds decompression of a table.
	maxDecodedBytes = 16 << 20
)

// ErrTableTooLarge: the encoded table does not fit its Secret.
var ErrTableTooLarge = errors.New("routing table is over the Secret limit")

// Encode serializes a finalized table.
func Encode(t *Table) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(zw).Encode(t); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxSecretBytes-4096 {
		return nil, fmt.Errorf("%w: %d bytes compressed, the limit is %d", ErrTableTooLarge, buf.Len(), MaxSecretBytes)
	}
	return buf.Bytes(), nil
}

// Decode parses and checks a serialized table, and builds its lookup indexes.
func Decode(data []byte) (*Table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("routing table is not gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecodedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing routing table: %w", err)
	}
	if len(raw) > maxDecodedBytes {
		return nil, errors.New("routing table is too large once decompressed")
	}
	var t Table
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("parsing routing table: %w", err)
	}
	if t.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("routing table format %d is not supported by this receiver (wants %d)", t.FormatVersion, FormatVersion)
	}
	if got := t.contentHash(); got != t.Hash {
		return nil, fmt.Errorf("routing table hash mismatch: content %s, header %s", got, t.Hash)
	}
	t.buildIndex()
	return &t, nil
}

// SerialString formats a serial for annotations.
func SerialString(serial uint64) string { return strconv.FormatUint(serial, 10) }

// ParseSerial reads a serial annotation; missing or bad values read as 0.
func ParseSerial(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}
