package main

import (
	"testing"

	"github.com/hookgate/hookgate/internal/gctune"
	"github.com/hookgate/hookgate/receiver"
	"github.com/hookgate/hookgate/receiver/store"
)

func TestDefaultGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		engine, url string
		want        int
	}{
		{"the default store (embedded, Pebble)", "", "", gctune.PebbleGCPercent},
		{"embedded on bbolt", store.EngineBolt, "", gctune.DefaultGCPercent},
		{"PostgreSQL, whatever the embedded engine", store.EnginePebble, "postgres://hookgate@db:5432/hookgate", gctune.DefaultGCPercent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := receiver.DefaultOptions()
			if tc.engine != "" {
				opts.EmbeddedEngine = tc.engine
			}
			opts.DatabaseURL = tc.url
			if got := defaultGCPercent(opts); got != tc.want {
				t.Errorf("defaultGCPercent = %d, want %d", got, tc.want)
			}
		})
	}
}
