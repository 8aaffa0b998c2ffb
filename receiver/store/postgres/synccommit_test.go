package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSynchronousCommitOfSessions: whatever the database's default, the store's sessions
// commit at least as durably as on, so that a 202 survives a failover; only remote_apply,
// which is more durable, is left as it is.
func TestSynchronousCommitOfSessions(t *testing.T) {
	base := databaseURL(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(ctx) }()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "hookgate_sc_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	q := u.Query()
	q.Set("pool_max_conns", "3")
	u.RawQuery = q.Encode()

	for _, tc := range []struct{ databaseDefault, want string }{
		{"local", "on"},
		{"off", "on"},
		{"remote_write", "on"},
		{"on", "on"},
		{"remote_apply", "remote_apply"},
	} {
		t.Run(tc.databaseDefault, func(t *testing.T) {
			if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" SET synchronous_commit = "+tc.databaseDefault); err != nil {
				t.Fatal(err)
			}
			s := open(t, u.String())
			defer func() { _ = s.Close() }()
			// Every connection of the pool, not only the first one.
			var conns []interface{ Release() }
			defer func() {
				for _, c := range conns {
					c.Release()
				}
			}()
			for i := range 3 {
				c, err := s.Pool().Acquire(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				var got string
				if err := c.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("database default %s: session %d has synchronous_commit %s, want %s", tc.databaseDefault, i, got, tc.want)
				}
			}
		})
	}
}
