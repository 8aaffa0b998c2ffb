package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
)

// The store backends, as the start-up log line names them.
const (
	backendEmbedded = "embedded"
	backendPostgres = "postgres"
)

// openStore opens the PostgreSQL store when a database URL is given, else the embedded
// one in the data directory. Neither the URL nor its password reaches an error or a log
// line: a parse error says which part is wrong, not what it holds.
func openStore(ctx context.Context, opts Options, observe store.CommitObserver) (store.Store, string, error) {
	if opts.DatabaseURL == "" {
		st, err := store.OpenEmbedded(opts.DataDir, store.EmbeddedOptions{
			Engine: opts.EmbeddedEngine, Observe: observe, MinFreeDiskBytes: opts.MinFreeDiskBytes, Log: opts.Log.WithName("store"),
		})
		if err != nil {
			return nil, "", err
		}
		opts.Log.Info("embedded store engine", "engine", st.Engine(), "dataDir", opts.DataDir)
		return st, backendEmbedded, nil
	}
	dsn, err := databaseURL(opts.DatabaseURL, opts.DatabasePasswordFile)
	if err != nil {
		return nil, "", err
	}
	st, err := postgres.Open(ctx, dsn, postgres.Options{Observe: observe,
		MaxConns: int32(opts.DatabaseMaxConns), StatementTimeout: opts.DatabaseStatementTimeout}) //nolint:gosec // validated: at most 1000
	if err != nil {
		if errors.Is(err, postgres.ErrSchemaTooNew) {
			return nil, "", err
		}
		return nil, "", errors.New("opening the PostgreSQL store failed (check --database-url, the password and that the server answers); the URL is not logged")
	}
	return st, backendPostgres, nil
}

// databaseURL checks the URL's form and puts the password file's content into it.
func databaseURL(raw, passwordFile string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", errors.New("--database-url must be a postgres://user@host:port/database URL")
	}
	if passwordFile == "" {
		return raw, nil
	}
	b, err := os.ReadFile(passwordFile) //nolint:gosec // a path the operator of the receiver chose
	if err != nil {
		return "", fmt.Errorf("--database-password-file: %w", errors.Unwrap(err))
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, strings.TrimRight(string(b), "\r\n"))
	return u.String(), nil
}
