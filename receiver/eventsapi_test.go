package receiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAwaitCertificate: the events API starts at once without a certificate directory,
// waits for both files in one (the operator's Secret mounted a moment after the pod
// starts), and gives up when the receiver stops first.
func TestAwaitCertificate(t *testing.T) {
	if err := awaitCertificate(context.Background(), "", func() { t.Error("waited without a directory") }); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	waited := false
	go func() {
		time.Sleep(1200 * time.Millisecond)
		_ = os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("c"), 0o600)
		_ = os.WriteFile(filepath.Join(dir, "tls.key"), []byte("k"), 0o600)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := awaitCertificate(ctx, dir, func() { waited = true }); err != nil || !waited {
		t.Fatalf("awaitCertificate = %v (waited %v), want nil after waiting", err, waited)
	}
	empty := t.TempDir()
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := awaitCertificate(short, empty, func() {}); err == nil {
		t.Fatal("awaitCertificate returned nil without the files")
	}
}
