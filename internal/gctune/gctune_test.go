package gctune

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    int64
		wantErr bool
	}{
		{name: "v2 limited", files: map[string]string{"memory.max": "536870912\n"}, want: 512 << 20},
		{name: "v2 unlimited", files: map[string]string{"memory.max": "max\n"}, want: 0},
		{name: "v1 limited", files: map[string]string{"memory/memory.limit_in_bytes": "268435456\n"}, want: 256 << 20},
		{name: "v1 unlimited", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, want: 0},
		{name: "no cgroup files", files: map[string]string{}, want: 0},
		{name: "garbage", files: map[string]string{"memory.max": "lots"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				path := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := CgroupMemoryLimit(root)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("limit %d, want %d", got, tc.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	limited := t.TempDir()
	if err := os.WriteFile(filepath.Join(limited, "memory.max"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		gcPercent     int
		memoryLimit   int64
		root          string
		wantLimit     int64
		wantLimitFrom string
	}{
		{name: "the cgroup's limit, less headroom", gcPercent: 400, root: limited, wantLimit: 1 << 30 * 9 / 10, wantLimitFrom: "cgroup"},
		{name: "the flag's limit over the cgroup's", gcPercent: 200, memoryLimit: 100 << 20, root: limited, wantLimit: 100 << 20, wantLimitFrom: "flag"},
		{name: "no limit anywhere", gcPercent: 400, root: t.TempDir(), wantLimit: math.MaxInt64, wantLimitFrom: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			s, err := Apply(tc.gcPercent, tc.memoryLimit, tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if got := debug.SetGCPercent(-1); got != tc.gcPercent || s.GCPercent != tc.gcPercent {
				t.Errorf("GC percent %d (reported %d), want %d", got, s.GCPercent, tc.gcPercent)
			}
			debug.SetGCPercent(tc.gcPercent)
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit || s.MemoryLimit != tc.wantLimit || s.MemoryLimitFrom != tc.wantLimitFrom {
				t.Errorf("memory limit %d (reported %d from %s), want %d from %s", got, s.MemoryLimit, s.MemoryLimitFrom, tc.wantLimit, tc.wantLimitFrom)
			}
		})
	}
	t.Run("GOGC and GOMEMLIMIT win", func(t *testing.T) {
		t.Setenv("GOGC", "150")
		t.Setenv("GOMEMLIMIT", "300MiB")
		debug.SetGCPercent(150)
		debug.SetMemoryLimit(300 << 20)
		s, err := Apply(400, 100<<20, limited)
		if err != nil {
			t.Fatal(err)
		}
		if s.GCPercent != 150 || s.GCPercentFrom != "GOGC" || s.MemoryLimit != 300<<20 || s.MemoryLimitFrom != "GOMEMLIMIT" {
			t.Fatalf("settings %+v, want GOGC's 150 and GOMEMLIMIT's 300 MiB", s)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		if _, err := Apply(0, 0, limited); err == nil {
			t.Error("--gc-percent 0 accepted")
		}
		if _, err := Apply(100, -1, limited); err == nil {
			t.Error("a negative --memory-limit accepted")
		}
	})
}
