package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// instructionsRow is the receiver's cost per event in instructions, which callgrind
// counts the same on every run whatever else the machine does, unlike seconds.
type instructionsRow struct {
	Store                string        `json:"store"`
	Events               int           `json:"events"`
	PayloadBytes         int           `json:"payloadBytes"`
	InstructionsPerEvent float64       `json:"instructionsPerEvent"`
	Top                  []topFunction `json:"top"`
	// Note says why the row was not measured.
	Note string `json:"note,omitempty"`
}

// errCallgrindCannotRun is callgrind failing on the binary itself (an instruction its
// valgrind does not know), not on this run.
var errCallgrindCannotRun = errors.New("valgrind cannot run this binary")

type topFunction struct {
	Function     string  `json:"function"`
	Instructions int64   `json:"instructions"`
	Percent      float64 `json:"percent"`
}

// callgrindWarmUp events go before the counters are zeroed: first-use costs (page
// faults, lazily built tables, the file's first pages) are not per-event costs.
const callgrindWarmUp = 200

// measureInstructions runs the receiver under callgrind twice, from start to exit: once
// with the warm-up events alone, once with the warm-up and `events` more, sent one at a
// time (so that group commits are the same on every run). The difference, per event, is
// the cost of an event: every thread of the receiver, the store's commit loop and the
// garbage collector included, start-up and shut-down not. Whole runs, rather than
// counters zeroed and dumped mid-run, keep callgrind's call stacks consistent, which Go's
// stack switches otherwise confuse.
func measureInstructions(hookgate, work, keepDir string, partners, events, payload int, st store) (instructionsRow, error) {
	for _, tool := range []string{"valgrind", "callgrind_control", "callgrind_annotate"} {
		if _, err := exec.LookPath(tool); err != nil {
			return instructionsRow{}, fmt.Errorf("%s is needed for instructionsPerEvent (Debian: apt install valgrind): %w", tool, err)
		}
	}
	baseTotal, baseFns, err := callgrindRun(hookgate, work, "", partners, 0, payload, st)
	if err != nil {
		return instructionsRow{}, err
	}
	total, fns, err := callgrindRun(hookgate, work, keepDir, partners, events, payload, st)
	if err != nil {
		return instructionsRow{}, err
	}
	row := instructionsRow{Store: st.name(), Events: events, PayloadBytes: payload, InstructionsPerEvent: float64(total-baseTotal) / float64(events)}
	for name, n := range fns {
		if d := n - baseFns[name]; d > 0 {
			row.Top = append(row.Top, topFunction{Function: name, Instructions: d / int64(events), Percent: 100 * float64(d) / float64(total-baseTotal)})
		}
	}
	slices.SortFunc(row.Top, func(a, b topFunction) int { return cmp.Compare(b.Instructions, a.Instructions) })
	row.Top = row.Top[:min(5, len(row.Top))]
	return row, nil
}

// callgrindRun is one whole receiver run under callgrind: warm-up, then events, then a
// clean stop; it returns the total and each function's own instructions.
func callgrindRun(hookgate, work, keepDir string, partners, events, payload int, st store) (int64, map[string]int64, error) {
	dir, err := os.MkdirTemp(work, "callgrind-")
	if err != nil {
		return 0, nil, err
	}
	out := filepath.Join(dir, "callgrind.out")
	// Go's asynchronous preemption signals trip callgrind's signal bookkeeping; one P
	// keeps idle Ps from spinning in the scheduler, which under callgrind's serialised
	// threads would count millions of instructions that the receiver does not spend.
	valgrindLog := filepath.Join(dir, "valgrind.log")
	p, err := startWrappedReceiver([]string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--log-file=" + valgrindLog},
		hookgate, work, table(partners, ""), []string{"GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1"}, st.args()...)
	if err != nil {
		if why := valgrindRefusal(valgrindLog); why != "" {
			return 0, nil, fmt.Errorf("%w: %s", errCallgrindCannotRun, why)
		}
		return 0, nil, fmt.Errorf("the receiver under callgrind: %w", err)
	}
	defer func() { _ = p.cmd.Process.Kill(); <-p.done; _ = p.cmd.Wait() }()
	url := p.url + "/api/webhooks/events"
	err = sendSequential(url, "warm", callgrindWarmUp, payload)
	if err == nil {
		err = sendSequential(url, "measured", events, payload)
	}
	if err != nil {
		return 0, nil, err
	}
	// A dump on request, not at exit: the receiver's signal handling on shutdown trips
	// callgrind's own.
	if err := callgrindDump(p.cmd.Process.Pid); err != nil {
		return 0, nil, err
	}
	dumps, _ := filepath.Glob(out + ".*")
	if len(dumps) == 0 {
		return 0, nil, fmt.Errorf("callgrind wrote no profile in %s", dir)
	}
	slices.Sort(dumps)
	out = dumps[len(dumps)-1]
	if keepDir != "" {
		// The profile stays for callgrind_annotate or kcachegrind.
		if raw, err := os.ReadFile(out); err == nil && os.MkdirAll(keepDir, 0o755) == nil {
			_ = os.WriteFile(filepath.Join(keepDir, "callgrind-"+st.name()+".out"), raw, 0o644) //nolint:gosec // a profile, not a secret
		}
	}
	return annotate(out)
}

// valgrindRefusal is the line of valgrind's log that says it could not go on (an
// unhandled instruction and where), or "".
func valgrindRefusal(log string) string {
	raw, err := os.ReadFile(log) //nolint:gosec // our own temporary file
	if err != nil {
		return ""
	}
	var why []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(regexp.MustCompile(`^==\d+==\s*`).ReplaceAllString(line, ""))
		switch {
		case strings.Contains(line, "unhandled instruction bytes"), strings.Contains(line, "Illegal opcode"),
			strings.HasPrefix(line, "at 0x") && len(why) > 0 && len(why) < 3:
			why = append(why, line)
		}
	}
	return strings.Join(why, "; ")
}

// callgrindDump asks the callgrind'd receiver for its profile so far. valgrind may run
// the program under a child of the process we started, so the program's name is the
// fallback.
func callgrindDump(pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, target := range []string{strconv.Itoa(pid), "hookgate"} {
		out, err := exec.CommandContext(ctx, "callgrind_control", "-d", target).CombinedOutput()
		if err == nil && !bytes.Contains(out, []byte("not detected")) {
			return nil
		}
	}
	return errors.New("callgrind_control -d: no callgrind'd receiver found")
}

// sendSequential posts n signed events, one at a time; each must be accepted.
func sendSequential(url, prefix string, n, payload int) error {
	client := &http.Client{Timeout: time.Minute}
	for i := range n {
		body := signedEvent(fmt.Sprintf("evt_%s_%d", prefix, i), payload)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
		signRequest(req, apiKey, secret, body)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("event %d: HTTP %d", i, resp.StatusCode)
		}
	}
	return nil
}

var annotateLine = regexp.MustCompile(`^\s*([0-9,]+)\s+\(\s*([0-9.]+)%\)\s+(.*)$`)

// annotate reads a callgrind profile's total and each function's own instructions.
func annotate(profile string) (int64, map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "callgrind_annotate", "--threshold=100", "--auto=no", profile).Output()
	if err != nil {
		return 0, nil, fmt.Errorf("callgrind_annotate: %w", err)
	}
	var total int64
	fns := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := annotateLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
		if strings.Contains(m[3], "PROGRAM TOTALS") {
			total = n
			continue
		}
		name := m[3]
		if i := strings.LastIndex(name, " ["); i > 0 {
			name = name[:i]
		}
		if i := strings.Index(name, ":"); i > 0 {
			name = name[i+1:]
		}
		fns[name] += n
	}
	if total == 0 {
		return 0, nil, fmt.Errorf("callgrind_annotate printed no total for %s", profile)
	}
	return total, fns, nil
}
