// Package jsontext appends JSON values as encoding/json writes them, for the few
// records written once per event, where reflection is a measurable share of the cost.
package jsontext

import "encoding/json"

// AppendString appends s as encoding/json writes it. Plain ASCII is copied; anything it
// would escape (quotes, controls, <>&, any non-ASCII byte, for U+2028 and invalid
// UTF-8) is left to encoding/json.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s)
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
