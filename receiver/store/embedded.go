package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/go-logr/logr"
	bolt "go.etcd.io/bbolt"
)

// The embedded store's engines, as --embedded-engine names them.
const (
	EnginePebble = "pebble"
	EngineBolt   = "bbolt"
)

// Engines lists the engines OpenEmbedded takes, the default first. Pebble is the
// default: its commit is one append to its write-ahead log and one sync, pipelined
// with the next group, where bbolt rewrites a page per bucket and syncs twice, so it
// takes more events per second at less CPU and memory (docs/performance.md). A data
// directory written by a release on bbolt is converted at its first start on Pebble;
// bbolt stays selectable, for a rollback and for comparison.
var Engines = []string{EnginePebble, EngineBolt}

const (
	// pebbleDir is the Pebble engine's directory in the data directory.
	pebbleDir = "pebble"
	// convertedBoltFile is what the bbolt file is renamed to once converted: kept, so
	// that the previous release can be rolled back to, until the platform team removes it.
	convertedBoltFile = boltFile + ".converted"
	// pebbleMemTable is the size of Pebble's in-memory table (it is flushed to a sorted
	// file when full, while a second one takes writes), and pebbleCache that of its block
	// cache for table blocks. Both are Go heap without pointers: the collector counts them
	// towards its goal but does not scan them. Pebble reserves each memtable's size out
	// of the block cache, so the cache is made that much larger (see openPebble): sized
	// at pebbleCache alone, two 16 MiB memtables left it no room, nothing was cached
	// (hit rate 9%), and a fifth of the CPU under load went to reading filter and index
	// blocks back for dedup lookups of new keys.
	pebbleMemTable = 16 << 20
	pebbleCache    = 32 << 20
	// convertBatchBytes bounds one batch of a conversion from bbolt.
	convertBatchBytes = 4 << 20
)

// metaConverting marks a conversion from bbolt under way (written first, removed when
// done); metaConverted a finished one, holding the converted file's identity.
var (
	metaConverting = []byte("meta\x00converting-from-bbolt")
	metaConverted  = []byte("meta\x00converted-from-bbolt")
)

// EmbeddedOptions configure OpenEmbedded.
type EmbeddedOptions struct {
	// Engine is EnginePebble (the default when empty) or EngineBolt.
	Engine string
	// Observe receives each group commit's duration and size.
	Observe CommitObserver
	// MinFreeDiskBytes is the free space kept on the data directory's filesystem: new
	// events are refused with ErrDiskFull below it. 0: none kept.
	MinFreeDiskBytes int64
	Log              logr.Logger
	// fs is the filesystem under Pebble (nil: the operating system's); tests stall its
	// syncs.
	fs vfs.FS
}

// OpenEmbedded opens (or creates) the embedded store in dir on its engine. On Pebble, a data
// directory that holds a bbolt file from an earlier release is converted first: every
// bucket is copied into Pebble, and the bbolt file renamed to events.db.converted; a
// conversion cut short (a crash) starts again from the bbolt file at the next start.
func OpenEmbedded(dir string, o EmbeddedOptions) (*Embedded, error) {
	if o.MinFreeDiskBytes < 0 {
		return nil, fmt.Errorf("--min-free-disk-bytes must not be negative, got %d", o.MinFreeDiskBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	var room *diskRoom
	if o.MinFreeDiskBytes > 0 {
		room = &diskRoom{dir: dir, reserve: o.MinFreeDiskBytes}
	}
	switch o.Engine {
	case EngineBolt:
		if _, err := os.Stat(filepath.Join(dir, pebbleDir)); err == nil {
			return nil, fmt.Errorf("the data directory %s holds a Pebble store (%s/): the bbolt engine cannot read it; start with --embedded-engine %s", dir, pebbleDir, EnginePebble)
		}
		db, err := openBoltFile(dir)
		if err != nil {
			return nil, err
		}
		return newEmbedded(boltEngine{db}, o.Observe, room), nil
	case EnginePebble, "":
		db, err := openPebbleConverting(dir, o)
		if err != nil {
			return nil, err
		}
		eng := &pebbleEngine{db: db}
		if err := eng.update(func(tx kvTx) error {
			if err := releaseDeadLeases(tx); err != nil {
				return err
			}
			if err := buildPhaseIndexes(tx); err != nil {
				return err
			}
			return buildListingIndexes(tx)
		}); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("preparing the event store: %w", err)
		}
		return newEmbedded(eng, o.Observe, room), nil
	default:
		return nil, fmt.Errorf("--embedded-engine: unknown engine %q (want one of %v)", o.Engine, Engines)
	}
}

// OpenPebble opens (or creates) a Pebble store in dir, converting a bbolt file there.
func OpenPebble(dir string, observe CommitObserver) (*Embedded, error) {
	return OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Observe: observe, Log: logr.Discard()})
}

func openPebbleConverting(dir string, o EmbeddedOptions) (*pebble.DB, error) {
	log := o.Log
	boltPath, pebblePath := filepath.Join(dir, boltFile), filepath.Join(dir, pebbleDir)
	if _, err := os.Stat(boltPath); err != nil {
		return openPebble(pebblePath, o)
	}
	if _, err := os.Stat(pebblePath); err == nil {
		db, done, err := resumeConversion(dir, o)
		if err != nil || done {
			return db, err
		}
	}
	started := time.Now()
	log.Info("converting the bbolt store to Pebble; ingest starts once it is done", "from", boltPath, "to", pebblePath)
	db, err := openPebble(pebblePath, o)
	if err != nil {
		return nil, err
	}
	keys, err := convertBolt(dir, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("converting %s to Pebble (the bbolt file is kept; the next start converts it again): %w", boltPath, err)
	}
	if err := os.Rename(boltPath, filepath.Join(dir, convertedBoltFile)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("renaming the converted bbolt file: %w", err)
	}
	log.Info("converted the bbolt store to Pebble", "keys", keys, "took", time.Since(started).Round(time.Millisecond).String(),
		"kept", filepath.Join(dir, convertedBoltFile), "note", "the old file is not read again; delete it once this release is kept")
	return db, nil
}

// resumeConversion looks at a data directory holding both events.db and a Pebble store.
// A conversion that finished but was not renamed is finished (done); one cut short is
// thrown away, to be made again (not done, no error). Anything else is refused, so that
// neither store's events are lost: a Pebble store that was never a conversion (an
// events.db created beside it, say by a rollback to a release on bbolt), or an events.db
// that is not the file converted (written since).
func resumeConversion(dir string, o EmbeddedOptions) (*pebble.DB, bool, error) {
	log := o.Log
	boltPath, pebblePath := filepath.Join(dir, boltFile), filepath.Join(dir, pebbleDir)
	db, err := openPebble(pebblePath, o)
	if err != nil {
		return nil, false, err
	}
	converted, err := metaValue(db, metaConverted)
	if err == nil {
		var converting []byte
		converting, err = metaValue(db, metaConverting)
		switch {
		case err != nil:
		case converted != nil:
			identity, idErr := fileIdentity(boltPath)
			if idErr != nil {
				err = idErr
				break
			}
			if identity != string(converted) {
				err = fmt.Errorf("the data directory %s holds a Pebble store converted from an events.db and an events.db that is not that file (written since, perhaps by a release on bbolt): its events are not in the Pebble store; move it out of the data directory, or remove %s/ to convert it again", dir, pebbleDir)
				break
			}
			if err = os.Rename(boltPath, filepath.Join(dir, convertedBoltFile)); err == nil {
				return db, true, nil // converted, but stopped before the file was renamed
			}
		case converting != nil:
			_ = db.Close()
			log.Info("an earlier conversion from bbolt did not finish: starting it again", "dataDir", dir)
			if err := os.RemoveAll(pebblePath); err != nil {
				return nil, false, fmt.Errorf("removing the unfinished conversion: %w", err)
			}
			return nil, false, nil
		default:
			err = fmt.Errorf("the data directory %s holds both a Pebble store (%s/) and an events.db that was never converted into it: move one of them out of the data directory", dir, pebbleDir)
		}
	}
	_ = db.Close()
	return nil, false, err
}

// metaValue is a marker's value, nil when it is not set.
func metaValue(db *pebble.DB, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the event store: %w", err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

// fileIdentity tells one bbolt file from another written since: its size and time of
// last change.
func fileIdentity(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d", st.Size(), st.ModTime().UnixNano()), nil
}

// convertBolt copies every bucket of dir's bbolt file into db: the converting mark first,
// then the buckets in batches, then, synced, the converted mark holding the file's
// identity as the copy left it.
func convertBolt(dir string, db *pebble.DB) (int, error) {
	if err := db.Set(metaConverting, []byte(time.Now().UTC().Format(time.RFC3339)), pebble.Sync); err != nil {
		return 0, err
	}
	src, err := openBoltFile(dir)
	if err != nil {
		return 0, err
	}
	keys := 0
	err = src.View(func(tx *bolt.Tx) error {
		batch := db.NewBatch()
		defer func() { _ = batch.Close() }()
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			prefix := bucketPrefix(name)
			if err := b.ForEach(func(k, v []byte) error {
				if err := batch.Set(append(append(make([]byte, 0, len(prefix)+len(k)), prefix...), k...), v, nil); err != nil {
					return err
				}
				keys++
				if batch.Len() >= convertBatchBytes {
					if err := batch.Commit(pebble.NoSync); err != nil {
						return err
					}
					batch.Reset()
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return batch.Commit(pebble.NoSync)
	})
	if closeErr := src.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, err
	}
	identity, err := fileIdentity(filepath.Join(dir, boltFile))
	if err != nil {
		return 0, err
	}
	mark := db.NewBatch()
	defer func() { _ = mark.Close() }()
	if err := mark.Set(metaConverted, []byte(identity), nil); err != nil {
		return 0, err
	}
	if err := mark.Delete(metaConverting, nil); err != nil {
		return 0, err
	}
	// Synced: the log up to here, the copy's batches with it, is on disk.
	return keys, mark.Commit(pebble.Sync)
}

// openPebble opens the Pebble engine's directory, creating it.
func openPebble(path string, o EmbeddedOptions) (*pebble.DB, error) {
	// The mutable memtable and the one being flushed are reserved out of the cache.
	cache := pebble.NewCache(pebbleCache + 2*pebbleMemTable)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       pebbleMemTable,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{o.Log.WithName("pebble")},
		FS:                 o.fs,
	}
	opts.Experimental.SpanPolicyFunc = bucketSpans
	for i := range opts.Levels {
		// Most dedup lookups are of keys that are not there: a filter answers those
		// without reading the table.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(path, opts)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("opening the event store: %w", err)
		}
		return nil, fmt.Errorf("opening the event store (Pebble, %s): %w", path, err)
	}
	return db, nil
}

// pebbleLogger sends Pebble's messages to the receiver's log: its routine ones (flushes,
// compactions, WAL recovery) at debug level.
type pebbleLogger struct{ log logr.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(nil, fmt.Sprintf(format, args...))
}

// Fatalf: Pebble calls it when it cannot go on (its write-ahead log or manifest could
// not be written): the process exits, and a restart recovers from the log, where every
// acknowledged event is.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(nil, "the event store stopped: "+fmt.Sprintf(format, args...))
	os.Exit(70)
}

// bucketSpans ends each table a flush or compaction writes where a bucket ends, so that
// no table holds keys of two buckets. Most of an event's bytes are in buckets keyed by
// time (its record, its payload), and a table of those covers only the newest keys: a
// compaction into the level below then rewrites the few tables of the bucket it
// overlaps, not every table between the random-keyed buckets (dedup keys, event ids)
// around them. Measured with 64 writers of 1 KiB events (docs/performance.md): the
// bytes compactions write halve, the store's CPU per event falls by a fifth.
func bucketSpans(start []byte) (pebble.SpanPolicy, []byte, error) {
	i := bytes.IndexByte(start, 0)
	if i < 0 {
		return pebble.SpanPolicy{}, nil, nil // not a bucket's key (none are written)
	}
	return pebble.SpanPolicy{}, prefixEnd(start[:i+1]), nil
}
