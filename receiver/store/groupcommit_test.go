package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/go-logr/logr"
)

// stallingFS holds every sync of Pebble's write-ahead log while stalled.
type stallingFS struct {
	vfs.FS
	mu      sync.Mutex
	release chan struct{} // nil: not stalled
	syncs   chan struct{} // a sync reached the stall
}

func newStallingFS() *stallingFS {
	return &stallingFS{FS: vfs.Default, syncs: make(chan struct{}, 1024)}
}

func (fs *stallingFS) stall() {
	fs.mu.Lock()
	fs.release = make(chan struct{})
	fs.mu.Unlock()
}

func (fs *stallingFS) resume() {
	fs.mu.Lock()
	close(fs.release)
	fs.release = nil
	fs.mu.Unlock()
}

func (fs *stallingFS) wait() {
	fs.mu.Lock()
	release := fs.release
	fs.mu.Unlock()
	if release != nil {
		fs.syncs <- struct{}{}
		<-release
	}
}

func (fs *stallingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return stallingFile{File: f, fs: fs}, nil
}

func (fs *stallingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *stallingFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fs.wrap(name, f, err)
}

type stallingFile struct {
	vfs.File
	fs *stallingFS
}

func (f stallingFile) Sync() error     { f.fs.wait(); return f.File.Sync() }
func (f stallingFile) SyncData() error { f.fs.wait(); return f.File.SyncData() }

// On Pebble the committer applies the next group while the previous one's log write is
// being synced, and answers nobody before their group is synced: with the log's syncs
// held, a second event is applied (readable, and seen by the dedup of a third) while
// the first is unsynced, and none of the three is answered until the syncs resume.
func TestPipelinedCommitAnswersOnlyOnceSynced(t *testing.T) {
	fs := newStallingFS()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Log: logr.Discard(), fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.pipelined == nil {
		t.Fatal("the Pebble engine does not pipeline its commits")
	}
	fs.stall()
	type outcome struct {
		name string
		res  IngestResult
		err  error
	}
	answered := make(chan outcome, 3)
	send := func(name string, in Ingest) {
		go func() {
			res, err := s.Ingest(context.Background(), in)
			answered <- outcome{name, res, err}
		}()
	}
	now := time.Now()
	send("first", ingest("u00001", "e1", now, PhaseStored))
	<-fs.syncs // the first group is applied, its sync held
	send("second", ingest("u00002", "e2", now, PhaseStored))
	waitFor(t, "the second event applied while the first is unsynced", func() bool {
		n, err := s.Count()
		return err == nil && n == 2
	})
	send("repeat", ingest("u00003", "e1", now, PhaseStored))
	select {
	case o := <-answered:
		t.Fatalf("%s answered (%v) before its group was synced", o.name, o.err)
	case <-time.After(200 * time.Millisecond):
	}
	fs.resume()
	got := map[string]outcome{}
	for range 3 {
		o := <-answered
		if o.err != nil {
			t.Fatalf("%s: %v", o.name, o.err)
		}
		got[o.name] = o
	}
	if r := got["repeat"].res; !r.Duplicate || r.Event.UUID != "u00001" {
		t.Fatalf("the repeat of e1: duplicate %v of %s, want a duplicate of u00001 (applied, unsynced, in the group before)", r.Duplicate, r.Event.UUID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := OpenPebble(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	for _, id := range []string{"u00001", "u00002"} {
		if _, err := reopened.Get(context.Background(), id); err != nil {
			t.Fatalf("%s after reopening: %v", id, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
