package receiver

import (
	"encoding/json"
	"strings"
)

// The ingest path reads a few values out of each body (the event id, its type, a
// sub-topic or tenant) and decodes the whole body only for a destination filter that
// needs it: a body checked with json.Valid is walked in place, without building a map of
// every value in it.

// bodyObject reports whether body is one valid JSON object.
func bodyObject(body []byte) bool {
	i := skipSpace(body, 0)
	return i < len(body) && body[i] == '{' && json.Valid(body)
}

// bodyValue is the value at a dotted path ("data.id", optionally "$." first) of a body
// that bodyObject accepted, rendered as scalar renders it: a string unescaped, a number
// as written, anything else "". As for a decoded map, the last of duplicate keys wins.
func bodyValue(body []byte, path string) string {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	start, end := 0, len(body)
	for part := range strings.SplitSeq(path, ".") {
		var ok bool
		if start, end, ok = member(body, skipSpace(body, start), part); !ok {
			return ""
		}
	}
	switch v := body[start:end]; {
	case len(v) > 0 && v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	case len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9'):
		return string(v)
	}
	return ""
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

// keyEquals compares a JSON string token with key, unescaping only when it must.
func keyEquals(tok []byte, key string) bool {
	raw := tok[1 : len(tok)-1]
	if !strings.Contains(string(raw), `\`) {
		return string(raw) == key
	}
	var s string
	return json.Unmarshal(tok, &s) == nil && s == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
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
