package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// compare prints two results files side by side, benchstat style: each figure old and
// new with its change, for the rows both runs have.
func compare(oldPath, newPath string) error {
	read := func(path string) (results, error) {
		var r results
		raw, err := os.ReadFile(path) //nolint:gosec // a path the user gave
		if err != nil {
			return r, err
		}
		return r, json.Unmarshal(raw, &r)
	}
	oldRes, err := read(oldPath)
	if err != nil {
		return err
	}
	newRes, err := read(newPath)
	if err != nil {
		return err
	}
	fmt.Printf("old: commit %s   new: commit %s   (%s)\n\n", oldRes.Commit, newRes.Commit, newRes.Machine)
	fmt.Printf("%-44s %14s %14s %9s\n", "", "old", "new", "delta")
	line := func(name string, o, n float64, format string) {
		delta := "~"
		if o != 0 {
			delta = fmt.Sprintf("%+.1f%%", 100*(n-o)/o)
		}
		fmt.Printf("%-44s %14s %14s %9s\n", name, fmt.Sprintf(format, o), fmt.Sprintf(format, n), delta)
	}
	oldIngest := map[string]ingestRow{}
	for _, r := range oldRes.Ingest {
		oldIngest[r.Name] = r
	}
	for _, n := range newRes.Ingest {
		o, ok := oldIngest[n.Name]
		if !ok {
			continue
		}
		line("ingest "+n.Name+": accepted/s", o.AcceptedPerSec, n.AcceptedPerSec, "%.0f")
		line("  p99 ms", o.P99Ms, n.P99Ms, "%.2f")
		line("  CPU s per 1,000", o.CPUSecondsPer1000, n.CPUSecondsPer1000, "%.3f")
		line("  peak RSS MiB", o.PeakRssMiB, n.PeakRssMiB, "%.1f")
		line("  ratio to net/http", o.Ratio, n.Ratio, "%.2f")
	}
	oldDelivery := map[string]deliveryRow{}
	for _, r := range oldRes.Delivery {
		oldDelivery[r.Name] = r
	}
	for _, n := range newRes.Delivery {
		if o, ok := oldDelivery[n.Name]; ok {
			line("delivery "+n.Name+": delivered/s", o.DeliveredPerSec, n.DeliveredPerSec, "%.0f")
		}
	}
	if len(oldRes.Instructions) > 0 && len(newRes.Instructions) > 0 && oldRes.Instructions[0].Note == "" && newRes.Instructions[0].Note == "" {
		line("instructions per event (callgrind)", oldRes.Instructions[0].InstructionsPerEvent, newRes.Instructions[0].InstructionsPerEvent, "%.0f")
	}
	// Sustained capacity: the headline row of each backend (and the fan-out), old beside
	// new; a side without it says why.
	oldSustained := map[string]sustainedRow{}
	for _, r := range oldRes.Sustained {
		if r.Headline || r.Destinations > 1 || r.Note != "" {
			oldSustained[r.Name] = r
		}
	}
	for _, n := range newRes.Sustained {
		if !n.Headline && n.Destinations <= 1 && n.Note == "" {
			continue
		}
		o, ok := oldSustained[n.Name]
		switch {
		case !ok:
			fmt.Printf("%-44s %14s %14d\n", n.Name+": rate/s", "(no row)", n.RatePerSec)
			continue
		case o.Note != "" || n.Note != "":
			fmt.Printf("%-44s old: %s; new: %s\n", n.Name, orMeasured(o), orMeasured(n))
			continue
		}
		line(n.Name+": rate/s", float64(o.RatePerSec), float64(n.RatePerSec), "%.0f")
		line("  delivered/s", o.DeliveredPerSec, n.DeliveredPerSec, "%.0f")
		line("  POST-to-destination p99 ms", o.P99Ms, n.P99Ms, "%.0f")
		line("  CPU s per 1,000 delivered", o.CPUSecondsPer1000, n.CPUSecondsPer1000, "%.3f")
	}
	return nil
}

func orMeasured(r sustainedRow) string {
	if r.Note != "" {
		return "not measured (" + r.Note + ")"
	}
	return fmt.Sprintf("%d/s, p99 %.0f ms", r.RatePerSec, r.P99Ms)
}
