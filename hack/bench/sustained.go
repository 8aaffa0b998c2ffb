package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// sustainedRow is one open-loop run through the whole system: events offered at a fixed
// rate for a window, each timed at the sink from when it was due to be sent.
type sustainedRow struct {
	Name  string `json:"name"`
	Store string `json:"store"`
	// Headline marks the sustained capacity: the highest rate that passed the full
	// window. The other rows are the search's first failing rate above it.
	Headline     bool    `json:"headline"`
	Destinations int     `json:"destinations"`
	RatePerSec   int     `json:"ratePerSec"`
	WindowSec    float64 `json:"windowSec"`
	Accepted     int64   `json:"accepted"`
	// AcceptedPerSec and DeliveredPerSec are over the window; DeliveredPerSec counts
	// each event's first delivery to each destination until the last one arrived.
	AcceptedPerSec  float64 `json:"acceptedPerSec"`
	DeliveredPerSec float64 `json:"deliveredPerSec"`
	AcceptP99Ms     float64 `json:"acceptP99Ms"`
	// P50Ms and P99Ms are POST-to-destination (the worst destination's), counting an
	// event never delivered as slower than any delivered one.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	// BacklogAtEnd is accepted minus delivered when the window ended (the worst
	// destination's); Undelivered what was still missing after the drain.
	BacklogAtEnd              int64   `json:"backlogAtEnd"`
	Undelivered               int64   `json:"undelivered"`
	Refused                   int64   `json:"refused"`
	CPUSecondsPer1000         float64 `json:"cpuSecondsPer1000"`
	DatabaseCPUSecondsPer1000 float64 `json:"databaseCpuSecondsPer1000,omitempty"`
	Passed                    bool    `json:"passed"`
	// Note says why a backend has no capacity figure.
	Note string `json:"note,omitempty"`
}

// sustainedConfig is what "sustained" means: every event accepted (none refused) and
// delivered within p99 over window. The search probes shorter windows first.
type sustainedConfig struct {
	window, probe, p99 time.Duration
	start              int
	payload            int
}

func (c sustainedConfig) passes(r sustainedRow) bool {
	return r.Refused == 0 && r.Undelivered == 0 && r.Accepted > 0 && r.P99Ms >= 0 && time.Duration(r.P99Ms*float64(time.Millisecond)) <= c.p99
}

// measureSustained searches st's sustained capacity through sys: rates doubling from
// cfg.start until one fails a probe window, then halving the interval between the last
// pass and the first failure to within a tenth, then the best rate confirmed over the
// full window (or a lower one, when it fails there). It returns the confirmed run and
// the first failing one above it.
func measureSustained(sys *system, st store, cfg sustainedConfig) []sustainedRow {
	name := "sustained, " + st.name()
	lo, hi := 0, 0
	var above *sustainedRow
	rate := cfg.start
	for probes := 0; probes < 10; probes++ {
		row, err := sustainedRun(sys, st, systemEventsPath, []*sink{sys.sink}, rate, cfg.probe, cfg)
		if err != nil {
			return []sustainedRow{{Name: name, Store: st.name(), Note: err.Error()}}
		}
		logSustained(row)
		if cfg.passes(row) {
			lo = rate
		} else {
			hi, above = rate, &row
		}
		switch {
		case hi == 0:
			rate *= 2
		case lo == 0 && hi <= 100:
			return []sustainedRow{{Name: name, Store: st.name(), Note: fmt.Sprintf("not even %d events/s passed", hi)}}
		case hi-lo <= max(100, lo/10):
			probes = 10
		default:
			rate = roundRate((lo + hi) / 2)
		}
		if lo == 0 && hi > 0 {
			rate = roundRate(hi / 2)
		}
	}
	var rows []sustainedRow
	for attempt := 0; attempt < 3 && lo > 0; attempt++ {
		row, err := sustainedRun(sys, st, systemEventsPath, []*sink{sys.sink}, lo, cfg.window, cfg)
		if err != nil {
			return []sustainedRow{{Name: name, Store: st.name(), Note: err.Error()}}
		}
		logSustained(row)
		row.Name = name
		if cfg.passes(row) {
			row.Headline = true
			rows = append(rows, row)
			break
		}
		above, lo = &row, roundRate(lo*85/100)
	}
	if len(rows) == 0 {
		rows = append(rows, sustainedRow{Name: name, Store: st.name(), Note: "no rate passed the full window"})
	}
	if above != nil {
		above.Name = name + ", above capacity"
		rows = append(rows, *above)
	}
	return rows
}

// measureFanout runs the fan-out endpoint (three destinations) at rate for the full
// window.
func measureFanout(sys *system, st store, rate int, cfg sustainedConfig) sustainedRow {
	row, err := sustainedRun(sys, st, systemFanoutPath, sys.fanout, rate, cfg.window, cfg)
	if err != nil {
		return sustainedRow{Name: "fan-out to 3, " + st.name(), Store: st.name(), Destinations: 3, Note: err.Error()}
	}
	logSustained(row)
	row.Name = "fan-out to 3, " + st.name()
	return row
}

func roundRate(r int) int { return max(50, (r+25)/50*50) }

func logSustained(r sustainedRow) {
	verdict := "fails"
	if r.Passed {
		verdict = "passes"
	}
	fmt.Fprintf(os.Stderr, "  %d/s for %.0fs, %s, %d destination(s): accepted %.0f/s, delivered %.0f/s, p50 %.0f ms, p99 %.0f ms, backlog %d, refused %d, undelivered %d: %s\n",
		r.RatePerSec, r.WindowSec, r.Store, r.Destinations, r.AcceptedPerSec, r.DeliveredPerSec, r.P50Ms, r.P99Ms, r.BacklogAtEnd, r.Refused, r.Undelivered, verdict)
}

// sustainedRun is one open-loop run at rate for window on a receiver of its own (a fresh
// store, so that no backlog of an earlier run is in the way).
func sustainedRun(sys *system, st store, path string, sinks []*sink, rate int, window time.Duration, cfg sustainedConfig) (sustainedRow, error) {
	p, stop, err := sys.startReceiver(st)
	if err != nil {
		return sustainedRow{}, err
	}
	defer stop()
	dueAt := &sync.Map{}
	arr := make([]*arrivals, len(sinks))
	for i, sk := range sinks {
		arr[i] = newArrivals(dueAt)
		sk.open.Store(arr[i])
	}
	defer func() {
		for _, sk := range sinks {
			sk.open.Store(nil)
		}
	}()
	cpu0 := cpuSeconds(p.cmd.Process.Pid)
	dbCPU := databaseCPU(st)
	started := time.Now()
	r := generateOpenLoop(p.url+path, sys.key, sys.secret, fmt.Sprintf("%d_", rate), cfg.payload, rate, window, dueAt)
	row := sustainedRow{Store: st.name(), Destinations: len(sinks), RatePerSec: rate, WindowSec: window.Seconds(),
		Accepted: r.accepted, Refused: r.refused, AcceptedPerSec: float64(r.accepted) / window.Seconds(),
		AcceptP99Ms: ms(percentile(r.acceptLatencies, .99))}
	for _, a := range arr {
		row.BacklogAtEnd = max(row.BacklogAtEnd, r.accepted-a.count.Load())
	}
	// The drain: what is not delivered within a few seconds of no progress, or 30 s,
	// counts as never delivered.
	var delivered int64
	for i, a := range arr {
		a.settle(r.accepted, 5*time.Second, 30*time.Second)
		p50, p99, missing := a.percentilesOf(r.accepted)
		row.P50Ms, row.P99Ms = max(row.P50Ms, ms(p50)), max(row.P99Ms, ms(p99))
		row.Undelivered = max(row.Undelivered, missing)
		delivered += a.count.Load()
		if span := time.Duration(a.last.Load() - started.UnixNano()); span > 0 {
			perSec := float64(a.count.Load()) / max(span.Seconds(), window.Seconds())
			if i == 0 || perSec < row.DeliveredPerSec {
				row.DeliveredPerSec = perSec
			}
		}
	}
	if delivered > 0 {
		row.CPUSecondsPer1000 = (cpuSeconds(p.cmd.Process.Pid) - cpu0) / float64(delivered) * 1000
		row.DatabaseCPUSecondsPer1000 = dbCPU(delivered)
	}
	row.Passed = cfg.passes(row)
	return row, nil
}

func ms(d time.Duration) float64 {
	if d >= time.Duration(1<<62) {
		return -1
	}
	return float64(d.Microseconds()) / 1000
}
