package jsontext

import (
	"encoding/json"
	"testing"
)

func checkString(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s)
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got[1:], want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "evt_1", `quote " backslash \`, "<script>&", "é", "\u2028", "bad \xff", "tab\t", "\x7f"} {
		checkString(t, s)
	}
}

// FuzzAppendString: every string is written as encoding/json writes it.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"evt_1", `a"b`, "<&>", "\u2029", "\xc3"} {
		f.Add(s)
	}
	f.Fuzz(checkString)
}
