package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
	"github.com/hookgate/hookgate/receiver/store/storetest"
)

var (
	databaseURL = pgtest.DatabaseURL
	freshSchema = pgtest.FreshSchema
)

func open(t *testing.T, databaseURL string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), databaseURL, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestPostgresStore runs the shared Store behaviour, each subtest in its own schema.
func TestPostgresStore(t *testing.T) {
	databaseURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, freshSchema(t))
	})
}

// TestMigrationsAreIdempotent: replicas starting at once migrate one schema once, and
// opening a migrated schema changes nothing.
func TestMigrationsAreIdempotent(t *testing.T) {
	u := freshSchema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 3)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), u, postgres.Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if err := stores[0].SetToken(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		_ = s.Close()
	}
	again := open(t, u)
	defer func() { _ = again.Close() }()
	if v, err := again.Token(t.Context(), "k"); err != nil || v != "v" {
		t.Fatalf("after opening again: token %q (%v), want the data kept", v, err)
	}
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n, newest int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion() || newest != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows up to %d, want each of the %d migrations once", n, newest, postgres.SchemaVersion())
	}
}

// TestNewerSchemaIsRefused: a receiver must not write into a schema a newer one made.
func TestNewerSchemaIsRefused(t *testing.T) {
	u := freshSchema(t)
	s := open(t, u)
	_ = s.Close()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	newer := postgres.SchemaVersion() + 1
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version) VALUES ($1)", newer); err != nil {
		t.Fatal(err)
	}
	s, err = postgres.Open(t.Context(), u, postgres.Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a schema newer than the receiver knows")
	}
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("error %v, want ErrSchemaTooNew", err)
	}
	want := "database schema version " + strconv.Itoa(newer) + " is newer than this receiver knows (" + strconv.Itoa(postgres.SchemaVersion()) + "): upgrade the receiver"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}
	// The lock was released: a current schema still opens.
	ok := open(t, freshSchema(t))
	_ = ok.Close()
}
