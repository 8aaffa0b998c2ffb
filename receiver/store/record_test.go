package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// filled sets every field of v (a pointer to a struct) to a value that is not zero, from
// seed: strings, integers, times, pointers to times and slices of structs alike, so that
// a field added to Event without a line in encodeEvent makes the encodings differ.
func filled(t *testing.T, v reflect.Value, seed string, n int64) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Unix(1_700_000_000+n, n*1_000_003).UTC()))
		case f.Type() == reflect.TypeOf(&time.Time{}):
			at := time.Unix(1_700_000_100+n, 0).In(time.FixedZone("X", 3600))
			f.Set(reflect.ValueOf(&at))
		case f.Kind() == reflect.String:
			f.SetString(seed + name)
		case f.Kind() == reflect.Int32 || f.Kind() == reflect.Int64:
			f.SetInt(n + int64(i))
		case f.Kind() == reflect.Uint64:
			f.SetUint(uint64(n) + uint64(i))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			s := reflect.MakeSlice(f.Type(), 2, 2)
			for j := 0; j < 2; j++ {
				filled(t, s.Index(j), seed, n+int64(j)+1)
			}
			f.Set(s)
		default:
			t.Fatalf("filled: field %s of kind %s: teach filled and encodeEvent about it", name, f.Kind())
		}
	}
}

func checkEncoding(t *testing.T, e *Event) {
	t.Helper()
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("encodeEvent:\n got %s\nwant %s", got, want)
	}
}

func TestEncodeEventIsMarshal(t *testing.T) {
	var every Event
	filled(t, reflect.ValueOf(&every).Elem(), "v", 7)
	for name, e := range map[string]Event{
		"every field set":           every,
		"zero":                      {},
		"escapes in strings":        {UUID: "u", EventID: `"<&>` + "\u2028\xff", LastError: "dial tcp: \t", Phase: PhaseFailed},
		"deliveries, omitted parts": {UUID: "u", Phase: PhaseQueued, Deliveries: []DeliveryState{{Destination: "", Phase: PhaseQueued}, {Destination: "b", Phase: PhaseDelivered, Attempts: 1}}},
	} {
		t.Run(name, func(t *testing.T) { checkEncoding(t, &e) })
	}
	if _, err := encodeEvent(&Event{ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("encodeEvent took a year past 9999, which json.Marshal refuses")
	}
}

// FuzzEncodeEvent: whatever the strings and numbers, the record is json.Marshal's.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("evt_1", "order.created", "timeout", int32(3), int64(1024), uint64(2), int64(1_700_000_000))
	f.Add(`a"b<`, "\u2028", "\xff", int32(-1), int64(0), uint64(0), int64(-62135596800))
	f.Fuzz(func(t *testing.T, id, typ, lastError string, attempts int32, size int64, version uint64, unix int64) {
		at := time.Unix(unix, 0).UTC()
		if at.Year() < 0 || at.Year() > 9999 {
			return // json.Marshal refuses these too: TestEncodeEventIsMarshal covers it
		}
		checkEncoding(t, &Event{
			UUID: id, EventID: id, Type: typ, ReceivedAt: at, SizeBytes: size, Phase: typ, Attempts: attempts,
			LastError: lastError, LastAttemptAt: &at, Version: version,
			Deliveries: []DeliveryState{{Destination: typ, Phase: id, LastError: lastError, LastResponseCode: attempts, DeliveredAt: &at}},
		})
	})
}
