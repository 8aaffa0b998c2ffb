package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

func TestDispatch(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
		wantStdout string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "usage: hookgate"},
		{name: "help", args: []string{"--help"}, wantCode: 0, wantStderr: "commands:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "hookgate dev"},
		{name: "operator needs its namespace", args: []string{"operator"}, wantCode: 2, wantStderr: "--receiver-namespace is required"},
		{name: "receiver needs a namespace or a routing file", args: []string{"receiver"}, wantCode: 2, wantStderr: "--namespace is required"},
		{name: "receiver names a bad proxy list", args: []string{"receiver", "--routing-file", "x", "--trusted-proxies", "10.0.0.0/33"}, wantCode: 2, wantStderr: "flag -trusted-proxies: netip.ParsePrefix"},
		{name: "receiver with a missing routing file", args: []string{"receiver", "--routing-file", "/nonexistent/routing.json", "--listen", "127.0.0.1:0", "--probe-listen", "127.0.0.1:0", "--data-dir", "DATADIR"}, wantCode: 1, wantStderr: "routing file /nonexistent/routing.json"},
		{name: "operator rejects unknown flags", args: []string{"operator", "--frobnicate"}, wantCode: 2, wantStderr: "flag provided but not defined: -frobnicate"},
		{name: "receiver refuses a zero collector factor", args: []string{"receiver", "--routing-file", "x", "--gc-percent", "0"}, wantCode: 2, wantStderr: "--gc-percent must be positive, got 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "DATADIR" {
					args[i] = t.TempDir()
				}
			}
			code := dispatch(context.Background(), args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
		})
	}
}

func TestEveryContractCommandExists(t *testing.T) {
	for _, name := range []string{"operator", "receiver", "send", "status"} {
		if _, ok := commands[name]; !ok {
			t.Errorf("command %q of the command-line contract (docs/reference.md) is missing", name)
		}
	}
}

// TestMain lets a test run the binary's own main path in a child process (the same test
// binary, re-executed): each child gets its own signal handler and metrics registry, as
// `hookgate` does.
func TestMain(m *testing.M) {
	if args := os.Getenv("HOOKGATE_TEST_MAIN_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(dispatch(ctrl.SetupSignalHandler(), argv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestLogLevelFlag runs the receiver with and without --zap-log-level=debug: only the
// debug runs print its V(1) start-up line.
func TestLogLevelFlag(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flags     []string
		wantDebug bool
	}{
		{"default level", nil, false},
		{"debug level", []string{"--zap-log-level=debug"}, true},
		{"development mode", []string{"--zap-devel"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			routingFile := filepath.Join(dir, "routing.json")
			if err := os.WriteFile(routingFile, []byte(`{"formatVersion":1,"serial":1,"partners":[],"endpoints":[]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			args, _ := json.Marshal(append([]string{"receiver", "--routing-file", routingFile, "--data-dir", filepath.Join(dir, "data"),
				"--listen", "127.0.0.1:0", "--probe-listen", "127.0.0.1:0"}, tc.flags...))
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "HOOKGATE_TEST_MAIN_ARGS="+string(args))
			stderr := &lockedBuffer{}
			cmd.Stderr, cmd.Stdout = stderr, io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(stderr.String(), "receiver serving") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("receiver: %v\n%s", err, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(out, "receiver serving") {
				t.Fatalf("the receiver never served: %s", out)
			}
			gotDebug := strings.Contains(out, "starting")
			if gotDebug != tc.wantDebug {
				t.Errorf("debug start-up line printed=%v, want %v; stderr:\n%s", gotDebug, tc.wantDebug, out)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer that a child's output is copied into while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRepositoryStandsAlone keeps the repository's references inside it: nothing points to
// a design file outside the tree, and every docs/ page that code or docs name exists.
func TestRepositoryStandsAlone(t *testing.T) {
	outside := regexp.MustCompile(`\.\./shared|DESIGN\.md|DESIGN §`)
	docsRef := regexp.MustCompile(`docs/[a-z0-9-]+\.md`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sh", ".yaml", ".yml", ".json", ".tpl", ".js":
		default:
			if d.Name() != "Makefile" && d.Name() != "Dockerfile" {
				return nil
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if path == "main_test.go" {
			return nil
		}
		if m := outside.Find(raw); m != nil {
			t.Errorf("%s refers to %q, outside the repository: point to docs/ instead", path, m)
		}
		for _, ref := range docsRef.FindAll(raw, -1) {
			if _, err := os.Stat(string(ref)); err != nil {
				t.Errorf("%s refers to %s, which does not exist", path, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
