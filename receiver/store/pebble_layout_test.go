package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/go-logr/logr"
)

// No table Pebble writes holds keys of two buckets, from a flush or from a compaction,
// so that a compaction of the time-keyed buckets leaves the others' tables alone.
func TestPebbleTablesEndWithTheirBucket(t *testing.T) {
	db, err := openPebble(filepath.Join(t.TempDir(), pebbleDir), EmbeddedOptions{Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	buckets := [][]byte{bucketByID, bucketDedup, bucketEvents, bucketPayloads, bucketUsage}
	for round := range 3 {
		batch := db.NewBatch()
		for i := range 200 {
			for _, name := range buckets {
				key := append(bucketPrefix(name), fmt.Sprintf("%d-%04d", round, i)...)
				if err := batch.Set(key, bytes.Repeat([]byte{'v'}, 100), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := batch.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		levels, err := db.SSTables()
		if err != nil {
			t.Fatal(err)
		}
		tables := 0
		for level, infos := range levels {
			for _, info := range infos {
				tables++
				first, last := info.Smallest.UserKey, info.Largest.UserKey
				if a, b := first[:bytes.IndexByte(first, 0)], last[:bytes.IndexByte(last, 0)]; !bytes.Equal(a, b) {
					t.Errorf("%s: a table in L%d holds buckets %q to %q", when, level, a, b)
				}
			}
		}
		if tables < len(buckets) {
			t.Fatalf("%s: %d tables, want at least one per bucket (%d)", when, tables, len(buckets))
		}
	}
	check("after the flushes")
	if err := db.Compact(t.Context(), []byte("a"), []byte("z"), true); err != nil {
		t.Fatal(err)
	}
	check("after a compaction")
}
