// Command bench is `make bench`: it measures hookgate's ingest against a bare net/http
// baseline driven by the same load generator in the same run, then delivery, then the
// whole system as `make run` starts it, and prints tables and bin/bench/results.json.
// Every server listens on loopback; every load is bounded in time.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	eventstore "github.com/hookgate/hookgate/receiver/store"
)

const (
	apiKey = "hgk_bench"
	secret = "whsec_bench"
)

// postgresReplicas are the receiver counts of the PostgreSQL rows: whether a replica
// adds capacity is what those rows are for.
var postgresReplicas = []int{1, 2, 3}

// receiverStderr is --receiver-stderr: where the receivers' logs go ("" discards them).
var receiverStderr string

type ingestRow struct {
	Name              string  `json:"name"`
	Store             string  `json:"store"`
	Headline          bool    `json:"headline"`
	PayloadBytes      int     `json:"payloadBytes"`
	Concurrency       int     `json:"concurrency"`
	AcceptedPerSec    float64 `json:"acceptedPerSec"`
	P50Ms             float64 `json:"p50Ms"`
	P95Ms             float64 `json:"p95Ms"`
	P99Ms             float64 `json:"p99Ms"`
	PeakRssMiB        float64 `json:"peakRssMiB"`
	CPUSecondsPer1000 float64 `json:"cpuSecondsPer1000"`
	// DatabaseCPUSecondsPer1000 is the PostgreSQL server's CPU (all its processes on this
	// machine) per 1,000 events; -1 where it cannot be read (a server elsewhere).
	DatabaseCPUSecondsPer1000 float64 `json:"databaseCpuSecondsPer1000,omitempty"`
	BaselinePerSec            float64 `json:"baselinePerSec"`
	Ratio                     float64 `json:"ratio"`
	Errors                    int64   `json:"errors"`
}

type deliveryRow struct {
	Name            string  `json:"name"`
	Store           string  `json:"store"`
	PayloadBytes    int     `json:"payloadBytes"`
	AcceptedPerSec  float64 `json:"acceptedPerSec"`
	DeliveredPerSec float64 `json:"deliveredPerSec"`
	P50Ms           float64 `json:"p50Ms"`
	P99Ms           float64 `json:"p99Ms"`
	PeakRssMiB      float64 `json:"peakRssMiB,omitempty"`
	// CPUSecondsPer1000 is the receivers' CPU per 1,000 events delivered, from the first
	// POST to the last delivery; DatabaseCPUSecondsPer1000 the PostgreSQL server's (-1:
	// not readable here).
	CPUSecondsPer1000         float64 `json:"cpuSecondsPer1000,omitempty"`
	DatabaseCPUSecondsPer1000 float64 `json:"databaseCpuSecondsPer1000,omitempty"`
	Errors                    int64   `json:"errors"`
}

type results struct {
	Ingest       []ingestRow       `json:"ingest"`
	Delivery     []deliveryRow     `json:"delivery"`
	Instructions []instructionsRow `json:"instructions,omitempty"`
	Sustained    []sustainedRow    `json:"sustained,omitempty"`
	Commit       string            `json:"commit"`
	Machine      string            `json:"machine"`
	Duration     string            `json:"duration"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "baseline-server" {
		os.Exit(baselineServer(os.Args[2]))
	}
	if len(os.Args) == 4 && os.Args[1] == "compare" {
		if err := compare(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "bench compare:", err)
			os.Exit(1)
		}
		return
	}
	hookgate := flag.String("hookgate", "bin/hookgate", "the hookgate binary")
	duration := flag.Duration("duration", 8*time.Second, "length of each load run")
	out := flag.String("out", "bin/bench/results.json", "where to write the JSON results")
	partners := flag.Int("partners", 100, "partners in the routing table")
	system := flag.Bool("system", true, "also measure the whole system as make run starts it (needs KUBEBUILDER_ASSETS)")
	databaseURL := flag.String("database-url", os.Getenv("HOOKGATE_TEST_DATABASE_URL"),
		"PostgreSQL server for the PostgreSQL rows, each run in a schema of its own (default $HOOKGATE_TEST_DATABASE_URL; empty: no such rows)")
	callgrindEvents := flag.Int("callgrind-events", 2000, "events of the callgrind run that measures instructionsPerEvent (0: none)")
	callgrindOnly := flag.Bool("callgrind-only", false, "measure only instructionsPerEvent")
	headlineOnly := flag.Bool("headline-only", false, "measure only instructionsPerEvent and ingest of 1 KiB at concurrency 64 (quick, for a change in progress)")
	flag.StringVar(&receiverStderr, "receiver-stderr", "", "append the receivers' standard error (their logs; GODEBUG=gctrace=1 prints there) to this file")
	sustained := flag.Bool("sustained", true, "search each store backend's sustained capacity through the whole system, open-loop (needs --system)")
	sustainedWindow := flag.Duration("sustained-window", 30*time.Second, "the window a sustained rate must hold for")
	sustainedProbe := flag.Duration("sustained-probe", 10*time.Second, "the window of each probe of the search before the full window confirms its best rate")
	sustainedP99 := flag.Duration("sustained-p99", time.Second, "the POST-to-destination p99 a sustained rate must keep")
	sustainedStart := flag.Int("sustained-start", 1000, "the search's first rate, in events per second")
	sustainedStores := flag.String("sustained-stores", "", "the store backends of the sustained rows, comma-separated names as the rows print them (embedded-pebble, embedded-bbolt, postgres; default: all)")
	systemOnly := flag.Bool("system-only", false, "measure only the whole-system rows (closed-loop delivery, sustained capacity, fan-out)")
	controlPlane := flag.String("control-plane", "bin/local-control-plane", "the local-control-plane binary of the whole-system rows")
	crdDir := flag.String("crd-dir", "", "the CRDs the control plane installs (default: this tree's; bench-compare gives the base commit's)")
	commit := flag.String("commit", "", "the commit the measured binary was built from (default: this tree's HEAD)")
	flag.Func("postgres-replicas", "receiver counts of the PostgreSQL rows, comma-separated (default 1,2,3)", func(v string) error {
		postgresReplicas = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("%q is not a receiver count", f)
			}
			postgresReplicas = append(postgresReplicas, n)
		}
		return nil
	})
	postgresOnly := flag.Bool("postgres-only", false, "measure only the PostgreSQL rows (ingest of 1 KiB at concurrency 64 beside its baseline, and delivery; 1, 2 and 3 receivers)")
	flag.Parse()
	cfg := config{hookgate: *hookgate, duration: *duration, out: *out, partners: *partners, system: *system, databaseURL: *databaseURL,
		callgrindEvents: *callgrindEvents, callgrindOnly: *callgrindOnly, headlineOnly: *headlineOnly, postgresOnly: *postgresOnly, commit: *commit,
		sustained: *sustained, systemOnly: *systemOnly, sustainedStores: *sustainedStores, controlPlane: *controlPlane, crdDir: *crdDir,
		sustainedCfg: sustainedConfig{window: *sustainedWindow, probe: *sustainedProbe, p99: *sustainedP99, start: *sustainedStart, payload: 1 << 10}}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is what one bench run measures.
type config struct {
	hookgate, out, databaseURL string
	duration                   time.Duration
	partners                   int
	system                     bool
	callgrindEvents            int
	callgrindOnly              bool
	headlineOnly               bool
	postgresOnly               bool
	commit                     string
	sustained, systemOnly      bool
	sustainedStores            string
	sustainedCfg               sustainedConfig
	controlPlane, crdDir       string
}

func run(cfg config) error {
	hookgate, duration, out, partners, system, databaseURL := cfg.hookgate, cfg.duration, cfg.out, cfg.partners, cfg.system, cfg.databaseURL
	started := time.Now()
	work, err := os.MkdirTemp("", "hookgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	res := results{Commit: cfg.commit, Machine: machine(), Duration: duration.String()}
	if res.Commit == "" {
		res.Commit = gitCommit()
	}
	// The headline rows are the binary's default engine, so that bench-compare compares
	// defaults; each other engine gets a row of its own beside them.
	defaultStore, otherStores := embeddedStores(hookgate)
	if cfg.systemOnly {
		if err := measureWholeSystem(cfg, work, defaultStore, otherStores, &res); err != nil {
			return fmt.Errorf("whole system: %w", err)
		}
		return finish(res, out, started)
	}
	if cfg.callgrindEvents > 0 {
		for _, st := range append([]store{defaultStore}, otherStores...) {
			fmt.Fprintf(os.Stderr, "instructions per event (callgrind, %s, %d events of 1 KiB, one at a time)...\n", st.name(), cfg.callgrindEvents)
			row, err := measureInstructions(hookgate, work, filepath.Dir(out), partners, cfg.callgrindEvents, 1<<10, st)
			if err != nil {
				// callgrind cannot run every binary on every machine (valgrind 3.19 stops at
				// an instruction of runtime.cputicks): the row says why, the rest is measured.
				fmt.Fprintf(os.Stderr, "  callgrind could not measure the %s store: %v\n", st.name(), err)
				row = instructionsRow{Store: st.name(), Events: cfg.callgrindEvents, PayloadBytes: 1 << 10, Note: err.Error()}
			}
			res.Instructions = append(res.Instructions, row)
			if errors.Is(err, errCallgrindCannotRun) {
				break // the same binary under the same valgrind: the other engines' rows would fail alike
			}
		}
	}
	if cfg.callgrindOnly {
		return finish(res, out, started)
	}

	type setting struct {
		payload, concurrency int
		headline             bool
	}
	settings := []setting{{1 << 10, 64, true}, {64 << 10, 64, true}, {1 << 10, 256, false}}
	if cfg.headlineOnly || cfg.postgresOnly {
		settings = settings[:1]
	}
	if cfg.postgresOnly && databaseURL == "" {
		return errors.New("--postgres-only needs --database-url (or HOOKGATE_TEST_DATABASE_URL)")
	}
	for _, s := range settings {
		name := fmt.Sprintf("%d KiB, concurrency %d", s.payload>>10, s.concurrency)
		fmt.Fprintf(os.Stderr, "ingest %s: baseline...\n", name)
		baseline, err := measureBaseline(s.payload, s.concurrency, duration)
		if err != nil {
			return err
		}
		if !cfg.postgresOnly {
			fmt.Fprintf(os.Stderr, "ingest %s: hookgate...\n", name)
			row, err := measureIngest(hookgate, work, partners, s.payload, s.concurrency, duration, defaultStore)
			if err != nil {
				return err
			}
			row.Name, row.Headline = name, s.headline
			res.Ingest = append(res.Ingest, withBaseline(row, baseline))
		}
		for _, st := range otherStores {
			if !s.headline || cfg.postgresOnly {
				break
			}
			fmt.Fprintf(os.Stderr, "ingest %s: hookgate on the %s engine...\n", name, st.engine)
			row, err := measureIngest(hookgate, work, partners, s.payload, s.concurrency, duration, st)
			if err != nil {
				return fmt.Errorf("%s: %w", st.engine, err)
			}
			row.Name = name + ", " + st.engine
			res.Ingest = append(res.Ingest, withBaseline(row, baseline))
		}
		if databaseURL == "" || s.concurrency != 64 {
			continue
		}
		for _, replicas := range postgresReplicas {
			fmt.Fprintf(os.Stderr, "ingest %s: hookgate on PostgreSQL, %d receiver(s)...\n", name, replicas)
			row, err := measureIngest(hookgate, work, partners, s.payload, s.concurrency, duration, store{databaseURL: databaseURL, replicas: replicas})
			if err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			row.Name, row.Store = fmt.Sprintf("%s, pg x%d", name, replicas), "postgres"
			res.Ingest = append(res.Ingest, withBaseline(row, baseline))
		}
	}
	if cfg.headlineOnly {
		return finish(res, out, started)
	}
	for _, payload := range []int{1 << 10, 64 << 10} {
		if cfg.postgresOnly {
			break
		}
		fmt.Fprintf(os.Stderr, "delivery %d KiB...\n", payload>>10)
		row, err := measureDelivery(hookgate, work, partners, payload, 64, duration, store{})
		if err != nil {
			return err
		}
		res.Delivery = append(res.Delivery, row)
	}
	if databaseURL != "" {
		for _, replicas := range postgresReplicas {
			fmt.Fprintf(os.Stderr, "delivery 1 KiB on PostgreSQL, %d receiver(s)...\n", replicas)
			row, err := measureDelivery(hookgate, work, partners, 1<<10, 64, duration, store{databaseURL: databaseURL, replicas: replicas})
			if err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			res.Delivery = append(res.Delivery, row)
		}
	} else {
		fmt.Fprintln(os.Stderr, "no --database-url (HOOKGATE_TEST_DATABASE_URL): no PostgreSQL rows")
	}
	if system && !cfg.postgresOnly {
		if err := measureWholeSystem(cfg, work, defaultStore, otherStores, &res); err != nil {
			return fmt.Errorf("whole system: %w", err)
		}
	}
	return finish(res, out, started)
}

// measureWholeSystem adds the rows of the whole system as make run starts it: delivery
// under closed-loop load, then each store backend's sustained capacity and the fan-out
// at a third of the default engine's.
func measureWholeSystem(cfg config, work string, defaultStore store, otherStores []store, res *results) error {
	fmt.Fprintln(os.Stderr, "whole system (control plane, operator, receiver serving the events API)...")
	sys, err := startSystem(cfg.hookgate, work, cfg.controlPlane, cfg.crdDir)
	if err != nil {
		return err
	}
	defer sys.close()
	row, err := measureSystem(sys, 1<<10, 64, cfg.duration)
	if err != nil {
		return err
	}
	res.Delivery = append(res.Delivery, row)
	if !cfg.sustained {
		return nil
	}
	backends := append([]store{defaultStore}, otherStores...)
	if cfg.databaseURL != "" {
		backends = append(backends, store{databaseURL: cfg.databaseURL, replicas: 1})
	}
	fanoutRate := 0
	for _, st := range backends {
		if cfg.sustainedStores != "" && !slices.Contains(strings.Split(cfg.sustainedStores, ","), st.name()) {
			continue
		}
		fmt.Fprintf(os.Stderr, "sustained capacity, %s (open loop, p99 within %s over %s)...\n", st.name(), cfg.sustainedCfg.p99, cfg.sustainedCfg.window)
		rows := measureSustained(sys, st, cfg.sustainedCfg)
		res.Sustained = append(res.Sustained, rows...)
		if st == defaultStore && rows[0].Headline {
			fanoutRate = roundRate(rows[0].RatePerSec / 3)
		}
	}
	if fanoutRate > 0 {
		fmt.Fprintf(os.Stderr, "fan-out to three destinations at %d/s (a third of %s's sustained rate)...\n", fanoutRate, defaultStore.name())
		res.Sustained = append(res.Sustained, measureFanout(sys, defaultStore, fanoutRate, cfg.sustainedCfg))
	} else if cfg.sustainedStores == "" || strings.Contains(cfg.sustainedStores, defaultStore.name()) {
		res.Sustained = append(res.Sustained, sustainedRow{Name: "fan-out to 3, " + defaultStore.name(), Store: defaultStore.name(), Destinations: 3,
			Note: "no sustained rate of " + defaultStore.name() + " to take a third of"})
	}
	return nil
}

// finish prints the tables and writes the JSON results.
func finish(res results, out string, started time.Time) error {
	printTables(res)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s (%s in all)\n", out, time.Since(started).Round(time.Second))
	return nil
}

// --- load generator -------------------------------------------------------------------

type loadResult struct {
	ok, errors int64
	latencies  []time.Duration
	elapsed    time.Duration
}

// generate posts signed events with unique ids (idPrefix tells concurrent generators
// apart) from `concurrency` workers for `duration`.
func generate(url, key, signingSecret, idPrefix string, payload, concurrency int, duration time.Duration, sentAt *sync.Map) loadResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	var ok, failed atomic.Int64
	lat := make([][]time.Duration, concurrency)
	res := loadResult{}
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("evt_%s%d_%d", idPrefix, w, i)
				t0 := time.Now()
				if sentAt != nil {
					sentAt.Store(id, t0)
				}
				if code, err := postEvent(client, url, key, signingSecret, id, payload); err != nil || code != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok, res.errors = ok.Load(), failed.Load()
	for _, l := range lat {
		res.latencies = append(res.latencies, l...)
	}
	return res
}

func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds()) / 1000
}

// --- the baseline: a bare net/http server that reads the body and answers 202 ----------

func baselineServer(addr string) int {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func measureBaseline(payload, concurrency int, duration time.Duration) (float64, error) {
	addr := freeAddr()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "baseline-server", addr)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitHTTP("http://" + addr + "/"); err != nil {
		return 0, err
	}
	r := generate("http://"+addr+"/api/webhooks/events", apiKey, secret, "", payload, concurrency, duration, nil)
	return float64(r.ok) / r.elapsed.Seconds(), nil
}

// --- hookgate standalone ----------------------------------------------------------------

func table(partners int, destination string) *routing.Table {
	t := &routing.Table{}
	for i := range partners {
		key := fmt.Sprintf("hgk_other_%d", i)
		if i == 0 {
			key = apiKey
		}
		t.Partners = append(t.Partners, routing.Partner{Namespace: "bench", Name: fmt.Sprintf("partner-%d", i),
			RateLimit:   &routing.RateLimit{RequestsPerSecond: 1000000, Burst: 1000000},
			Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(key), SigningSecret: secret}}})
	}
	ep := routing.Endpoint{Namespace: "bench", Name: "events", Path: "/api/webhooks/events", MaxBodyBytes: 1 << 20,
		Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
		Idempotency:  routing.Idempotency{Window: routing.Duration(time.Hour)},
		Retry:        routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(time.Second), MaxBackoff: routing.Duration(time.Minute)}}
	if destination != "" {
		ep.Destination = &routing.Destination{URL: destination, Timeout: routing.Duration(10 * time.Second)}
	}
	t.Endpoints = []routing.Endpoint{ep}
	return t
}

type receiverProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startReceiver(hookgate, work string, t *routing.Table, extraEnv []string, args ...string) (*receiverProc, error) {
	return startWrappedReceiver(nil, hookgate, work, t, extraEnv, args...)
}

// startWrappedReceiver starts the receiver under wrap (such as valgrind), if any.
func startWrappedReceiver(wrap []string, hookgate, work string, t *routing.Table, extraEnv []string, args ...string) (*receiverProc, error) {
	dir, err := os.MkdirTemp(work, "receiver-")
	if err != nil {
		return nil, err
	}
	addr := freeAddr()
	// The sinks are on loopback, which the egress policy refuses without an allow list.
	base := []string{"receiver", "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--probe-listen", freeAddr(),
		"--destination-allow-cidrs", "127.0.0.0/8,::1/128"}
	if t != nil {
		raw, _ := json.Marshal(t)
		file := filepath.Join(dir, "routing.json")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			return nil, err
		}
		base = append(base, "--routing-file", file)
	}
	argv := append(append(append([]string{}, wrap...), hookgate), append(base, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	// The audit log is part of the product's cost: it is written, and read here.
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if receiverStderr != "" {
		f, err := os.OpenFile(receiverStderr, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child holds its own descriptor
		cmd.Stderr = f
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &receiverProc{cmd: cmd, url: "http://" + addr, done: make(chan struct{})}
	go func() { _, _ = io.Copy(io.Discard, stdout); close(p.done) }()
	if err := waitHTTP(p.url + "/api/health"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *receiverProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	<-p.done
	_ = p.cmd.Wait()
}

// cpuSeconds reads the process's user+system time from /proc.
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// receiversCPU is the receivers' CPU seconds together.
func receiversCPU(procs []*receiverProc) float64 {
	total := 0.0
	for _, p := range procs {
		total += cpuSeconds(p.cmd.Process.Pid)
	}
	return total
}

// peakRSSMiB reads the process's high-water resident set size.
func peakRSSMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// store is where the receivers under test keep events: the embedded store (one
// receiver), or a fresh schema on a PostgreSQL server shared by replicas receivers.
type store struct {
	databaseURL string
	replicas    int
	// engine is the embedded store's --embedded-engine ("": a binary without the flag,
	// whose only engine is bbolt).
	engine string
}

// embeddedStores are the embedded store on hookgate's default engine and on each other
// engine it has, read from its --help. A binary from before the Pebble engine
// (bench-compare's base) has bbolt alone and no flag to name it.
func embeddedStores(hookgate string) (deflt store, others []store) {
	out, _ := exec.Command(hookgate, "receiver", "--help").CombinedOutput() //nolint:gosec // the binary under test
	m := regexp.MustCompile(`-embedded-engine string\n[^\n]*\(default "([a-z]+)"\)`).FindSubmatch(out)
	if m == nil {
		fmt.Fprintln(os.Stderr, "this hookgate has no --embedded-engine: its bbolt store alone is measured")
		return store{}, nil
	}
	deflt = store{engine: string(m[1])}
	for _, engine := range eventstore.Engines {
		if engine != deflt.engine {
			others = append(others, store{engine: engine})
		}
	}
	return deflt, others
}

func (st store) name() string {
	switch {
	case st.databaseURL != "":
		return "postgres"
	case st.engine != "":
		return "embedded-" + st.engine
	}
	return "embedded"
}

// args are the receiver flags that select st's engine.
func (st store) args() []string {
	if st.engine == "" {
		return nil
	}
	return []string{"--embedded-engine", st.engine}
}

// environment is what a receiver on st needs in its environment: for PostgreSQL, a
// fresh schema's address, which drop removes.
func (st store) environment() (env []string, drop func(), err error) {
	if st.databaseURL == "" {
		return nil, func() {}, nil
	}
	dsn, drop, err := freshSchema(st.databaseURL)
	if err != nil {
		return nil, nil, err
	}
	return []string{"HOOKGATE_DATABASE_URL=" + dsn}, drop, nil
}

// startReceivers starts the receivers of st; stop ends them and drops the schema.
func startReceivers(hookgate, work string, t *routing.Table, st store) (procs []*receiverProc, stop func(), err error) {
	extraEnv, dropSchema, err := st.environment()
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		for _, p := range procs {
			p.stop()
		}
		dropSchema()
	}
	for range max(st.replicas, 1) {
		p, err := startReceiver(hookgate, work, t, extraEnv, st.args()...)
		if err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, p)
	}
	return procs, stop, nil
}

// generateAll splits the load evenly across the receivers, as a Service would.
func generateAll(procs []*receiverProc, payload, concurrency int, duration time.Duration, sentAt *sync.Map) loadResult {
	parts := make([]loadResult, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			parts[i] = generate(p.url+"/api/webhooks/events", apiKey, secret, fmt.Sprintf("r%d_", i), payload, concurrency/len(procs), duration, sentAt)
		})
	}
	wg.Wait()
	var all loadResult
	for _, r := range parts {
		all.ok += r.ok
		all.errors += r.errors
		all.latencies = append(all.latencies, r.latencies...)
		all.elapsed = max(all.elapsed, r.elapsed)
	}
	return all
}

func measureIngest(hookgate, work string, partners, payload, concurrency int, duration time.Duration, st store) (ingestRow, error) {
	procs, stop, err := startReceivers(hookgate, work, table(partners, ""), st)
	if err != nil {
		return ingestRow{}, err
	}
	defer stop()
	cpu0 := receiversCPU(procs)
	dbCPU := databaseCPU(st)
	r := generateAll(procs, payload, concurrency, duration, nil)
	dbPer1000 := dbCPU(r.ok)
	cpu, rss := -cpu0, 0.0
	for _, p := range procs {
		cpu += cpuSeconds(p.cmd.Process.Pid)
		rss = max(rss, peakRSSMiB(p.cmd.Process.Pid))
	}
	row := ingestRow{Store: st.name(), PayloadBytes: payload, Concurrency: concurrency, AcceptedPerSec: float64(r.ok) / r.elapsed.Seconds(),
		P50Ms: percentileMs(r.latencies, .50), P95Ms: percentileMs(r.latencies, .95), P99Ms: percentileMs(r.latencies, .99),
		PeakRssMiB: rss, Errors: r.errors, DatabaseCPUSecondsPer1000: dbPer1000}
	if r.ok > 0 {
		row.CPUSecondsPer1000 = cpu / float64(r.ok) * 1000
	}
	return row, nil
}

func withBaseline(row ingestRow, baseline float64) ingestRow {
	row.BaselinePerSec = baseline
	if baseline > 0 {
		row.Ratio = row.AcceptedPerSec / baseline
	}
	return row
}

// --- delivery ---------------------------------------------------------------------------

type sink struct {
	url     string
	srv     *http.Server
	sentAt  *sync.Map
	mu      sync.Mutex
	lat     []time.Duration
	count   atomic.Int64
	firstAt atomic.Int64
	lastAt  atomic.Int64
	// open, while an open-loop run is on, hears each delivery.
	open atomic.Pointer[arrivals]
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{url: "http://" + ln.Addr().String() + "/hooks", sentAt: &sync.Map{}}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		if a := s.open.Load(); a != nil {
			a.observe(r.Header.Get("X-Hookgate-Event-Id"), now)
		}
		if t0, ok := s.sentAt.Load(r.Header.Get("X-Hookgate-Event-Id")); ok {
			s.mu.Lock()
			s.lat = append(s.lat, now.Sub(t0.(time.Time)))
			s.mu.Unlock()
		}
		s.count.Add(1)
		s.firstAt.CompareAndSwap(0, now.UnixNano())
		s.lastAt.Store(now.UnixNano())
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// drain waits until the sink has seen n deliveries or nothing arrives for 5 s.
func (s *sink) drain(n int64) {
	last, idle := s.count.Load(), time.Now()
	for s.count.Load() < n && time.Since(idle) < 5*time.Second {
		time.Sleep(50 * time.Millisecond)
		if c := s.count.Load(); c != last {
			last, idle = c, time.Now()
		}
	}
}

func deliveryFrom(name string, payload int, r loadResult, s *sink) deliveryRow {
	s.drain(r.ok)
	span := time.Duration(s.lastAt.Load() - s.firstAt.Load())
	row := deliveryRow{Name: name, PayloadBytes: payload, AcceptedPerSec: float64(r.ok) / r.elapsed.Seconds(), Errors: r.errors}
	if span > 0 {
		row.DeliveredPerSec = float64(s.count.Load()) / span.Seconds()
	}
	s.mu.Lock()
	row.P50Ms, row.P99Ms = percentileMs(s.lat, .5), percentileMs(s.lat, .99)
	s.mu.Unlock()
	return row
}

func measureDelivery(hookgate, work string, partners, payload, concurrency int, duration time.Duration, st store) (deliveryRow, error) {
	s, err := startSink()
	if err != nil {
		return deliveryRow{}, err
	}
	defer s.srv.Close()
	procs, stop, err := startReceivers(hookgate, work, table(partners, s.url), st)
	if err != nil {
		return deliveryRow{}, err
	}
	defer stop()
	cpu0 := receiversCPU(procs)
	dbCPU := databaseCPU(st)
	r := generateAll(procs, payload, concurrency, duration, s.sentAt)
	name := fmt.Sprintf("receiver standalone, %d KiB, concurrency %d", payload>>10, concurrency)
	if st.databaseURL != "" {
		name = fmt.Sprintf("%d receiver(s) on PostgreSQL, %d KiB, conc. %d", len(procs), payload>>10, concurrency)
	}
	row := deliveryFrom(name, payload, r, s)
	row.Store = st.name()
	delivered := s.count.Load()
	row.DatabaseCPUSecondsPer1000 = dbCPU(delivered)
	cpu := receiversCPU(procs) - cpu0
	for _, p := range procs {
		row.PeakRssMiB = max(row.PeakRssMiB, peakRSSMiB(p.cmd.Process.Pid))
	}
	if delivered > 0 {
		row.CPUSecondsPer1000 = cpu / float64(delivered) * 1000
	}
	return row, nil
}

// --- the whole system, as make run starts it --------------------------------------------

func measureSystem(sys *system, payload, concurrency int, duration time.Duration) (deliveryRow, error) {
	p, stop, err := sys.startReceiver(store{})
	if err != nil {
		return deliveryRow{}, err
	}
	defer stop()
	s := sys.sink
	cpu0 := cpuSeconds(p.cmd.Process.Pid)
	r := generate(p.url+systemEventsPath, sys.key, sys.secret, "", payload, concurrency, duration, s.sentAt)
	row := deliveryFrom(fmt.Sprintf("whole system (make run), %d KiB, concurrency %d", payload>>10, concurrency), payload, r, s)
	row.PeakRssMiB = peakRSSMiB(p.cmd.Process.Pid)
	// The receiver's CPU per 1,000 delivered, as in the standalone delivery row beside
	// it: what the cluster connection (routing Secret, Leases, events API) adds.
	if delivered := s.count.Load(); delivered > 0 {
		row.CPUSecondsPer1000 = (cpuSeconds(p.cmd.Process.Pid) - cpu0) / float64(delivered) * 1000
	}
	return row, nil
}

// --- helpers ----------------------------------------------------------------------------

func decode(b64 string) string {
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	return string(raw)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil { //nolint:noctx // a readiness poll
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within 20s", url)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machine() string {
	model := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// dbCell is a database CPU figure as printed: blank for the embedded store, n/a where
// the server's processes are not on this machine.
func dbCell(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 0:
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func printTables(r results) {
	fmt.Printf("\nhookgate bench, commit %s, %s, %s per run\n", r.Commit, r.Machine, r.Duration)
	if len(r.Ingest) > 0 {
		fmt.Println("\nIngest (PartnerHMAC, every event fsync'd before its 202; baseline: bare net/http answering 202)")
		fmt.Printf("%-33s %10s %8s %8s %8s %9s %10s %9s %11s %7s %6s\n", "setting", "accepted/s", "p50 ms", "p95 ms", "p99 ms", "RSS MiB", "CPU s/1k", "DB s/1k", "baseline/s", "ratio", "errors")
		for _, row := range r.Ingest {
			mark := " "
			if row.Headline {
				mark = "*"
			}
			fmt.Printf("%s%-32s %10.0f %8.2f %8.2f %8.2f %9.1f %10.3f %9s %11.0f %7.2f %6d\n", mark, row.Name, row.AcceptedPerSec, row.P50Ms, row.P95Ms, row.P99Ms,
				row.PeakRssMiB, row.CPUSecondsPer1000, dbCell(row.DatabaseCPUSecondsPer1000), row.BaselinePerSec, row.Ratio, row.Errors)
		}
		fmt.Println("(* headline rows)")
	}
	for _, row := range r.Instructions {
		if row.Note != "" {
			fmt.Printf("\nInstructions per event (callgrind, %s store): not measured: %s\n", row.Store, row.Note)
			continue
		}
		fmt.Printf("\nInstructions per event (callgrind, %s store, %d events of %d KiB one at a time, GOMAXPROCS=1): %.0f\n", row.Store, row.Events, row.PayloadBytes>>10, row.InstructionsPerEvent)
		for _, f := range row.Top {
			fmt.Printf("  %5.2f%%  %s\n", f.Percent, f.Function)
		}
	}
	if len(r.Delivery) > 0 {
		fmt.Println("\nDelivery (sink answering 200; latency from POST to the sink)")
		fmt.Printf("%-48s %10s %11s %8s %8s %8s %9s %9s %6s\n", "setting", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "RSS MiB", "CPU s/1k", "DB s/1k", "errors")
		for _, row := range r.Delivery {
			fmt.Printf("%-48s %10.0f %11.0f %8.2f %8.2f %8.1f %9.3f %9s %6d\n", row.Name, row.AcceptedPerSec, row.DeliveredPerSec, row.P50Ms, row.P99Ms, row.PeakRssMiB,
				row.CPUSecondsPer1000, dbCell(row.DatabaseCPUSecondsPer1000), row.Errors)
		}
		fmt.Println("(CPU s/1k: the receivers' CPU per 1,000 events delivered; DB s/1k: the PostgreSQL server's, where it runs on this machine)")
	}
	if len(r.Sustained) > 0 {
		fmt.Println("\nSustained capacity (whole system, open loop: events sent on schedule whatever the answers; latency from each event's due time to the sink)")
		fmt.Printf("%-44s %7s %10s %11s %8s %8s %8s %8s %7s %11s %9s %9s\n", "setting", "rate/s", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "202 p99", "backlog", "refused", "undelivered", "CPU s/1k", "DB s/1k")
		for _, row := range r.Sustained {
			if row.Note != "" {
				fmt.Printf(" %-43s not measured: %s\n", row.Name, row.Note)
				continue
			}
			mark := " "
			if row.Headline {
				mark = "*"
			}
			fmt.Printf("%s%-43s %7d %10.0f %11.0f %8s %8s %8.1f %8d %7d %11d %9.3f %9s\n", mark, row.Name, row.RatePerSec, row.AcceptedPerSec, row.DeliveredPerSec,
				latencyCell(row.P50Ms), latencyCell(row.P99Ms), row.AcceptP99Ms, row.BacklogAtEnd, row.Refused, row.Undelivered, row.CPUSecondsPer1000, dbCell(row.DatabaseCPUSecondsPer1000))
		}
		fmt.Println("(* sustained capacity: the highest rate at which every event was accepted and delivered, p99 within the target over the full window; backlog: accepted but not yet delivered when the window ended; CPU s/1k: the receiver's per 1,000 deliveries)")
	}
}

// latencyCell prints a latency, or "never" where more than the percentile's share of
// events was not delivered at all.
func latencyCell(v float64) string {
	if v < 0 {
		return "never"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
