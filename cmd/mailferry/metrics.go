package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
)

// metricsOptions are the flags of the observability listener: Prometheus
// /metrics, the live status page at / and /status.json (docs/observability.md).
type metricsOptions struct {
	addr   string
	public bool
	linger time.Duration
}

// addMetricsFlags registers the listener's flags on a long-running
// command. Wiring a command: a metricsOptions in its options and this call
// beside its flags, then in its run, once the accounts are known,
//
//	obs, err := a.startObservability(ctx, &o.metrics, "name", accts, src, dst)
//	if err != nil {
//		return err
//	}
//	defer obs.close()
//
// and Events: obs.tee(out.event) in the engine's options.
func addMetricsFlags(f *pflag.FlagSet, o *metricsOptions) {
	f.StringVar(&o.addr, "metrics-addr", "", "serve Prometheus metrics at /metrics, a live status page at / and /status.json on HOST:PORT (e.g. 127.0.0.1:9464; loopback only unless --metrics-public)")
	f.BoolVar(&o.public, "metrics-public", false, "allow a --metrics-addr reachable from other machines (e.g. :9464 in a pod); the page names users and shows failure reasons, never a password")
	f.DurationVar(&o.linger, "metrics-linger", 0, "when the run ends, keep serving until /metrics has been scraped once more, for at most this long, so that Prometheus sees the final counts")
}

// listenAddr checks --metrics-addr: HOST:PORT, on loopback unless
// --metrics-public. The page is not secret, but it names every user of the
// wave, so exposing it is a choice made on purpose.
func (o *metricsOptions) listenAddr() (string, error) {
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return "", usagef("--metrics-addr %q: want HOST:PORT, e.g. 127.0.0.1:9464", o.addr)
	}
	if !o.public && !isLoopbackHost(host) {
		what := host
		if host == "" {
			what = "every interface"
		}
		return "", usagef("--metrics-addr %s listens on %s, beyond this machine: the status page names every user of the run; add --metrics-public to allow it, or use 127.0.0.1", o.addr, what)
	}
	return o.addr, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// observer serves metrics and the status page of one run, fed by the run's
// events. A nil observer (no --metrics-addr) does nothing.
type observer struct {
	a      *app
	done   <-chan struct{} // the command's context: a signal ends the linger
	reg    *prometheus.Registry
	m      *runMetrics
	page   *statusModel
	srv    *http.Server
	served chan error
	linger time.Duration

	ended       atomic.Bool
	finalOnce   sync.Once
	finalScrape chan struct{} // closed by the first scrape after the end

	mu       sync.Mutex
	mbStart  map[string]time.Time // account id + "\x00" + mailbox
	accStart map[string]time.Time

	stopSampling chan struct{}
	sampling     sync.WaitGroup
}

// sampleEvery is how often the status page's throughput history is taken.
const sampleEvery = 5 * time.Second

// startObservability starts the listener of --metrics-addr for a run of
// command over accts, with the servers the run talks to (for connection
// and throttle metrics). The caller feeds it with tee and ends it with
// close. Without --metrics-addr it returns a nil observer.
func (a *app) startObservability(ctx context.Context, o *metricsOptions, command string, accts []plannedAccount, servers ...*side) (*observer, error) {
	if o.addr == "" {
		return nil, nil
	}
	addr, err := o.listenAddr()
	if err != nil {
		return nil, err
	}
	ob := &observer{a: a, done: ctx.Done(), reg: prometheus.NewRegistry(), linger: o.linger, finalScrape: make(chan struct{}),
		mbStart: map[string]time.Time{}, accStart: map[string]time.Time{}, stopSampling: make(chan struct{})}
	hosts := distinctServers(servers)
	ob.page = newStatusModel(command, accts, hosts)
	ob.m = newRunMetrics(ob.reg, command, hosts)
	ob.m.accounts.WithLabelValues(stateWaiting).Add(float64(len(accts)))
	for _, p := range accts {
		if p.invalid != "" {
			// The summary counts a batch row that cannot run as a failed account.
			ob.m.accounts.WithLabelValues(stateWaiting).Dec()
			ob.m.accounts.WithLabelValues(migrate.StatusFailed).Inc()
			ob.m.failures.WithLabelValues("account", providers.ClassAccount.String()).Inc()
		}
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--metrics-addr: %v", err)
	}
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(ob.reg, promhttp.HandlerOpts{Registry: ob.reg})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		final := ob.ended.Load()
		prom.ServeHTTP(w, r)
		if final {
			ob.finalOnce.Do(func() { close(ob.finalScrape) })
		}
	})
	mux.HandleFunc("GET /status.json", ob.page.serveJSON)
	mux.HandleFunc("GET /{$}", ob.page.serveHTML)
	ob.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ob.served = make(chan error, 1)
	go func() { ob.served <- ob.srv.Serve(ln) }()
	ob.sampling.Add(1)
	go ob.sample()
	a.log.Info("serving metrics and the status page", "url", "http://"+ln.Addr().String()+"/")
	return ob, nil
}

// tee returns an event handler that gives each event to next, then to the
// observer.
func (ob *observer) tee(next func(migrate.Event)) func(migrate.Event) {
	if ob == nil {
		return next
	}
	return func(e migrate.Event) {
		next(e)
		ob.event(e)
	}
}

// close records the end of the run. The listener goes on until the
// command has returned and closed the checkpoint, then waits as
// --metrics-linger says and stops (app.afterRun), so that the final counts
// can be read while nothing holds the checkpoint.
func (ob *observer) close() {
	if ob == nil {
		return
	}
	now := time.Now()
	ob.page.end(now)
	ob.m.runEnd.Set(float64(now.UnixNano()) / 1e9)
	ob.ended.Store(true)
	close(ob.stopSampling)
	ob.sampling.Wait()
	ob.a.afterRun = append(ob.a.afterRun, ob.shutdown)
}

func (ob *observer) shutdown() {
	if ob.linger > 0 {
		ob.a.log.Info("run ended; serving the final metrics until they are scraped", "at_most", ob.linger)
		t := time.NewTimer(ob.linger)
		select {
		case <-ob.finalScrape:
		case <-t.C:
		case <-ob.done:
		}
		t.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ob.srv.Shutdown(ctx)
	if err := <-ob.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		ob.a.log.Warn("metrics listener", "err", err)
	}
}

func (ob *observer) sample() {
	defer ob.sampling.Done()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ob.stopSampling:
			ob.page.sample(time.Now())
			return
		case now := <-t.C:
			ob.page.sample(now)
		}
	}
}

// event turns one engine event into metrics and status page state.
func (ob *observer) event(e migrate.Event) {
	m := ob.m
	now := time.Now()
	switch e.Kind {
	case migrate.EventAccountStart:
		ob.mu.Lock()
		ob.accStart[e.ID] = now
		ob.mu.Unlock()
		ob.setState(e.ID, stateRunning)
	case migrate.EventMailboxStart:
		key := e.ID + "\x00" + e.Mailbox
		ob.mu.Lock()
		if _, ok := ob.mbStart[key]; !ok { // a retry starts the same mailbox again
			ob.mbStart[key] = now
		}
		ob.mu.Unlock()
	case migrate.EventAppended:
		m.messages.WithLabelValues("copied").Add(float64(e.Count))
		m.bytes.WithLabelValues("copied").Add(float64(e.Bytes))
		ob.page.appended(e.ID, e.Count, e.Bytes)
	case migrate.EventMailboxDone:
		key := e.ID + "\x00" + e.Mailbox
		ob.mu.Lock()
		began, ok := ob.mbStart[key]
		delete(ob.mbStart, key)
		ob.mu.Unlock()
		if ok {
			m.mailboxDuration.Observe(now.Sub(began).Seconds())
		}
		s := e.Summary
		m.messages.WithLabelValues("skipped_duplicate").Add(float64(s.Duplicate))
		m.messages.WithLabelValues("failed").Add(float64(s.Failed))
		if s.Failed > 0 {
			m.failures.WithLabelValues("message", providers.ClassMessage.String()).Add(float64(s.Failed))
		}
		if s.Error != "" {
			m.failures.WithLabelValues("mailbox", classOr(s.Class)).Inc()
		}
		ob.page.mailboxDone(e.ID, s)
	case migrate.EventRetry:
		op := "mailbox"
		if e.Mailbox == "" {
			op = "login"
		}
		m.retries.WithLabelValues(op).Inc()
	case migrate.EventRemoved:
		m.messages.WithLabelValues("removed").Add(float64(e.Count))
		ob.page.removed(e.ID, e.Count)
	case migrate.EventAccountDone:
		ob.mu.Lock()
		began, ok := ob.accStart[e.ID]
		delete(ob.accStart, e.ID)
		ob.mu.Unlock()
		if ok {
			m.accountDuration.Observe(now.Sub(began).Seconds())
		}
		state, errText, class := accountOutcome(e)
		if errText != "" && failedState(state) {
			m.failures.WithLabelValues("account", classOr(class)).Inc()
		}
		if v, ok := e.Result.(*migrate.VerifySummary); ok {
			for _, mb := range v.Mailboxes {
				m.messages.WithLabelValues("verified").Add(float64(mb.Verified))
				m.messages.WithLabelValues("verify_problem").Add(float64(mb.Problems))
			}
		}
		ob.page.accountDone(e, state, errText)
		ob.setState(e.ID, state)
	}
}

// setState moves an account from its state to another in the gauge.
func (ob *observer) setState(id, state string) {
	if old, ok := ob.page.setState(id, state); ok && old != state {
		ob.m.accounts.WithLabelValues(old).Dec()
		ob.m.accounts.WithLabelValues(state).Inc()
	}
}

// accountOutcome is an account's final state, error and error class, from
// migrate's summary or the result of verify, undo and reverse.
func accountOutcome(e migrate.Event) (state, errText, class string) {
	if s := e.Account; s != nil {
		return s.Status, s.Error, s.Class
	}
	state, errText = resultState(e.Result)
	if e.Err != nil {
		class = providers.ClassOf(e.Err).String()
	}
	return state, errText, class
}

// failedState says an account's error is a failure of this run: a
// skipped account carries the reason it failed before, an interrupted one
// the interruption.
func failedState(state string) bool {
	return state != migrate.StatusSkipped && state != migrate.StatusInterrupted
}

func classOr(class string) string {
	if class == "" {
		return providers.ClassUnclassified.String()
	}
	return class
}

// Account states besides the final statuses of migrate.AccountSummary
// and "pass"/"fail" of verify.
const (
	stateWaiting = "waiting"
	stateRunning = "running"
)

// runMetrics are the metrics of one run, on the run's own registry.
type runMetrics struct {
	accounts        *prometheus.GaugeVec
	messages        *prometheus.CounterVec
	bytes           *prometheus.CounterVec
	failures        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	mailboxDuration prometheus.Histogram
	accountDuration prometheus.Histogram
	runEnd          prometheus.Gauge
}

func newRunMetrics(reg *prometheus.Registry, command string, servers []server) *runMetrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &runMetrics{
		accounts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailferry_accounts",
			Help: "Account pairs of the run by state: waiting, running, then the outcome (ok, warn, failed, skipped, interrupted; pass, fail for verify)."}, []string{"state"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_messages_total",
			Help: "Messages by what the run did with them: copied, skipped_duplicate, failed, removed (undo), verified and verify_problem (verify)."}, []string{"result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_bytes_total",
			Help: "Bytes of the messages the run copied, as the destination confirmed them."}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_failures_total",
			Help: "Failures by scope (message, mailbox, account) and error class (message, mailbox, account, transient, run, unclassified)."}, []string{"scope", "class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_retries_total",
			Help: "Transient failures retried after a backoff, by operation: mailbox (a copy attempt) or login."}, []string{"op"}),
		mailboxDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailferry_mailbox_duration_seconds",
			Help: "Time from a mailbox's first copy attempt to its end, retries included.", Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}),
		accountDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailferry_account_duration_seconds",
			Help: "Time an account pair took, from its start (logins included) to its end.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		runEnd: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailferry_run_end_timestamp_seconds",
			Help: "When the run ended, in seconds since the epoch; 0 while it runs."}),
	}
	for _, c := range []prometheus.Collector{m.accounts, m.messages, m.bytes, m.failures, m.retries, m.mailboxDuration, m.accountDuration, m.runEnd} {
		f(c)
	}
	// Series that exist from the start, so that rate() and dashboards see
	// a zero rather than nothing.
	for _, st := range []string{stateWaiting, stateRunning, migrate.StatusOK, migrate.StatusWarn, migrate.StatusFailed, migrate.StatusSkipped, migrate.StatusInterrupted} {
		m.accounts.WithLabelValues(st)
	}
	for _, r := range []string{"copied", "skipped_duplicate", "failed"} {
		m.messages.WithLabelValues(r)
	}
	m.bytes.WithLabelValues("copied")
	m.failures.WithLabelValues("message", providers.ClassMessage.String())
	m.retries.WithLabelValues("mailbox")
	m.retries.WithLabelValues("login")

	start := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailferry_run_start_timestamp_seconds", Help: "When the run started, in seconds since the epoch."})
	start.SetToCurrentTime()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailferry_run_info", Help: "The command this process runs; always 1."}, []string{"command"})
	info.WithLabelValues(command).Set(1)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailferry_build_info", Help: "The mailferry build; always 1."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	f(start)
	f(info)
	f(build)
	f(hostCollector{servers: servers})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// server is one IMAP server of the run, with the limiters of the sides
// that use it: when both sides are one server, each side has its own part
// of the cap (resolveSides), and they share the counts.
type server struct {
	id       string
	limiters []*providers.HostLimiter
}

// distinctServers gives each IMAP server of the sides once; directory
// sides have no connections.
func distinctServers(sides []*side) []server {
	var out []server
	for _, s := range sides {
		if s == nil || s.local() || s.host == nil {
			continue
		}
		if i := slices.IndexFunc(out, func(v server) bool { return v.id == s.id() }); i >= 0 {
			if out[i].limiters[0] != s.host {
				out[i].limiters = append(out[i].limiters, s.host)
			}
			continue
		}
		out = append(out, server{id: s.id(), limiters: []*providers.HostLimiter{s.host}})
	}
	return out
}

var (
	hostConnsDesc    = prometheus.NewDesc("mailferry_host_connections", "Connections open to the server now.", []string{"host"}, nil)
	hostCapDesc      = prometheus.NewDesc("mailferry_host_connection_cap", "The run's cap on connections to the server (--max-connections-per-host, or this shard's share); 0: no cap.", []string{"host"}, nil)
	hostPeakDesc     = prometheus.NewDesc("mailferry_host_connections_peak", "The most connections open to the server at once in this run.", []string{"host"}, nil)
	hostThrottleDesc = prometheus.NewDesc("mailferry_host_throttled_total", "Replies of the server that it is overloaded (throttling codes, too many connections, BYE), each of which backs off every new connection to it.", []string{"host"}, nil)
	hostWaitDesc     = prometheus.NewDesc("mailferry_host_throttle_wait_seconds_total", "Time connections to the server waited for its backoff to pass, added up over all of them.", []string{"host"}, nil)
)

// hostCollector reads the per-server limiters at scrape time: connection
// counts are a state, not a stream of events.
type hostCollector struct{ servers []server }

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hostConnsDesc, hostCapDesc, hostPeakDesc, hostThrottleDesc, hostWaitDesc} {
		ch <- d
	}
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range hostStats(c.servers) {
		ch <- prometheus.MustNewConstMetric(hostConnsDesc, prometheus.GaugeValue, float64(h.Open), h.Host)
		ch <- prometheus.MustNewConstMetric(hostCapDesc, prometheus.GaugeValue, float64(h.Cap), h.Host)
		ch <- prometheus.MustNewConstMetric(hostPeakDesc, prometheus.GaugeValue, float64(h.Peak), h.Host)
		ch <- prometheus.MustNewConstMetric(hostThrottleDesc, prometheus.CounterValue, float64(h.Throttled), h.Host)
		ch <- prometheus.MustNewConstMetric(hostWaitDesc, prometheus.CounterValue, h.ThrottleWait, h.Host)
	}
}

// hostView is one server's connections and throttling, for metrics and
// the status page.
type hostView struct {
	Host         string  `json:"host"`
	Open         int     `json:"open"`
	Cap          int     `json:"cap"` // 0: no cap
	Peak         int     `json:"peak"`
	Throttled    int64   `json:"throttled"`
	ThrottleWait float64 `json:"throttle_wait_seconds"`
}

// hostStats snapshots the servers' limiters; a server's cap is the sum
// of its sides' parts.
func hostStats(servers []server) []hostView {
	out := make([]hostView, 0, len(servers))
	for _, s := range servers {
		st := s.limiters[0].Stats()
		v := hostView{Host: s.id, Open: st.Open, Peak: st.Peak, Throttled: st.Throttles, ThrottleWait: st.ThrottleWait.Seconds()}
		for _, l := range s.limiters {
			v.Cap += l.Stats().Cap
		}
		out = append(out, v)
	}
	return out
}
