package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
)

// DecodeFile reads a routing file: the gzip'd form of the Secret, or plain JSON for
// hand-written and generated files. Plain JSON without a hash is finalized here.
func DecodeFile(data []byte) (*Table, error) {
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return Decode(data)
	}
	var t Table
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("parsing routing file: %w", err)
	}
	if t.FormatVersion == 0 {
		t.FormatVersion = FormatVersion
	}
	if t.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("routing file format %d is not supported (wants %d)", t.FormatVersion, FormatVersion)
	}
	if t.Hash == "" {
		t.Finalize(nil)
	} else if got := t.contentHash(); got != t.Hash {
		return nil, fmt.Errorf("routing file hash mismatch: content %s, header %s", got, t.Hash)
	}
	t.buildIndex()
	return &t, nil
}

// FileWatcher loads a routing file into a Holder and reloads it when it changes; a file
// that does not parse is reported and the last good table kept.
type FileWatcher struct {
	Path   string
	Holder *Holder
	Log    logr.Logger
	OnLoad func(*Table)
	// Interval between checks of the file's modification time and size.
	Interval time.Duration
}

// Load reads the file once.
func (w *FileWatcher) Load() error {
	data, err := os.ReadFile(w.Path)
	if err != nil {
		return err
	}
	t, err := DecodeFile(data)
	if err != nil {
		return err
	}
	w.Holder.Swap(t)
	w.Log.Info("routing table loaded from file", "file", w.Path, "serial", t.Serial, "hash", t.Hash, "partners", len(t.Partners), "endpoints", len(t.Endpoints))
	if w.OnLoad != nil {
		w.OnLoad(t)
	}
	return nil
}

// Start watches the file until ctx ends.
func (w *FileWatcher) Start(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var lastMod time.Time
	var lastSize int64 = -1
	if fi, err := os.Stat(w.Path); err == nil {
		lastMod, lastSize = fi.ModTime(), fi.Size()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		fi, err := os.Stat(w.Path)
		if err != nil || (fi.ModTime().Equal(lastMod) && fi.Size() == lastSize) {
			continue
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		if err := w.Load(); err != nil {
			w.Log.Error(err, "routing file changed but does not load; serving the last good table", "file", w.Path)
		}
	}
}
