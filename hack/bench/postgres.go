package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// freshSchema makes an empty schema on the server of databaseURL for one run, and
// returns the URL that selects it and a function that drops it.
func freshSchema(databaseURL string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "bench_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to the benchmark database: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, databaseURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// databaseCPUSeconds is the CPU time of the PostgreSQL server's processes on this
// machine (the postmaster and every backend, each a process named postgres), and false
// when there are none to read (the server runs elsewhere). A backend's time is lost when
// it exits, so it is read while the receivers' pools still hold their connections.
func databaseCPUSeconds() (float64, bool) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	total, found := 0.0, false
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		total += cpuSeconds(pid)
		found = true
	}
	return total, found
}

// databaseCPU measures the server's CPU over a span: stop returns its seconds per 1,000
// of events, or -1 when the server's processes are not on this machine.
func databaseCPU(st store) (stop func(events int64) float64) {
	if st.databaseURL == "" {
		return func(int64) float64 { return 0 }
	}
	before, ok := databaseCPUSeconds()
	return func(events int64) float64 {
		after, ok2 := databaseCPUSeconds()
		if !ok || !ok2 || events == 0 {
			return -1
		}
		return (after - before) / float64(events) * 1000
	}
}
