package receiver

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// The ingest path reads a few values out of each body (the event id, its type, a
// sub-topic or tenant) and decodes the whole body only for a destination filter that
// needs it. One pass checks the body is one valid JSON object and notes where each of
// its top-level members is; values are then read in place, without building a map of
// every value in it or walking the body again for each one.

// maxJSONDepth is encoding/json's nesting limit, past which json.Valid refuses a body.
const maxJSONDepth = 10000

// jsonObject is a body scanObject accepted and the spans of its top-level members.
type jsonObject struct {
	raw     []byte
	members []memberSpan
}

// memberSpan locates one member: its key's string token and its value.
type memberSpan struct {
	keyStart, keyEnd, valueStart, valueEnd int
}

// scanObject checks that body is one JSON object, as json.Valid would (which does not
// check UTF-8 either), and indexes its top-level members.
func scanObject(body []byte) (jsonObject, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return jsonObject{}, false
	}
	obj := jsonObject{raw: body, members: make([]memberSpan, 0, 8)}
	end, ok := scanObjectAt(body, i, 1, &obj.members)
	if !ok || skipSpace(body, end) != len(body) {
		return jsonObject{}, false
	}
	return obj, true
}

// value is the value at a dotted path ("data.id", optionally "$." first), rendered as
// a scalar: a string unescaped, a number as written, anything else "". As for a decoded
// map, the last of duplicate keys wins. The first part is looked up in the index; an
// object on the way is scanned for its members only when a path goes into it.
func (o jsonObject) value(path string) string { return renderScalar(o.token(path)) }

// token is the raw JSON token of the value at a dotted path, as value finds it; nil when
// there is none.
func (o jsonObject) token(path string) []byte {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	members := o.members
	start, end := 0, 0
	for part := range strings.SplitSeq(path, ".") {
		if members == nil {
			if o.raw[start] != '{' {
				return nil
			}
			scanObjectAt(o.raw, start, 1, &members) // valid: the whole body was scanned
		}
		found := false
		for _, m := range members {
			if keyEquals(o.raw[m.keyStart:m.keyEnd], part) {
				start, end, found = m.valueStart, m.valueEnd, true
			}
		}
		if !found {
			return nil
		}
		members = nil
	}
	return o.raw[start:end]
}

func renderScalar(v []byte) string {
	switch {
	case len(v) > 0 && v[0] == '"':
		if raw := v[1 : len(v)-1]; bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return string(raw) // what decoding would give: nothing to unescape or replace
		}
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

// keyEquals compares a JSON string token with key, unescaping only when it must.
// validUTF8Token reports whether a token is valid UTF-8 once unescaped: a string's raw
// bytes are UTF-8 and its \u escapes pair their surrogates. Decoding replaces what is not
// with U+FFFD, which would make different values equal. Other tokens are ASCII.
func validUTF8Token(tok []byte) bool {
	if len(tok) < 2 || tok[0] != '"' {
		return true
	}
	raw := tok[1 : len(tok)-1]
	if !utf8.Valid(raw) {
		return false
	}
	for i := bytes.IndexByte(raw, '\\'); i >= 0 && i < len(raw); {
		if raw[i] != '\\' {
			i++
			continue
		}
		if i+1 >= len(raw) {
			return false // not from a scanned body
		}
		if raw[i+1] != 'u' {
			i += 2
			continue
		}
		if i+6 > len(raw) {
			return false
		}
		r := hexRune(raw[i+2 : i+6])
		i += 6
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return false // a low surrogate without a high one before it
		case r >= 0xd800 && r <= 0xdbff:
			if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
				return false
			}
			if lo := hexRune(raw[i+2 : i+6]); lo < 0xdc00 || lo > 0xdfff {
				return false
			}
			i += 6
		}
	}
	return true
}

// hexRune reads four hex digits (the scan checked them).
func hexRune(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

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

// The scan* functions check the JSON grammar (RFC 8259) from index i and return the
// index after the value; depth is the nesting of the value being scanned.

func scanValueAt(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanStringAt(b, i)
	case c == '{':
		return scanObjectAt(b, i, depth+1, nil)
	case c == '[':
		return scanArrayAt(b, i, depth+1)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumberAt(b, i)
	}
	return i, false
}

// scanObjectAt scans the object at i, appending its members' spans to members when
// members is not nil.
func scanObjectAt(b []byte, i, depth int, members *[]memberSpan) (int, bool) {
	i, empty, ok := openContainer(b, i, depth, '}')
	if empty || !ok {
		return i, ok
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		keyStart := i
		keyEnd, ok := scanStringAt(b, i)
		if !ok {
			return keyEnd, false
		}
		i = skipSpace(b, keyEnd)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		valueStart := skipSpace(b, i+1)
		valueEnd, ok := scanValueAt(b, valueStart, depth)
		if !ok {
			return valueEnd, false
		}
		if members != nil {
			*members = append(*members, memberSpan{keyStart, keyEnd, valueStart, valueEnd})
		}
		next, closed, ok := afterElement(b, valueEnd, '}')
		if closed || !ok {
			return next, ok
		}
		i = next
	}
}

func scanArrayAt(b []byte, i, depth int) (int, bool) {
	i, empty, ok := openContainer(b, i, depth, ']')
	if empty || !ok {
		return i, ok
	}
	for {
		end, ok := scanValueAt(b, i, depth)
		if !ok {
			return end, false
		}
		next, closed, ok := afterElement(b, end, ']')
		if closed || !ok {
			return next, ok
		}
		i = next
	}
}

// openContainer reads the opening bracket at i: past the nesting limit it is refused;
// followed by closer it is empty (next is after it); else next is the first element.
func openContainer(b []byte, i, depth int, closer byte) (next int, empty, ok bool) {
	if depth > maxJSONDepth {
		return i, false, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true, true
	}
	return i, false, true
}

// afterElement reads what follows an element of an object or array ending at i: a comma
// (next is the following element) or the closing bracket (closed, next is after it).
func afterElement(b []byte, i int, closer byte) (next int, closed, ok bool) {
	i = skipSpace(b, i)
	switch {
	case i >= len(b):
		return i, false, false
	case b[i] == ',':
		return skipSpace(b, i+1), false, true
	case b[i] == closer:
		return i + 1, true, true
	}
	return i, false, false
}

// scanStringAt scans a string token: no control characters, only JSON's escapes.
func scanStringAt(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumberAt scans -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumberAt(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		start := i + 1
		if i = skipDigits(b, start); i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = skipDigits(b, start); i == start {
			return i, false
		}
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
