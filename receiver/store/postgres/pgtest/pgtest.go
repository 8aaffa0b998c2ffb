// Package pgtest gives tests a PostgreSQL schema of their own on the server named by
// HOOKGATE_TEST_DATABASE_URL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DatabaseURL is the test server's URL, from HOOKGATE_TEST_DATABASE_URL. Without it the
// test is skipped, except in CI, where a missing database must not pass as green.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HOOKGATE_TEST_DATABASE_URL")
	if u == "" {
		const msg = "HOOKGATE_TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + ": the PostgreSQL store cannot be tested")
		}
		t.Skip(msg + ": skipping the PostgreSQL store tests")
	}
	return u
}

// FreshSchema creates an empty schema, dropped when the test ends, and returns the
// database URL whose search_path is that schema. Register it before anything that must
// be closed first (cleanups run last first).
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := DatabaseURL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		t.Fatalf("HOOKGATE_TEST_DATABASE_URL must be a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
