package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/go-logr/logr"
	bolt "go.etcd.io/bbolt"
)

// The embedded store's engines, as --embedded-engine names them.
const (
	EnginePebble = "pebble"
	EngineBolt   = "bbolt"
)

// Engines lists the engines OpenEmbedded takes, the default first. bbolt stays the
// default: measured with concurrent load on two cores (docs/performance.md) it costs
// less CPU per event and keeps a lower p99 than Pebble, whose compactions and reads
// through its levels outweigh its cheaper commits; Pebble commits one event alone with
// a third of bbolt's instructions.
var Engines = []string{EngineBolt, EnginePebble}

const (
	// pebbleDir is the Pebble engine's directory in the data directory.
	pebbleDir = "pebble"
	// convertedBoltFile is what the bbolt file is renamed to once converted: kept, so
	// that the previous release can be rolled back to, until the platform team removes it.
	convertedBoltFile = boltFile + ".converted"
	// pebbleMemTable is the size of Pebble's in-memory table (it is flushed to a sorted
	// file when full, while a second one takes writes), and pebbleCache that of its block
	// cache. Both are Go heap without pointers: the collector counts them towards its
	// goal but does not scan them. Measured under load: with an 8 MiB cache a fifth of the
	// CPU went to reading index and filter blocks back for dedup lookups of new keys.
	pebbleMemTable = 16 << 20
	pebbleCache    = 32 << 20
	// convertBatchBytes bounds one batch of a conversion from bbolt.
	convertBatchBytes = 4 << 20
)

// metaConverted marks a Pebble store converted from bbolt: written last, so that its
// absence means a conversion that did not finish.
var metaConverted = []byte("meta\x00converted-from-bbolt")

// EmbeddedOptions configure OpenEmbedded.
type EmbeddedOptions struct {
	// Engine is EngineBolt (the default when empty) or EnginePebble.
	Engine string
	// Observe receives each group commit's duration and size.
	Observe CommitObserver
	// MinFreeDiskBytes is the free space kept on the data directory's filesystem: new
	// events are refused with ErrDiskFull below it. 0: none kept.
	MinFreeDiskBytes int64
	Log              logr.Logger
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
	var s *Embedded
	switch o.Engine {
	case EngineBolt, "":
		if _, err := os.Stat(filepath.Join(dir, pebbleDir)); err == nil {
			return nil, fmt.Errorf("the data directory %s holds a Pebble store (%s/): the bbolt engine cannot read it; start with --embedded-engine %s", dir, pebbleDir, EnginePebble)
		}
		var err error
		if s, err = OpenBolt(dir, o.Observe); err != nil {
			return nil, err
		}
	case EnginePebble:
		db, err := openPebbleConverting(dir, o.Log)
		if err != nil {
			return nil, err
		}
		eng := &pebbleEngine{db: db}
		if err := eng.update(releaseDeadLeases); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("preparing the event store: %w", err)
		}
		s = newEmbedded(eng, o.Observe)
	default:
		return nil, fmt.Errorf("--embedded-engine: unknown engine %q (want one of %v)", o.Engine, Engines)
	}
	if o.MinFreeDiskBytes > 0 {
		s.room = &diskRoom{dir: dir, reserve: o.MinFreeDiskBytes}
	}
	return s, nil
}

// OpenPebble opens (or creates) a Pebble store in dir, converting a bbolt file there.
func OpenPebble(dir string, observe CommitObserver) (*Embedded, error) {
	return OpenEmbedded(dir, EmbeddedOptions{Engine: EnginePebble, Observe: observe, Log: logr.Discard()})
}

func openPebbleConverting(dir string, log logr.Logger) (*pebble.DB, error) {
	boltPath, pebblePath := filepath.Join(dir, boltFile), filepath.Join(dir, pebbleDir)
	_, err := os.Stat(boltPath)
	hasBolt := err == nil
	if !hasBolt {
		return openPebble(pebblePath, log)
	}
	if _, err := os.Stat(pebblePath); err == nil {
		db, err := openPebble(pebblePath, log)
		if err != nil {
			return nil, err
		}
		if _, closer, err := db.Get(metaConverted); err == nil {
			// Converted, but stopped before the bbolt file was renamed.
			_ = closer.Close()
			if err := os.Rename(boltPath, filepath.Join(dir, convertedBoltFile)); err != nil {
				_ = db.Close()
				return nil, fmt.Errorf("renaming the converted bbolt file: %w", err)
			}
			return db, nil
		}
		_ = db.Close()
		log.Info("an earlier conversion from bbolt did not finish: starting it again", "dataDir", dir)
		if err := os.RemoveAll(pebblePath); err != nil {
			return nil, fmt.Errorf("removing the unfinished conversion: %w", err)
		}
	}
	started := time.Now()
	log.Info("converting the bbolt store to Pebble; ingest starts once it is done", "from", boltPath, "to", pebblePath)
	src, err := openBoltFile(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	db, err := openPebble(pebblePath, log)
	if err != nil {
		return nil, err
	}
	keys, err := convertBolt(src, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("converting %s to Pebble (the bbolt file is unchanged; the next start tries again): %w", boltPath, err)
	}
	if err := os.Rename(boltPath, filepath.Join(dir, convertedBoltFile)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("renaming the converted bbolt file: %w", err)
	}
	log.Info("converted the bbolt store to Pebble", "keys", keys, "took", time.Since(started).Round(time.Millisecond).String(),
		"kept", filepath.Join(dir, convertedBoltFile), "note", "the old file is not read again; delete it once this release is kept")
	return db, nil
}

// convertBolt copies every bucket of src into db in batches, then marks db converted,
// synced.
func convertBolt(src *bolt.DB, db *pebble.DB) (int, error) {
	keys := 0
	err := src.View(func(tx *bolt.Tx) error {
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
		if err := batch.Set(metaConverted, []byte(time.Now().UTC().Format(time.RFC3339)), nil); err != nil {
			return err
		}
		return batch.Commit(pebble.Sync)
	})
	return keys, err
}

// openPebble opens the Pebble engine's directory, creating it.
func openPebble(path string, log logr.Logger) (*pebble.DB, error) {
	cache := pebble.NewCache(pebbleCache)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       pebbleMemTable,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log.WithName("pebble")},
	}
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
