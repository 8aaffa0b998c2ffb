package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool lets the tests look at the sessions the store itself uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
