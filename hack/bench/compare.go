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
	if len(oldRes.Instructions) > 0 && len(newRes.Instructions) > 0 {
		line("instructions per event (callgrind)", oldRes.Instructions[0].InstructionsPerEvent, newRes.Instructions[0].InstructionsPerEvent, "%.0f")
	}
	return nil
}
