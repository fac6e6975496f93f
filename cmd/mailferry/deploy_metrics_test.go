package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/mailferry/mailferry/providers"
)

// The metrics side of deploy/: the migrate Job's pods expose the port
// their --metrics-addr listens on, with the scrape annotations; the
// PodMonitor scrapes that port; the Grafana dashboard asks only for
// metrics and labels the binary exports.

type podTemplateMeta struct {
	Spec struct {
		Template struct {
			Metadata struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Containers []struct {
					Name  string `json:"name"`
					Ports []struct {
						Name          string `json:"name"`
						ContainerPort int    `json:"containerPort"`
						Protocol      string `json:"protocol"`
					} `json:"ports"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type podMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

func TestDeployMetrics(t *testing.T) {
	d := loadDeployment(t)
	j := d.job(t, "mailferry-migrate")
	var meta podTemplateMeta
	d.get(t, "Job", "mailferry-migrate", &meta)
	tmpl := meta.Spec.Template
	c := j.Spec.Template.Spec.Containers[0]
	cmd := podArgs(t, c, 0)

	o := metricsOptions{addr: flagString(t, cmd, "metrics-addr")}
	var err error
	if o.public, err = cmd.Flags().GetBool("metrics-public"); err != nil {
		t.Fatal(err)
	}
	if o.linger, err = cmd.Flags().GetDuration("metrics-linger"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.listenAddr(); err != nil {
		t.Fatalf("the Job's --metrics-addr: %v", err)
	}
	host, port, _ := net.SplitHostPort(o.addr)
	if isLoopbackHost(host) {
		t.Errorf("--metrics-addr %s: on loopback nothing outside the pod can scrape it", o.addr)
	}
	var containerPort int
	for _, cc := range tmpl.Spec.Containers {
		if cc.Name != c.Name {
			continue
		}
		for _, p := range cc.Ports {
			if p.Name == "metrics" {
				containerPort = p.ContainerPort
			}
		}
	}
	if strconv.Itoa(containerPort) != port {
		t.Errorf("container port \"metrics\" is %d, --metrics-addr listens on %s", containerPort, port)
	}
	ann := tmpl.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %s, path /metrics", ann, port)
	}

	b, err := os.ReadFile("../../deploy/prometheus/podmonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pm podMonitor
	if err := yaml.Unmarshal(b, &pm); err != nil {
		t.Fatalf("podmonitor.yaml: %v", err)
	}
	if pm.APIVersion != "monitoring.coreos.com/v1" || pm.Kind != "PodMonitor" || pm.Metadata.Name == "" || pm.Metadata.Namespace != "" {
		t.Errorf("podmonitor.yaml: %s %s %q in namespace %q", pm.APIVersion, pm.Kind, pm.Metadata.Name, pm.Metadata.Namespace)
	}
	if len(pm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("the PodMonitor selects every pod")
	}
	for k, v := range pm.Spec.Selector.MatchLabels {
		if tmpl.Metadata.Labels[k] != v {
			t.Errorf("the PodMonitor selects %s=%s, which the Job's pods do not have", k, v)
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d endpoints", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Port != "metrics" || ep.Path != "/metrics" {
		t.Errorf("the PodMonitor scrapes port %q path %q", ep.Port, ep.Path)
	}
	interval, err := time.ParseDuration(ep.Interval)
	if err != nil {
		t.Fatalf("interval %q: %v", ep.Interval, err)
	}
	// The pod waits for one scrape after the run: give it two intervals.
	if o.linger < 2*interval {
		t.Errorf("--metrics-linger %v is less than two scrape intervals (%v): the final counts may never be scraped", o.linger, interval)
	}
}

// exported is every metric name the binary exports, with its labels.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	ep := testEndpoint(t, "imaps://imap.example.net")
	reg := prometheus.NewRegistry()
	newRunMetrics(reg, "migrate", distinctServers([]*side{{ep: ep, host: providers.NewHostLimiter(4)}}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range fams {
		var labels []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		out[f.GetName()] = labels
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[f.GetName()+s] = append(slices.Clone(labels), "le")
			}
		}
	}
	return out
}

// targetLabels are the labels Prometheus adds to every series of a pod
// (the PodMonitor's, and its relabeling of the shard).
var targetLabels = []string{"namespace", "pod", "shard", "job", "instance", "container", "endpoint"}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("../../deploy/grafana", "mailferry-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title, UID string
		Panels     []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard %q uid %q with %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	metrics := exported(t)
	used := map[string]bool{}
	name := regexp.MustCompile(`\b(mailferry_[a-z_]+)(\{([^}]*)\})?`)
	by := regexp.MustCompile(`\bby \(([^)]*)\)`)
	for _, p := range dash.Panels {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable (no uid of someone's Grafana)", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a target's datasource %q", p.Title, tg.Datasource.UID)
			}
			var names []string
			for _, m := range name.FindAllStringSubmatch(tg.Expr, -1) {
				labels, ok := metrics[m[1]]
				if !ok {
					t.Errorf("panel %q asks for %s, which mailferry does not export", p.Title, m[1])
					continue
				}
				names = append(names, m[1])
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")] = true
				for _, matcher := range strings.Split(m[3], ",") {
					l := strings.TrimSpace(matcher)
					if i := strings.IndexAny(l, "=!~"); i >= 0 {
						l = l[:i]
					}
					if l != "" && !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
						t.Errorf("panel %q: %s has no label %q", p.Title, m[1], l)
					}
				}
			}
			for _, m := range by.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					l = strings.TrimSpace(l)
					if slices.Contains(targetLabels, l) {
						continue
					}
					if !slices.ContainsFunc(names, func(n string) bool { return slices.Contains(metrics[n], l) }) {
						t.Errorf("panel %q groups by %q, a label none of %v has", p.Title, l, names)
					}
				}
			}
		}
	}
	// Every metric of docs/observability.md is on the dashboard.
	for n := range metrics {
		if strings.HasPrefix(n, "mailferry_") && !strings.HasSuffix(n, "_bucket") && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !used[n] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

// TestObservabilityDoc: docs/observability.md names every metric the
// binary exports, and no other.
func TestObservabilityDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	metrics := exported(t)
	for n, labels := range metrics {
		if !strings.HasPrefix(n, "mailferry_") || strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			continue
		}
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("docs/observability.md does not document %s", n)
		}
		for _, l := range labels {
			if l != "le" && !strings.Contains(doc, "`"+l+"`") {
				t.Errorf("docs/observability.md does not name the label %s of %s", l, n)
			}
		}
	}
	for _, m := range regexp.MustCompile("`(mailferry_[a-z_]+)`").FindAllStringSubmatch(doc, -1) {
		if _, ok := metrics[m[1]]; !ok {
			t.Errorf("docs/observability.md documents %s, which mailferry does not export", m[1])
		}
	}
}

// TestDeployManifestReportHTMLJob: the report Job reads every shard's
// checkpoint and writes the page on the claim.
func TestDeployManifestReportHTMLJob(t *testing.T) {
	d := loadDeployment(t)
	mj := d.job(t, "mailferry-migrate")
	mc := mj.Spec.Template.Spec.Containers[0]
	var want []string
	for i := range *mj.Spec.Completions {
		want = append(want, resolve(t, mj.Spec.Template.Spec, mc, flagString(t, podArgs(t, mc, i), "checkpoint"), i).String())
	}
	j := d.job(t, "mailferry-report-html")
	pod := j.Spec.Template.Spec
	c := pod.Containers[0]
	cmd := podArgs(t, c, 0)
	if cmd.CommandPath() != "mailferry report html" {
		t.Fatalf("the report Job runs %q", cmd.CommandPath())
	}
	paths, err := cmd.Flags().GetStringArray("checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range append(paths, cmd.Flags().Args()...) {
		got = append(got, resolve(t, pod, c, p, 0).String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("report html reads\n  %q\nthe shards write\n  %q", got, want)
	}
	if l := resolve(t, pod, c, flagString(t, cmd, "output"), 0); l.kind != "PersistentVolumeClaim" || l.readOnly {
		t.Errorf("report html -o is on %s, want a writable claim", l)
	}
	checkPodSecurity(t, d, pod)
	checkResources(t, c)
	checkNoSecretsInPod(t, d, pod)
}
