package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
}

type topFunction struct {
	Function     string  `json:"function"`
	Instructions int64   `json:"instructions"`
	Percent      float64 `json:"percent"`
}

// callgrindWarmUp events go before the counters are zeroed: first-use costs (page
// faults, lazily built tables, the file's first pages) are not per-event costs.
const callgrindWarmUp = 200

// measureInstructions runs one receiver under callgrind, sends warm-up events, zeroes the
// counters, sends `events` events one at a time (so that group commits are the same on
// every run), dumps the counters and reads them with callgrind_annotate: every thread of
// the receiver, the store's commit loop and the garbage collector included.
func measureInstructions(hookgate, work string, partners, events, payload int) (instructionsRow, error) {
	for _, tool := range []string{"valgrind", "callgrind_control", "callgrind_annotate"} {
		if _, err := exec.LookPath(tool); err != nil {
			return instructionsRow{}, fmt.Errorf("%s is needed for instructionsPerEvent (Debian: apt install valgrind): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp(work, "callgrind-")
	if err != nil {
		return instructionsRow{}, err
	}
	out := filepath.Join(dir, "callgrind.out")
	// Go's asynchronous preemption signals trip callgrind's signal bookkeeping; one P
	// keeps idle Ps from spinning in the scheduler, which under callgrind's serialised
	// threads would count millions of instructions that the receiver does not spend.
	p, err := startWrappedReceiver([]string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + out + ".%p"},
		hookgate, work, table(partners, ""), []string{"GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1"})
	if err != nil {
		return instructionsRow{}, fmt.Errorf("the receiver under callgrind: %w", err)
	}
	defer p.stop()
	url := p.url + "/api/webhooks/events"
	if err := sendSequential(url, "warm", callgrindWarmUp, payload); err != nil {
		return instructionsRow{}, err
	}
	target := strconv.Itoa(p.cmd.Process.Pid)
	if err := callgrindControl("-z", target); err != nil {
		return instructionsRow{}, err
	}
	if err := sendSequential(url, "measured", events, payload); err != nil {
		return instructionsRow{}, err
	}
	if err := callgrindControl("-d", target); err != nil {
		return instructionsRow{}, err
	}
	dumps, _ := filepath.Glob(out + ".*.*")
	if len(dumps) == 0 {
		return instructionsRow{}, fmt.Errorf("callgrind wrote no dump in %s", dir)
	}
	total, top, err := annotate(dumps[len(dumps)-1], 5)
	if err != nil {
		return instructionsRow{}, err
	}
	return instructionsRow{Store: "embedded", Events: events, PayloadBytes: payload, InstructionsPerEvent: float64(total) / float64(events), Top: top}, nil
}

// callgrindControl sends a command to the callgrind'd process; valgrind may run the
// program under a child of the process we started, so the program's name is the fallback.
func callgrindControl(command, pid string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "callgrind_control", command, pid).CombinedOutput(); err == nil && !bytes.Contains(out, []byte("not detected")) {
		return nil
	}
	out, err := exec.CommandContext(ctx, "callgrind_control", command, "hookgate").CombinedOutput()
	if err == nil && bytes.Contains(out, []byte("not detected")) {
		err = errors.New("no callgrind'd receiver found")
	}
	if err != nil {
		return fmt.Errorf("callgrind_control %s: %w: %s", command, err, out)
	}
	return nil
}

// sendSequential posts n signed events, one at a time; each must be accepted.
func sendSequential(url, prefix string, n, payload int) error {
	pad := strings.Repeat("x", max(0, payload-80))
	client := &http.Client{Timeout: time.Minute}
	for i := range n {
		body := fmt.Appendf(nil, `{"id":"evt_%s_%d","type":"order.created","data":{"pad":%q}}`, prefix, i, pad)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", apiKey)
		req.Header.Set("x-timestamp", ts)
		req.Header.Set("x-webhook-signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
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

// annotate reads a callgrind dump's total and its top functions by exclusive cost.
func annotate(dump string, top int) (int64, []topFunction, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "callgrind_annotate", "--threshold=100", "--auto=no", dump).Output()
	if err != nil {
		return 0, nil, fmt.Errorf("callgrind_annotate: %w", err)
	}
	var total int64
	var fns []topFunction
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if len(fns) > 0 && strings.TrimSpace(sc.Text()) == "" {
			break // the end of the function list
		}
		m := annotateLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
		if strings.Contains(m[3], "PROGRAM TOTALS") {
			total = n
			continue
		}
		if len(fns) < top {
			pct, _ := strconv.ParseFloat(m[2], 64)
			name := m[3]
			if i := strings.LastIndex(name, " ["); i > 0 {
				name = name[:i]
			}
			if i := strings.Index(name, ":"); i > 0 {
				name = name[i+1:]
			}
			fns = append(fns, topFunction{Function: name, Instructions: n, Percent: pct})
		}
	}
	if total == 0 {
		return 0, nil, fmt.Errorf("callgrind_annotate printed no total for %s", dump)
	}
	return total, fns, nil
}
