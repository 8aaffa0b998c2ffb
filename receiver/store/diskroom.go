package store

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrDiskFull: the data directory's filesystem has less free space than the store keeps
// in reserve; the event was not stored.
var ErrDiskFull = errors.New("the data directory's disk is full")

// DefaultMinFreeDiskBytes is the free space the embedded store keeps on its filesystem:
// new events are refused below it, so that the engine itself never runs out of room for
// what it must write to go on (Pebble's flushes, compactions and manifest; bbolt's
// freelist and growth), and deletions and delivery records still fit.
const DefaultMinFreeDiskBytes = 128 << 20

// diskRoom decides, before each group commit, whether its new events fit above the
// reserve. A statfs per commit is a microsecond; commits are at most a few thousand a
// second.
type diskRoom struct {
	dir     string
	reserve int64
	// full is set while the last check found no room, for Healthy.
	full atomic.Bool
}

// admit reports whether bytes more fit above the reserve.
func (d *diskRoom) admit(bytes int64) error {
	if d == nil || d.reserve <= 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		return fmt.Errorf("reading the data directory's free space: %w", err)
	}
	free := int64(st.Bavail) * st.Bsize //nolint:gosec // block counts of a real filesystem fit an int64
	if free-bytes < d.reserve {
		d.full.Store(true)
		return fmt.Errorf("%w: %d bytes free, %d kept in reserve (--min-free-disk-bytes)", ErrDiskFull, free, d.reserve)
	}
	d.full.Store(false)
	return nil
}
