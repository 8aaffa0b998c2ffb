package receiver

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// lookup and scalar are what bodyValue replaces: a decoded map walked by path. They are
// the reference bodyValue must agree with.
func lookup(doc map[string]any, path string) any {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	var cur any = doc
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	}
	return ""
}

var scanPaths = []string{"id", "type", "event.type", "event_id", "data.id", "$.data.eventId", "a.b.c"}

func decodedValue(body []byte, path string) (string, bool) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// Decode and More alone let trailing bytes such as "{}}" through: the whole body must
	// be valid JSON too.
	if err := dec.Decode(&doc); err != nil || doc == nil || dec.More() || !json.Valid(body) {
		return "", false
	}
	return scalar(lookup(doc, path)), true
}

func TestBodyValue(t *testing.T) {
	for _, c := range []struct {
		body, path, want string
	}{
		{`{"id":"evt_1","type":"order.created"}`, "id", "evt_1"},
		{`{ "id" : 42 , "type":"x"}`, "id", "42"},
		{`{"id":-1.5e3}`, "id", "-1.5e3"},
		{`{"event":{"type":"message","x":[1,{"type":"no"}]}}`, "event.type", "message"},
		{`{"data":{"eventId":"e\u00e9\"x"}}`, "$.data.eventId", "eé\"x"},
		{`{"id":"first","id":"last"}`, "id", "last"},
		{`{"\u0069d":"escaped key"}`, "id", "escaped key"},
		{`{"id":{"nested":true}}`, "id", ""},
		{`{"id":null}`, "id", ""},
		{`{"id":true}`, "id", ""},
		{`{"data":"not an object"}`, "data.id", ""},
		{`{"s":"a } b ] c , d","id":"after"}`, "id", "after"},
		{`{}`, "id", ""},
	} {
		if !bodyObject([]byte(c.body)) {
			t.Fatalf("%s is not an object to bodyObject", c.body)
		}
		got := bodyValue([]byte(c.body), c.path)
		want, _ := decodedValue([]byte(c.body), c.path)
		if got != c.want || got != want {
			t.Errorf("bodyValue(%s, %s) = %q, want %q (decoded: %q)", c.body, c.path, got, c.want, want)
		}
	}
	for _, bad := range []string{``, `[]`, `null`, `"x"`, `{"a":1}{"b":2}`, `{"a":}`, `{"a":1,}`, `{"a":"\x01"}`} {
		if bodyObject([]byte(bad)) {
			t.Errorf("bodyObject(%q) = true", bad)
		}
	}
}

// FuzzBodyValue: on every body, bodyObject agrees with decoding into a map, and
// bodyValue with looking the path up in it.
func FuzzBodyValue(f *testing.F) {
	for _, s := range []string{`{"id":"evt_1","type":"t"}`, `{"event":{"type":"message"}}`, `{"data":{"id":7,"eventId":"x"}}`, `{"id":"a","id":{"b":1}}`, `{"a":{"b":{"c":"\ud83d\ude00"}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, decodable := decodedValue(body, "id")
		if bodyObject(body) != decodable {
			t.Fatalf("bodyObject(%q) = %t, decoding says %t", body, bodyObject(body), decodable)
		}
		if !decodable {
			return
		}
		for _, p := range scanPaths {
			want, _ := decodedValue(body, p)
			if got := bodyValue(body, p); got != want {
				t.Fatalf("bodyValue(%q, %s) = %q, decoded %q", body, p, got, want)
			}
		}
	})
}

// scanValid is the scanner's answer for any JSON text, not only an object.
func scanValid(b []byte) bool {
	end, ok := scanValueAt(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, end) == len(b)
}

func TestScanAgreesWithValid(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObject := func(n int) string { return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1) }
	for _, c := range []string{
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`, `-1.25e-10`, `2x`,
		`true`, `tru`, `truex`, `false`, `null`, `nul`, `[]`, `[1,]`, `[,1]`, `[1 2]`, ` [ 1 , 2 ] `,
		`""`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/"`, "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", `"unterminated`, `"\`,
		`{}`, `{"a":1}`, `{"a" 1}`, `{"a":1,}`, `{a:1}`, `{"a":1}}`, `{"a":{"b":[true,false,null]}}`, "\ufeff{}", "{}\n\t ", "\x00",
		deep(maxJSONDepth), deep(maxJSONDepth + 1), deepObject(maxJSONDepth), deepObject(maxJSONDepth + 1),
	} {
		if got, want := scanValid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("scan(%.40q) = %t, json.Valid says %t", c, got, want)
		}
	}
}

// FuzzScanJSON: the one-pass scanner accepts exactly what json.Valid does, and the
// member index finds what walking the body finds.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"id":"evt_1","type":"t","n":-1.5e3}`, `[1,[2,{"a":null}]]`, `"\u00e9\n"`, `{"id":"a","id":{"b":1}}`, `{"a":tru}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, want := scanValid(body), json.Valid(body); got != want {
			t.Fatalf("scan(%q) = %t, json.Valid says %t", body, got, want)
		}
		obj, ok := scanObject(body)
		if !ok {
			return
		}
		for _, p := range scanPaths {
			first, rest, nested := strings.Cut(p, ".")
			start, end, found := member(body, skipSpace(body, 0), strings.TrimPrefix(first, "$"))
			if first == "$" {
				first, rest, nested = strings.Cut(rest, ".")
				start, end, found = member(body, skipSpace(body, 0), first)
			}
			for part := range strings.SplitSeq(rest, ".") {
				if found && nested {
					start, end, found = member(body, start, part)
				}
			}
			want := ""
			if found {
				want = renderScalar(body[start:end])
			}
			if got := obj.value(p); got != want {
				t.Fatalf("value(%q, %s) = %q, walking the body gives %q", body, p, got, want)
			}
		}
	})
}

// bodyObject and bodyValue give the scanner's answers for a raw body; member, with
// skipValue and skipString, walks a body without an index, as the ingest path did before
// its single pass: the reference the index lookups are checked against.

// bodyObject reports whether body is one valid JSON object.
func bodyObject(body []byte) bool {
	_, ok := scanObject(body)
	return ok
}

// bodyValue is the value at a dotted path ("data.id", optionally "$." first) of a body
// that bodyObject accepted, rendered as scalar renders it: a string unescaped, a number
// as written, anything else "". As for a decoded map, the last of duplicate keys wins.
func bodyValue(body []byte, path string) string {
	obj, ok := scanObject(body)
	if !ok {
		return ""
	}
	return obj.value(path)
}

// member finds key in the object starting at i and returns its value's span.
func member(b []byte, i int, key string) (start, end int, found bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, 0, false
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		keyEnd := skipString(b, i)
		matches := keyEquals(b[i:keyEnd], key)
		i = skipSpace(b, keyEnd)
		i = skipSpace(b, i+1) // the colon
		valueEnd := skipValue(b, i)
		if matches {
			start, end, found = i, valueEnd, true // keep looking: the last duplicate wins
		}
		i = skipSpace(b, valueEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return start, end, found
}

// skipString returns the index after the string token at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
