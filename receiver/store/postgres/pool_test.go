package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookgate/hookgate/receiver/store/postgres"
)

// The pool is bounded (DefaultMaxConns unless set), every session has the statement
// timeout (a statement over it is cut off with query_canceled), and the migrations,
// which may build indexes over large tables, run without one.
func TestPoolSizeAndStatementTimeout(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		opts     postgres.Options
		maxConns int32
		timeout  string
	}{
		{"defaults", postgres.Options{}, postgres.DefaultMaxConns, "10s"},
		{"set", postgres.Options{MaxConns: 7, StatementTimeout: 300 * time.Millisecond}, 7, "300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, freshSchema(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Pool().Config().MaxConns; got != tc.maxConns {
				t.Errorf("pool of %d connections, want %d", got, tc.maxConns)
			}
			var timeout string
			if err := s.Pool().QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil || timeout != tc.timeout {
				t.Errorf("statement_timeout %q (%v), want %q", timeout, err, tc.timeout)
			}
			if tc.opts.StatementTimeout > 0 {
				_, err := s.Pool().Exec(ctx, "SELECT pg_sleep(2)")
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
					t.Errorf("a 2 s statement under a %s timeout: %v, want query_canceled (57014)", tc.opts.StatementTimeout, err)
				}
			}
		})
	}
}
