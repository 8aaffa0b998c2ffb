package main

import (
	"bytes"
	"strings"
	"testing"
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
		{name: "receiver names a bad proxy list", args: []string{"receiver", "--routing-file", "x", "--trusted-proxies", "10.0.0.0/33"}, wantCode: 2, wantStderr: "--trusted-proxies"},
		{name: "receiver with a missing routing file", args: []string{"receiver", "--routing-file", "/nonexistent/routing.json", "--listen", "127.0.0.1:0", "--probe-listen", "127.0.0.1:0", "--data-dir", "DATADIR"}, wantCode: 1, wantStderr: "routing file /nonexistent/routing.json"},
		{name: "operator rejects unknown flags", args: []string{"operator", "--frobnicate"}, wantCode: 2, wantStderr: "flag provided but not defined: -frobnicate"},
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
			code := dispatch(args, &stdout, &stderr)
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
			t.Errorf("command %q of DESIGN §9 is missing", name)
		}
	}
}
