package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"time"
)

// DailyCount is how many of a partner's requests had one outcome (and, for rejections,
// one reason) on one UTC day: the partner API's key usage.
type DailyCount struct {
	PartnerKey string
	// Day is YYYY-MM-DD, UTC.
	Day     string
	Outcome string
	Reason  string
	N       int64
}

// DayOf is the UTC day of t as DailyCount keeps it.
func DayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// bucketDaily holds the counts: partnerKey \x00 day \x00 outcome \x00 reason -> n(8).
var bucketDaily = []byte("daily")

func dailyKey(c DailyCount) []byte {
	return []byte(c.PartnerKey + "\x00" + c.Day + "\x00" + c.Outcome + "\x00" + c.Reason)
}

// AddDailyCounts implements Store.
func (s *Embedded) AddDailyCounts(ctx context.Context, counts []DailyCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.write(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketDaily)
		for _, c := range counts {
			k := dailyKey(c)
			var n int64
			if v := b.Get(k); len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v)) //nolint:gosec // counts stay far below 2^63
			}
			if err := b.Put(k, counter(n+c.N)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DailyCounts implements Store.
func (s *Embedded) DailyCounts(_ context.Context, partnerKey, sinceDay string) ([]DailyCount, error) {
	var out []DailyCount
	err := s.eng.view(func(tx kvTx) error {
		b := tx.Bucket(bucketDaily)
		prefix := []byte(partnerKey + "\x00")
		c := b.Cursor()
		for k, v := c.Seek(append(bytes.Clone(prefix), sinceDay...)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			parts := strings.SplitN(string(k[len(prefix):]), "\x00", 3)
			if len(parts) != 3 || len(v) != 8 {
				continue
			}
			out = append(out, DailyCount{PartnerKey: partnerKey, Day: parts[0], Outcome: parts[1], Reason: parts[2], N: int64(binary.BigEndian.Uint64(v))}) //nolint:gosec // small
		}
		return nil
	})
	return out, err
}

// PruneDailyCounts implements Store.
func (s *Embedded) PruneDailyCounts(ctx context.Context, beforeDay string) error {
	return s.write(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketDaily)
		var doomed [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if parts := strings.SplitN(string(k), "\x00", 3); len(parts) >= 2 && parts[1] < beforeDay {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
