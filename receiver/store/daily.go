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

// bucketDaily holds the counts: partnerKey \x00 day \x00 outcome \x00 reason -> n(8);
// bucketDailyByDay the same keys by day (day \x00 partnerKey \x00 outcome \x00 reason ->
// nil), so that pruning old days reads only what it removes.
var (
	bucketDaily      = []byte("daily")
	bucketDailyByDay = []byte("dailybyday")
)

func dailyDayKey(c DailyCount) []byte {
	return []byte(c.Day + "\x00" + c.PartnerKey + "\x00" + c.Outcome + "\x00" + c.Reason)
}

// dailyFromDayKey reads a bucketDailyByDay key back into its count's identity.
func dailyFromDayKey(k []byte) (DailyCount, bool) {
	parts := strings.SplitN(string(k), "\x00", 4)
	if len(parts) != 4 {
		return DailyCount{}, false
	}
	return DailyCount{Day: parts[0], PartnerKey: parts[1], Outcome: parts[2], Reason: parts[3]}, true
}

// buildDailyDayIndex indexes by day the counts of a store from before the day index.
func buildDailyDayIndex(tx kvTx) error {
	byDay := tx.Bucket(bucketDailyByDay)
	return tx.Bucket(bucketDaily).ForEach(func(k, _ []byte) error {
		parts := strings.SplitN(string(k), "\x00", 4)
		if len(parts) != 4 {
			return nil
		}
		return byDay.Put(dailyDayKey(DailyCount{PartnerKey: parts[0], Day: parts[1], Outcome: parts[2], Reason: parts[3]}), nil)
	})
}

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
			v := b.Get(k)
			if len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v)) //nolint:gosec // counts stay far below 2^63
			}
			if v == nil {
				if err := tx.Bucket(bucketDailyByDay).Put(dailyDayKey(c), nil); err != nil {
					return err
				}
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

// PruneDailyCounts implements Store. It reads the days before beforeDay from the day
// index, pruneBatch counts to a transaction of its own outside the group commit.
func (s *Embedded) PruneDailyCounts(ctx context.Context, beforeDay string) error {
	for {
		more := false
		err := s.update(func(tx kvTx) error {
			byDay, daily := tx.Bucket(bucketDailyByDay), tx.Bucket(bucketDaily)
			var doomed [][]byte
			c := byDay.Cursor()
			for k, _ := c.First(); k != nil && string(k) < beforeDay; k, _ = c.Next() {
				if len(doomed) == pruneBatch {
					more = true
					break
				}
				doomed = append(doomed, bytes.Clone(k))
			}
			for _, k := range doomed {
				if dc, ok := dailyFromDayKey(k); ok {
					if err := daily.Delete(dailyKey(dc)); err != nil {
						return err
					}
				}
				if err := byDay.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
