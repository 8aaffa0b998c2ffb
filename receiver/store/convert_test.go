package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// writePreviousRelease fills dir as the release before Pebble left it: a bbolt file
// with stored, queued, delivered and deduplicated events, attempts, a token and usage.
func writePreviousRelease(t *testing.T, dir string) {
	t.Helper()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	for i := range 40 {
		phase := PhaseStored
		if i%2 == 0 {
			phase = PhaseQueued
		}
		if _, err := s.Ingest(ctx, ingest(fmt.Sprintf("019593fa-5d95-7000-8000-%012d", i), fmt.Sprintf("e%d", i), t0.Add(time.Duration(i)*time.Millisecond), phase)); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Claim(ctx, "ns/e", "w", time.Now(), time.Minute, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v (%v)", ds, err)
	}
	if _, err := s.RecordAttempt(ctx, "w", ds[0].UUID, Attempt{Number: 1, StartedAt: time.Now(), ResponseCode: 200}, Outcome{Phase: PhaseDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetToken(ctx, "redeliver/ns/x", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// logLines collects a logger's lines.
func logLines() (logr.Logger, func() string) {
	var mu sync.Mutex
	var b strings.Builder
	log := funcr.New(func(prefix, args string) { mu.Lock(); b.WriteString(prefix + " " + args + "\n"); mu.Unlock() }, funcr.Options{})
	return log, func() string { mu.Lock(); defer mu.Unlock(); return b.String() }
}

// TestPebbleConvertsAPreviousReleasesDataDirectory: a receiver started on Pebble over a
// data directory of the bbolt release finds every event, attempt, queue, dedup key,
// token and usage count there, says so in its log, keeps the old file renamed, and does
// not convert again at the next start.
func TestPebbleConvertsAPreviousReleasesDataDirectory(t *testing.T) {
	dir := t.TempDir()
	writePreviousRelease(t, dir)
	s, lines := openLogged(t, dir)
	if !strings.Contains(lines(), `"converted the bbolt store to Pebble"`) {
		t.Errorf("the log does not say the store was converted:\n%s", lines())
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile)); !os.IsNotExist(err) {
		t.Errorf("events.db is still there after the conversion (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, convertedBoltFile)); err != nil {
		t.Errorf("the old file is not kept as %s: %v", convertedBoltFile, err)
	}
	checkConverted(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, lines = openLogged(t, dir)
	defer s.Close()
	if strings.Contains(lines(), "convert") {
		t.Errorf("the second start converted again:\n%s", lines())
	}
	if n, _ := s.Count(); n != 40 {
		t.Errorf("%d events after the second start, want 40", n)
	}
}

func checkConverted(t *testing.T, s *Embedded) {
	t.Helper()
	ctx := context.Background()
	if n, err := s.Count(); n != 40 || err != nil {
		t.Errorf("%d events after the conversion (%v), want 40", n, err)
	}
	e, err := s.FindByEventID(ctx, "ns/acme", "e7")
	if err != nil || e.Phase != PhaseStored {
		t.Errorf("event e7: %+v (%v)", e, err)
	}
	if p, err := s.Payload(ctx, e.UUID); err != nil || string(p) != `{"id":"e7"}` {
		t.Errorf("payload of e7: %q (%v)", p, err)
	}
	delivered, err := s.FindByEventID(ctx, "ns/acme", "e0")
	if err != nil || delivered.Phase != PhaseDelivered {
		t.Errorf("the delivered event: %+v (%v)", delivered, err)
	}
	if as, err := s.Attempts(ctx, delivered.UUID); err != nil || len(as) != 1 || as[0].ResponseCode != 200 {
		t.Errorf("its attempts: %+v (%v)", as, err)
	}
	if depth, err := s.QueueDepth(ctx); depth != 19 || err != nil {
		t.Errorf("queue depth %d (%v), want the 19 queued events not yet delivered", depth, err)
	}
	ds, err := s.Claim(ctx, "ns/e", "w2", time.Now(), time.Minute, 100)
	if err != nil || len(ds) != 19 {
		t.Errorf("claimed %d (%v), want 19", len(ds), err)
	}
	dup, err := s.Ingest(ctx, ingest("019593fa-5d95-7000-8000-999999999999", "e3", time.Now(), PhaseStored))
	if err != nil || !dup.Duplicate || dup.Event.EventID != "e3" {
		t.Errorf("e3 again: %+v (%v), want a duplicate of the converted event", dup, err)
	}
	if v, err := s.Token(ctx, "redeliver/ns/x"); v != "v1" || err != nil {
		t.Errorf("token %q (%v)", v, err)
	}
	var want int64
	for i := range 40 {
		want += int64(len(fmt.Sprintf(`{"id":"e%d"}`, i)))
	}
	if usage, err := s.Usage(ctx); err != nil || usage["ns/acme"] != want {
		t.Errorf("usage %v (%v), want ns/acme %d", usage, err, want)
	}
	if err := s.Check(); err != nil {
		t.Errorf("check: %v", err)
	}
}

// TestPebbleConversionCutShortStartsAgain: a Pebble directory without the converted
// mark (the process died mid-conversion) is thrown away and the conversion made again
// from the unchanged bbolt file.
func TestPebbleConversionCutShortStartsAgain(t *testing.T) {
	dir := t.TempDir()
	writePreviousRelease(t, dir)
	partial, err := openPebble(filepath.Join(dir, pebbleDir), EmbeddedOptions{Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := partial.Set(metaConverting, []byte("then"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := partial.Set(append(bucketPrefix(bucketEvents), "half-copied"...), []byte("{}"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := partial.Close(); err != nil {
		t.Fatal(err)
	}
	s, lines := openLogged(t, dir)
	defer s.Close()
	if !strings.Contains(lines(), "did not finish") || !strings.Contains(lines(), `"converted the bbolt store to Pebble"`) {
		t.Errorf("the log does not tell of the restarted conversion:\n%s", lines())
	}
	checkConverted(t, s)
}

// TestBoltRefusesAPebbleDirectory: going back to the bbolt engine on a converted
// directory is refused with the flag to use, not answered with an empty store.
func TestBoltRefusesAPebbleDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = OpenEmbedded(dir, EmbeddedOptions{Engine: EngineBolt})
	if err == nil || !strings.Contains(err.Error(), "--embedded-engine pebble") {
		t.Fatalf("bbolt on a Pebble directory: %v, want a refusal naming --embedded-engine pebble", err)
	}
	if _, err := OpenEmbedded(dir, EmbeddedOptions{Engine: "rocks"}); err == nil || !strings.Contains(err.Error(), "--embedded-engine") {
		t.Fatalf("an unknown engine: %v", err)
	}
}

// TestPebbleConversionNeverThrowsAwayAStore: beside a Pebble store, an events.db that is
// not the file converted into it is refused, with both stores left as they were: one
// created next to a store that was never a conversion (a rollback to a release on bbolt
// and back), and one written after a conversion.
func TestPebbleConversionNeverThrowsAwayAStore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		converted bool
		want      string
	}{
		{name: "a store that was never a conversion", want: "never converted into it"},
		{name: "an events.db written after the conversion", converted: true, want: "not that file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.converted {
				writePreviousRelease(t, dir)
			}
			ingestOne(t, func() (*Embedded, error) {
				return OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: logr.Discard()})
			}, "019593fa-5d95-7000-8000-777777777777")
			// The rollback: a release on bbolt creates (or rewrites) events.db.
			ingestOne(t, func() (*Embedded, error) { return OpenBolt(dir, nil) }, "019593fa-5d95-7000-8000-888888888888")
			_, err := OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: logr.Discard()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pebble beside a foreign events.db: %v, want a refusal saying %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, boltFile)); err != nil {
				t.Errorf("events.db was moved or removed: %v", err)
			}
			db, err := openPebble(filepath.Join(dir, pebbleDir), EmbeddedOptions{Log: logr.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, closer, err := db.Get(append(bucketPrefix(bucketEvents), "019593fa-5d95-7000-8000-777777777777"...)); err != nil {
				t.Errorf("the event stored on Pebble is gone: %v", err)
			} else {
				_ = closer.Close()
			}
		})
	}
}

// TestPebbleConversionFinishesTheRename: a conversion that stopped after its mark but
// before renaming events.db renames it at the next start, without copying again.
func TestPebbleConversionFinishesTheRename(t *testing.T) {
	dir := t.TempDir()
	writePreviousRelease(t, dir)
	s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, convertedBoltFile), filepath.Join(dir, boltFile)); err != nil {
		t.Fatal(err)
	}
	s, lines := openLogged(t, dir)
	defer s.Close()
	if strings.Contains(lines(), "converting") {
		t.Errorf("converted again:\n%s", lines())
	}
	if _, err := os.Stat(filepath.Join(dir, convertedBoltFile)); err != nil {
		t.Errorf("events.db not renamed: %v", err)
	}
	checkConverted(t, s)
}

// TestPebbleReadsAfterCloseAreRefused: a read that comes after Close (a request still
// running past the shutdown timeout) gets ErrClosed; Pebble itself would panic.
func TestPebbleReadsAfterCloseAreRefused(t *testing.T) {
	s, err := OpenPebble(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "019593fa-5d95-7000-8000-000000000001"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := s.QueueDepth(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("QueueDepth after Close: %v, want ErrClosed", err)
	}
}

// ingestOne opens a store, stores one event with uuid, and closes it.
func ingestOne(t *testing.T, open func() (*Embedded, error), uuid string) {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), ingest(uuid, "e-"+uuid, time.Now(), PhaseStored)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// openLogged opens dir on Pebble, with the lines it logs.
func openLogged(t *testing.T, dir string) (*Embedded, func() string) {
	t.Helper()
	log, lines := logLines()
	s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return s, lines
}
