package routing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// Holder holds the table a receiver serves from; readers never block and always see one
// whole table.
type Holder struct {
	current atomic.Pointer[Table]
	// changed is signalled (without blocking) after every swap.
	changed chan struct{}
}

// NewHolder returns an empty holder.
func NewHolder() *Holder { return &Holder{changed: make(chan struct{}, 1)} }

// Current is the table being served, or nil before the first load.
func (h *Holder) Current() *Table { return h.current.Load() }

// Swap makes t the served table.
func (h *Holder) Swap(t *Table) {
	h.current.Store(t)
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled after a swap.
func (h *Holder) Changed() <-chan struct{} { return h.changed }

// DiskCache keeps the last good serialized table, so that a receiver restarting while
// the API server is unreachable still serves.
type DiskCache struct {
	Path string
}

// Save writes data atomically and durably: a crash leaves the old copy or the new one.
func (c DiskCache) Save(data []byte) error {
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".routing-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads and decodes the saved table; (nil, nil) when there is none.
func (c DiskCache) Load() (*Table, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("cached routing table %s: %w", c.Path, err)
	}
	return t, nil
}
