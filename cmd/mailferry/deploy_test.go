package main

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/mailferry/mailferry/providers/imap"
)

// The Kubernetes manifests and the Dockerfile are checked here because
// nothing else can check them: there is no cluster and no Docker engine
// in CI. The args of every container go through mailferry's own command
// tree, so a manifest naming a flag that does not exist fails here, not
// in a cluster at the start of a move.

const deployDir = "../../deploy/kubernetes"

// measuredPeakRSS is the highest peak RSS in docs/benchmarks.md (case
// (g): 1,100 users of 13 mailboxes each, 32 at a time: 60 MiB).
const measuredPeakRSS = 60.0 * (1 << 20)

// A subset of the Kubernetes API, with only the fields these tests read.
type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	file string
	raw  []byte
}

type k8sJob struct {
	Spec struct {
		CompletionMode       string `json:"completionMode"`
		Completions          *int   `json:"completions"`
		Parallelism          *int   `json:"parallelism"`
		BackoffLimit         *int   `json:"backoffLimit"`
		BackoffLimitPerIndex *int   `json:"backoffLimitPerIndex"`
		MaxFailedIndexes     *int   `json:"maxFailedIndexes"`
		PodReplacementPolicy string `json:"podReplacementPolicy"`
		PodFailurePolicy     *struct {
			Rules []podFailureRule `json:"rules"`
		} `json:"podFailurePolicy"`
		Template struct {
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type podFailureRule struct {
	Action      string `json:"action"`
	OnExitCodes *struct {
		ContainerName string `json:"containerName"`
		Operator      string `json:"operator"`
		Values        []int  `json:"values"`
	} `json:"onExitCodes"`
	OnPodConditions []struct {
		Type   string `json:"type"`
		Status string `json:"status"`
	} `json:"onPodConditions"`
}

type podSpec struct {
	RestartPolicy                string `json:"restartPolicy"`
	AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot   *bool  `json:"runAsNonRoot"`
		RunAsUser      *int64 `json:"runAsUser"`
		FSGroup        *int64 `json:"fsGroup"`
		SeccompProfile *struct {
			Type string `json:"type"`
		} `json:"seccompProfile"`
	} `json:"securityContext"`
	Containers     []k8sContainer `json:"containers"`
	InitContainers []k8sContainer `json:"initContainers"`
	Volumes        []k8sVolume    `json:"volumes"`
}

type k8sContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	Resources struct {
		Requests map[string]any `json:"requests"`
		Limits   map[string]any `json:"limits"`
	} `json:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
		Privileged               *bool  `json:"privileged"`
		RunAsUser                *int64 `json:"runAsUser"`
		Capabilities             struct {
			Drop []string `json:"drop"`
			Add  []string `json:"add"`
		} `json:"capabilities"`
	} `json:"securityContext"`
	VolumeMounts []struct {
		Name        string `json:"name"`
		MountPath   string `json:"mountPath"`
		SubPath     string `json:"subPath"`
		SubPathExpr string `json:"subPathExpr"`
		ReadOnly    bool   `json:"readOnly"`
	} `json:"volumeMounts"`
}

type k8sVolume struct {
	Name                  string `json:"name"`
	PersistentVolumeClaim *struct {
		ClaimName string `json:"claimName"`
		ReadOnly  bool   `json:"readOnly"`
	} `json:"persistentVolumeClaim"`
	ConfigMap *struct {
		Name  string `json:"name"`
		Items []struct {
			Key  string `json:"key"`
			Path string `json:"path"`
		} `json:"items"`
	} `json:"configMap"`
	Secret *struct {
		SecretName  string `json:"secretName"`
		DefaultMode *int   `json:"defaultMode"`
	} `json:"secret"`
	EmptyDir any `json:"emptyDir"`
}

type k8sData struct {
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

// deployment is every object under deploy/kubernetes, by kind and name.
type deployment struct {
	objects []k8sObject
	byName  map[string]k8sObject // "Kind/name"
}

func loadDeployment(t *testing.T) deployment {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", deployDir, err)
	}
	d := deployment{byName: map[string]k8sObject{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAMLDocuments(b) {
			var o k8sObject
			if err := yaml.Unmarshal(doc, &o); err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(f), i+1, err)
			}
			if o.Kind == "" && o.APIVersion == "" {
				continue // only comments
			}
			o.file, o.raw = fmt.Sprintf("%s#%d", filepath.Base(f), i+1), doc
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := d.byName[key]; dup {
				t.Errorf("%s: %s defined twice", o.file, key)
			}
			d.byName[key] = o
			d.objects = append(d.objects, o)
		}
	}
	return d
}

// splitYAMLDocuments splits a multi-document stream at its "---" lines.
func splitYAMLDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for line := range bytes.Lines(b) {
		if s := strings.TrimRight(string(line), " \t\r\n"); s == "---" || strings.HasPrefix(s, "--- ") {
			docs, cur = append(docs, cur), nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

func (d deployment) get(t *testing.T, kind, name string, into any) k8sObject {
	t.Helper()
	o, ok := d.byName[kind+"/"+name]
	if !ok {
		t.Fatalf("deploy/kubernetes has no %s named %q", kind, name)
	}
	if err := yaml.Unmarshal(o.raw, into); err != nil {
		t.Fatalf("%s: %v", o.file, err)
	}
	return o
}

func (d deployment) job(t *testing.T, name string) k8sJob {
	t.Helper()
	var j k8sJob
	d.get(t, "Job", name, &j)
	if n := len(j.Spec.Template.Spec.Containers); n != 1 || len(j.Spec.Template.Spec.InitContainers) != 0 {
		t.Fatalf("Job %s: %d containers, want exactly one (mailferry)", name, n)
	}
	return j
}

// values is a ConfigMap's or Secret's content by key.
func (d deployment) values(t *testing.T, kind, name string) map[string]string {
	t.Helper()
	var v k8sData
	d.get(t, kind, name, &v)
	out := map[string]string{}
	for k, s := range v.Data {
		if kind == "Secret" {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("Secret %s key %s: %v", name, k, err)
			}
			s = string(b)
		}
		out[k] = s
	}
	for k, s := range v.StringData {
		out[k] = s
	}
	return out
}

func TestDeployManifestsParse(t *testing.T) {
	d := loadDeployment(t)
	allowed := map[string]string{"Job": "batch/v1", "Secret": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1"}
	for _, o := range d.objects {
		switch want, ok := allowed[o.Kind]; {
		case !ok:
			t.Errorf("%s: unexpected kind %q", o.file, o.Kind)
		case o.APIVersion != want:
			t.Errorf("%s: %s has apiVersion %q, want %q", o.file, o.Kind, o.APIVersion, want)
		}
		if o.Metadata.Name == "" {
			t.Errorf("%s: %s without metadata.name", o.file, o.Kind)
		}
		// Applied with kubectl -n, into whatever namespace the admin picks.
		if o.Metadata.Namespace != "" {
			t.Errorf("%s: %s/%s sets namespace %q; the manifests must be namespace-agnostic", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	for _, want := range []string{"Job/mailferry-migrate", "Job/mailferry-report-merge", "Secret/mailferry-admin", "ConfigMap/mailferry-batch", "PersistentVolumeClaim/mailferry-state"} {
		if _, ok := d.byName[want]; !ok {
			t.Errorf("deploy/kubernetes has no %s", want)
		}
	}
	// Every volume of every Job names an object that is there.
	for _, o := range d.objects {
		if o.Kind != "Job" {
			continue
		}
		j := d.job(t, o.Metadata.Name)
		for _, v := range j.Spec.Template.Spec.Volumes {
			var ref string
			switch {
			case v.PersistentVolumeClaim != nil:
				ref = "PersistentVolumeClaim/" + v.PersistentVolumeClaim.ClaimName
			case v.ConfigMap != nil:
				ref = "ConfigMap/" + v.ConfigMap.Name
			case v.Secret != nil:
				ref = "Secret/" + v.Secret.SecretName
			default:
				continue
			}
			if _, ok := d.byName[ref]; !ok {
				t.Errorf("%s: volume %s names %s, which deploy/kubernetes does not define", o.file, v.Name, ref)
			}
		}
	}
}

// podFailureAction is what the Job controller does with a pod whose
// container exited with code (conditions: the pod's true conditions):
// the first matching rule's action, else "Count" (a retry, counted
// against backoffLimitPerIndex).
func podFailureAction(rules []podFailureRule, container string, code int, conditions ...string) string {
	for _, r := range rules {
		if e := r.OnExitCodes; e != nil && (e.ContainerName == "" || e.ContainerName == container) && code != 0 {
			in := slices.Contains(e.Values, code)
			if e.Operator == "In" && in || e.Operator == "NotIn" && !in {
				return r.Action
			}
		}
		for _, c := range r.OnPodConditions {
			if slices.Contains(conditions, c.Type) && (c.Status == "" || c.Status == "True") {
				return r.Action
			}
		}
	}
	return "Count"
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does Kubernetes' $(VAR) expansion of args and subPathExpr for the
// pod of one completion index. A reference to a variable the container
// does not define stays as written in a real pod, so it is an error here.
func expand(c k8sContainer, s string, index int) (string, error) {
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Name == "JOB_COMPLETION_INDEX" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			strings.Contains(e.ValueFrom.FieldRef.FieldPath, "batch.kubernetes.io/job-completion-index"):
			vars[e.Name] = strconv.Itoa(index)
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		}
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if missing != nil {
		return "", fmt.Errorf("%q refers to $(%s), which the container's env does not define", s, strings.Join(missing, "), $("))
	}
	return out, nil
}

// parseCommandLine parses args with mailferry's real command tree, as the
// binary would, and runs nothing: flags and positional arguments only.
func parseCommandLine(args []string) (*cobra.Command, error) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	root := a.newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return nil, err
	}
	if cmd == root || cmd.RunE == nil && cmd.Run == nil {
		return nil, fmt.Errorf("%q names no runnable command", args)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return cmd, nil
}

// podArgs is the command line of the pod of one index, parsed.
func podArgs(t *testing.T, c k8sContainer, index int) *cobra.Command {
	t.Helper()
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		var err error
		if args[i], err = expand(c, a, index); err != nil {
			t.Fatalf("container %s: %v", c.Name, err)
		}
	}
	cmd, err := parseCommandLine(args)
	if err != nil {
		t.Fatalf("container %s, index %d: mailferry rejects the args: %v", c.Name, index, err)
	}
	return cmd
}

func flagString(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	v, err := cmd.Flags().GetString(name)
	if err != nil {
		t.Fatalf("%s --%s: %v", cmd.CommandPath(), name, err)
	}
	return v
}

// location is where a path in a container lands: a key of a ConfigMap or
// Secret, or a file on a claim ("PersistentVolumeClaim/name/dir/file").
type location struct {
	kind, object, key string
	readOnly          bool
}

func (l location) String() string { return l.kind + "/" + l.object + "/" + l.key }

// resolve finds the volume under path p in the pod of one index.
func resolve(t *testing.T, spec podSpec, c k8sContainer, p string, index int) location {
	t.Helper()
	var best *location
	bestLen := -1
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || len(m.MountPath) <= bestLen {
			continue
		}
		i := slices.IndexFunc(spec.Volumes, func(v k8sVolume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("container %s mounts volume %s, which the pod does not define", c.Name, m.Name)
		}
		v := spec.Volumes[i]
		sub := m.SubPath
		if m.SubPathExpr != "" {
			var err error
			if sub, err = expand(c, m.SubPathExpr, index); err != nil {
				t.Fatalf("volume mount %s: %v", m.Name, err)
			}
		}
		l := location{readOnly: m.ReadOnly, key: path.Join(sub, rel)}
		switch {
		case v.PersistentVolumeClaim != nil:
			l.kind, l.object = "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName
			l.readOnly = l.readOnly || v.PersistentVolumeClaim.ReadOnly
		case v.ConfigMap != nil:
			l.kind, l.object, l.readOnly = "ConfigMap", v.ConfigMap.Name, true
			for _, it := range v.ConfigMap.Items {
				if it.Path == l.key {
					l.key = it.Key
				}
			}
		case v.Secret != nil:
			l.kind, l.object, l.readOnly = "Secret", v.Secret.SecretName, true
		default:
			l.kind, l.object = "volume", v.Name // emptyDir and the like: gone with the pod
		}
		best, bestLen = &l, len(m.MountPath)
	}
	if best == nil {
		t.Fatalf("container %s: %s is on no mounted volume (the root filesystem is read-only, and lost with the pod)", c.Name, p)
	}
	return *best
}

func TestDeployManifestMigrateJob(t *testing.T) {
	d := loadDeployment(t)
	j := d.job(t, "mailferry-migrate")
	s := j.Spec
	if s.CompletionMode != "Indexed" {
		t.Errorf("completionMode %q, want Indexed: JOB_COMPLETION_INDEX is the shard", s.CompletionMode)
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions < 2 {
		t.Fatalf("completions and parallelism must be set, with at least 2 shards")
	}
	n := *s.Completions
	if *s.Parallelism != n {
		t.Errorf("parallelism %d != completions %d: every shard should run at once", *s.Parallelism, n)
	}
	if s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex < 1 {
		t.Errorf("backoffLimitPerIndex must be at least 1: a failed shard resumes from its checkpoint in a new pod")
	}
	if s.MaxFailedIndexes == nil || *s.MaxFailedIndexes > n {
		t.Errorf("maxFailedIndexes must be set, at most completions (%d)", n)
	}
	// backoffLimit counts failures of all shards together: a limit would
	// let one flapping shard stop the others.
	if s.BackoffLimit != nil {
		t.Errorf("backoffLimit %d is set: with backoffLimitPerIndex it only lets shards stop each other", *s.BackoffLimit)
	}
	pod := s.Template.Spec
	c := pod.Containers[0]
	if pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q: backoffLimitPerIndex and podFailurePolicy need Never", pod.RestartPolicy)
	}
	if s.PodReplacementPolicy != "Failed" {
		t.Errorf("podReplacementPolicy %q: a replacement must not start while the old pod still holds the checkpoint", s.PodReplacementPolicy)
	}
	if s.PodFailurePolicy == nil {
		t.Fatal("no podFailurePolicy")
	}
	rules := s.PodFailurePolicy.Rules
	for code, want := range map[int]string{
		exitUsage:       "FailIndex", // the same args fail again
		exitPartial:     "FailIndex", // finished; failed accounts are skipped by a rerun
		exitInterrupted: "Count",     // SIGTERM: the checkpoint is consistent, resume
		137:             "Count",     // OOM-killed or SIGKILL: resume
		255:             "Count",
	} {
		if got := podFailureAction(rules, c.Name, code); got != want {
			t.Errorf("pod failure policy: exit %d -> %s, want %s", code, got, want)
		}
	}
	if got := podFailureAction(rules, c.Name, exitInterrupted, "DisruptionTarget"); got != "Ignore" {
		t.Errorf("pod failure policy: an evicted pod -> %s, want Ignore (not counted against the shard)", got)
	}
	for _, r := range rules {
		if r.Action == "FailJob" {
			t.Errorf("a FailJob rule would stop every shard for one shard's failure")
		}
	}

	checkPodSecurity(t, d, pod)
	checkResources(t, c)
	checkNoSecretsInPod(t, d, pod)
	if len(c.Command) != 0 && !slices.Equal(c.Command, []string{"/mailferry"}) {
		t.Errorf("command %q: leave it to the image's ENTRYPOINT", c.Command)
	}

	batchRows := map[string]int{} // source user -> rows; from the index 0 pod
	checkpoints := map[string]int{}
	reports := map[string]int{}
	for _, index := range []int{0, 1, n - 1} {
		cmd := podArgs(t, c, index)
		if cmd.Name() != "migrate" {
			t.Fatalf("the Job runs %q, want migrate", cmd.CommandPath())
		}
		sh, err := parseShard(flagString(t, cmd, "shard"))
		if err != nil || sh != (shard{index, n}) {
			t.Errorf("index %d: --shard is %v (%v), want %d/%d", index, sh, err, index, n)
		}
		for _, side := range []string{"from", "to"} {
			ep, err := imap.ParseURL(flagString(t, cmd, side))
			if err != nil {
				t.Fatalf("--%s: %v", side, err)
			}
			if ep.User != "" || ep.Security == imap.Plain {
				t.Errorf("--%s %s: with --batch a TLS URL without user", side, flagString(t, cmd, side))
			}
			// The batch file has no passwords: the admins log in.
			if flagString(t, cmd, side+"-admin") == "" {
				t.Errorf("no --%s-admin", side)
			}
			l := resolve(t, pod, c, flagString(t, cmd, side+"-admin-password-file"), index)
			if l.kind != "Secret" {
				t.Errorf("--%s-admin-password-file is on %s, want a Secret", side, l)
			} else if _, ok := d.values(t, "Secret", l.object)[l.key]; !ok {
				t.Errorf("--%s-admin-password-file: Secret %s has no key %q", side, l.object, l.key)
			}
		}
		if skip, _ := cmd.Flags().GetBool("insecure-skip-verify"); skip {
			t.Errorf("--insecure-skip-verify in a manifest to be copied")
		}
		if out := flagString(t, cmd, "output"); !slices.Contains([]string{"json", "text", "auto"}, out) {
			t.Errorf("--output %q", out)
		}

		// Every pod keeps its checkpoint on the claim, in a place of its own.
		for flag, seen := range map[string]map[string]int{"checkpoint": checkpoints, "report": reports} {
			l := resolve(t, pod, c, flagString(t, cmd, flag), index)
			if l.kind != "PersistentVolumeClaim" || l.readOnly {
				t.Errorf("index %d: --%s is on %s; it must be on a writable claim, or a retry starts from nothing", index, flag, l)
			}
			if other, dup := seen[l.String()]; dup {
				t.Errorf("--%s: indexes %d and %d share %s", flag, other, index, l)
			}
			seen[l.String()] = index
		}

		// Per-host caps stay global: the shards' shares add up to at most
		// the cap, which the default (0, no cap) would not give.
		total, err := cmd.Flags().GetInt("max-connections-per-host")
		if err != nil {
			t.Fatal(err)
		}
		if total <= 0 || n*sh.capShare(total) > total {
			t.Errorf("--max-connections-per-host %d over %d shards: each takes %d, %d in all", total, n, sh.capShare(total), n*sh.capShare(total))
		}

		l := resolve(t, pod, c, flagString(t, cmd, "batch"), index)
		if l.kind != "ConfigMap" && l.kind != "PersistentVolumeClaim" {
			t.Fatalf("--batch is on %s", l)
		}
		if index == 0 && l.kind == "ConfigMap" {
			csv, ok := d.values(t, "ConfigMap", l.object)[l.key]
			if !ok {
				t.Fatalf("--batch: ConfigMap %s has no key %q", l.object, l.key)
			}
			rows, bad, err := parseBatch(l.key, strings.NewReader(csv), func(string) string { return "" }, func(string) ([]byte, error) { return nil, fs.ErrNotExist })
			if err != nil || len(bad) > 0 || len(rows) == 0 {
				t.Fatalf("the example batch file: %d rows, bad %v, %v", len(rows), bad, err)
			}
			for _, r := range rows {
				if r.SourcePassword != "" || r.DestPassword != "" {
					t.Errorf("line %d of the example batch has a password; the admins log in", r.Line)
				}
				batchRows[r.SourceUser]++
			}
		}
	}
	// A shard with no account stops with exit 2: the example must give
	// every shard one.
	for i := range n {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(batchRows)), shard{i, n}.owns) {
			t.Errorf("the example batch file gives shard %d/%d no account", i, n)
		}
	}

	// The checker itself rejects a flag that does not exist.
	if _, err := parseCommandLine(append(slices.Clone(c.Args), "--no-such-flag=1")); err == nil {
		t.Error("parseCommandLine accepted --no-such-flag")
	}
}

func TestDeployManifestMergeJob(t *testing.T) {
	d := loadDeployment(t)
	mj := d.job(t, "mailferry-migrate")
	n := *mj.Spec.Completions
	mc := mj.Spec.Template.Spec.Containers[0]
	var want []string
	for i := range n {
		want = append(want, resolve(t, mj.Spec.Template.Spec, mc, flagString(t, podArgs(t, mc, i), "checkpoint"), i).String())
	}

	j := d.job(t, "mailferry-report-merge")
	pod := j.Spec.Template.Spec
	c := pod.Containers[0]
	if strings.Contains(strings.Join(c.Args, " "), "*") {
		t.Errorf("merge args %q: the image has no shell to expand a glob", c.Args)
	}
	cmd := podArgs(t, c, 0)
	if cmd.CommandPath() != "mailferry report merge" {
		t.Fatalf("the merge Job runs %q", cmd.CommandPath())
	}
	var got []string
	for _, p := range cmd.Flags().Args() {
		got = append(got, resolve(t, pod, c, p, 0).String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("merge reads\n  %q\nthe shards write\n  %q", got, want)
	}
	if r := flagString(t, cmd, "report"); r != "" {
		if l := resolve(t, pod, c, r, 0); l.kind != "PersistentVolumeClaim" || l.readOnly {
			t.Errorf("merge --report is on %s, want a writable claim", l)
		}
	}
	checkPodSecurity(t, d, pod)
	checkResources(t, c)
	checkNoSecretsInPod(t, d, pod)
}

func checkPodSecurity(t *testing.T, d deployment, pod podSpec) {
	t.Helper()
	sc := pod.SecurityContext
	uid := dockerfileUser(t)
	switch {
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("pod securityContext: runAsNonRoot must be true")
	case sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Error("pod securityContext: runAsUser must be set and not 0")
	case *sc.RunAsUser != uid:
		t.Errorf("pod runAsUser %d, the image's USER is %d", *sc.RunAsUser, uid)
	}
	if sc.FSGroup == nil {
		t.Error("pod securityContext: no fsGroup, so the non-root user may not write the claim")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Error("pod securityContext: seccompProfile RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: mailferry never uses the API")
	}
	for _, c := range pod.Containers {
		cs := c.SecurityContext
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		}
		if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
		}
		if cs.Privileged != nil && *cs.Privileged || cs.RunAsUser != nil && *cs.RunAsUser == 0 {
			t.Errorf("container %s: privileged or root", c.Name)
		}
		if !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
		}
		if tag := c.Image[strings.LastIndex(c.Image, ":")+1:]; !strings.Contains(c.Image, ":") || tag == "latest" {
			t.Errorf("container %s: image %q needs a fixed tag, so that every retry runs the same binary", c.Name, c.Image)
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		if m := v.Secret.DefaultMode; m == nil || *m&0o077 != 0 {
			t.Errorf("secret volume %s: defaultMode must be set and give nothing to group or others (0400)", v.Name)
		}
		for _, c := range pod.Containers {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && !m.ReadOnly {
					t.Errorf("container %s mounts secret %s writable", c.Name, v.Name)
				}
			}
		}
	}
}

func checkResources(t *testing.T, c k8sContainer) {
	t.Helper()
	q := func(m map[string]any, k string) float64 {
		v, ok := m[k]
		if !ok {
			return -1
		}
		f, err := parseQuantity(fmt.Sprint(v))
		if err != nil {
			t.Errorf("container %s: %s %v: %v", c.Name, k, v, err)
		}
		return f
	}
	reqCPU, reqMem := q(c.Resources.Requests, "cpu"), q(c.Resources.Requests, "memory")
	limMem := q(c.Resources.Limits, "memory")
	if reqCPU <= 0 || reqMem <= 0 || limMem <= 0 {
		t.Fatalf("container %s: requests cpu and memory and a memory limit must be set", c.Name)
	}
	if reqMem < 2*measuredPeakRSS {
		t.Errorf("container %s: memory request %.0f MiB, less than twice the measured peak RSS (%.1f MiB)", c.Name, reqMem/(1<<20), measuredPeakRSS/(1<<20))
	}
	if limMem < reqMem {
		t.Errorf("container %s: memory limit below the request", c.Name)
	}
}

// parseQuantity reads a Kubernetes quantity (250m, 1, 128Mi, 1G).
func parseQuantity(s string) (float64, error) {
	mult := map[string]float64{"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	m, ok := mult[s[i:]]
	f, err := strconv.ParseFloat(s[:i], 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("not a quantity: %q", s)
	}
	return f * m, nil
}

// checkNoSecretsInPod: passwords come only from files; no Secret value and
// no literal password appears in args, command or env, which kubectl
// describe and the process list show.
func checkNoSecretsInPod(t *testing.T, d deployment, pod podSpec) {
	t.Helper()
	var secrets []string
	for _, o := range d.objects {
		if o.Kind == "Secret" {
			for k, v := range d.values(t, "Secret", o.Metadata.Name) {
				if !strings.Contains(v, "REPLACE-ME") {
					t.Errorf("Secret %s key %s is not a placeholder: real passwords do not belong in the repository", o.Metadata.Name, k)
				}
				secrets = append(secrets, v)
			}
		}
	}
	for _, c := range pod.Containers {
		shown := slices.Concat(c.Command, c.Args)
		for _, e := range c.Env {
			if strings.Contains(strings.ToUpper(e.Name), "PASSWORD") {
				t.Errorf("container %s: env %s: passwords are read from the mounted Secret's files", c.Name, e.Name)
			}
			shown = append(shown, e.Value)
		}
		for _, s := range shown {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(s, secret) {
					t.Errorf("container %s: a Secret's value appears in %q", c.Name, s)
				}
			}
		}
	}
}

// The Dockerfile, read as instructions.

type dockerInstruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if cur.Len() == 0 && (strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "") {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // a comment inside a continued instruction
		}
		if s, cont := strings.CutSuffix(line, "\\"); cont {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// dockerfileUser is the uid the final image runs as.
func dockerfileUser(t *testing.T) int64 {
	t.Helper()
	user := ""
	for _, in := range readDockerfile(t) {
		switch in.cmd {
		case "FROM":
			user = ""
		case "USER":
			user, _, _ = strings.Cut(in.args, ":")
		}
	}
	if user == "nonroot" { // distroless's name for it
		return 65532
	}
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		t.Fatalf("the final stage's USER is %q: want a numeric uid (or distroless's nonroot)", user)
	}
	return uid
}

func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	var froms []string
	stages := map[string]bool{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			if f := strings.Fields(in.args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%d FROM: want a multi-stage build (a builder, then a small final image)", len(froms))
	}
	if !strings.HasPrefix(froms[0], "golang:1.26") {
		t.Errorf("builder %q: want golang:1.26, the go.mod's Go", froms[0])
	}
	final := strings.Fields(froms[len(froms)-1])[0]
	distroless := strings.HasPrefix(final, "gcr.io/distroless/static")
	if !distroless && final != "scratch" {
		t.Errorf("final image %q: want distroless static or scratch", final)
	}
	last := slices.IndexFunc(ins, func(in dockerInstruction) bool { return in.cmd == "FROM" && in.args == froms[len(froms)-1] })
	var copied, certs bool
	for _, in := range ins[last:] {
		switch in.cmd {
		case "COPY":
			from, _, _ := strings.Cut(strings.TrimPrefix(in.args, "--from="), " ")
			if !strings.HasPrefix(in.args, "--from=") || !stages[from] {
				t.Errorf("final stage COPY %q: copy only from a build stage", in.args)
			}
			copied = copied || strings.HasSuffix(in.args, " /mailferry")
			certs = certs || strings.Contains(in.args, "ca-certificates")
		case "RUN":
			t.Errorf("RUN %q in the final stage: it has no shell", in.args)
		case "ENTRYPOINT":
			if in.args != `["/mailferry"]` {
				t.Errorf("ENTRYPOINT %s, want [\"/mailferry\"] (exec form: no shell; Kubernetes args follow it)", in.args)
			}
		}
	}
	if !copied {
		t.Error("the final stage does not copy the binary to /mailferry")
	}
	if final == "scratch" && !certs {
		t.Error("scratch has no CA certificates: imaps:// could verify nothing")
	}
	if uid := dockerfileUser(t); uid == 0 {
		t.Error("the final image runs as root")
	}
	run := buildCommand(t, ins)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version="} {
		if !strings.Contains(run, want) {
			t.Errorf("the build command lacks %s: %s", want, run)
		}
	}
}

func buildCommand(t *testing.T, ins []dockerInstruction) string {
	t.Helper()
	var runs []string
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			runs = append(runs, in.args)
		}
	}
	if len(runs) != 1 {
		t.Fatalf("%d RUN with go build, want one", len(runs))
	}
	return runs[0]
}

// TestDockerfileBuild runs the Dockerfile's build command on the files
// .dockerignore lets into the build context: it builds there, the binary
// is static and stripped, and -X sets the version.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ins := readDockerfile(t)
	vars := map[string]string{}
	for _, in := range ins {
		if k, v, ok := strings.Cut(in.args, "="); in.cmd == "ARG" && ok {
			vars[k] = v
		}
	}
	const version = "deploy-test-1.2.3"
	vars["VERSION"] = version // docker build --build-arg VERSION=…
	words, err := shellWords(buildCommand(t, ins), vars)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	out := filepath.Join(t.TempDir(), "mailferry")
	i := slices.Index(words, "-o")
	if i < 0 || i+1 >= len(words) || words[0] != "go" {
		t.Fatalf("build command %q: want go build … -o FILE …", words)
	}
	words[i+1] = out

	context := filepath.Join(t.TempDir(), "context")
	copyBuildContext(t, "../..", context)
	for _, p := range []string{".git", "mailferry", "go.mod", "go.sum"} {
		_, err := os.Stat(filepath.Join(context, p))
		if want := p == "go.mod" || p == "go.sum"; (err == nil) != want {
			t.Errorf("build context: %s present %v, want %v", p, err == nil, want)
		}
	}
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Dir = context
	cmd.Env = append(os.Environ(), env...) // later entries win
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(words, " "), err, b)
	}

	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): it would not start on distroless static", p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not apply")
	}
	v, err := exec.Command(out, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), version) {
		t.Errorf("mailferry --version: %q, %v; want %s from -X main.version", v, err, version)
	}
}

// shellWords splits a simple command as sh would, expanding ${VAR} and
// $VAR from vars. Anything beyond one simple command is refused: the test
// must run exactly what the Dockerfile runs.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'' && r != '\'':
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			if quote == 0 {
				quote, inWord = r, true
			} else if quote == r {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '$':
			name := ""
			if i+1 < len(rs) && rs[i+1] == '{' {
				end := slices.Index(rs[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unclosed ${ in %q", s)
				}
				name, i = string(rs[i+2:i+end]), i+end
			} else {
				j := i + 1
				for j < len(rs) && (rs[j] == '_' || rs[j] >= 'A' && rs[j] <= 'Z' || rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= '0' && rs[j] <= '9') {
					j++
				}
				name, i = string(rs[i+1:j]), j-1
			}
			v, ok := vars[name]
			if !ok {
				return nil, fmt.Errorf("$%s in %q: no ARG or default", name, s)
			}
			cur.WriteString(v)
			inWord = true
		case quote == 0 && (r == ' ' || r == '\t'):
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case quote == 0 && strings.ContainsRune(";&|<>()`\\*?", r):
			return nil, fmt.Errorf("%q is not one simple command (%c)", s, r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// dockerIgnore is a .dockerignore, matched as Docker's builder does: a
// path is left out when the last pattern matching it, or one of its
// parent directories, is not a "!" exception.
type dockerIgnore []ignorePattern

type ignorePattern struct {
	re      *regexp.Regexp
	exclude bool // false for a "!" exception
}

func readDockerIgnore(t *testing.T, file string) dockerIgnore {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerIgnore
	for line := range strings.Lines(string(b)) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exception := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(p, "!")), "/")
		if strings.ContainsAny(p, `[\`) {
			t.Fatalf(".dockerignore pattern %q: this test's matcher has no character classes or escapes", p)
		}
		var re strings.Builder
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		d = append(d, ignorePattern{regexp.MustCompile("^" + re.String() + "$"), !exception})
	}
	return d
}

func (d dockerIgnore) ignored(rel string) bool {
	ignored := false
	for _, p := range d {
		for q := rel; q != "." && q != "/"; q = path.Dir(q) {
			if p.re.MatchString(q) {
				ignored = p.exclude
				break
			}
		}
	}
	return ignored
}

func TestDockerfileIgnoreMatcher(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "i"), []byte("mailferry\n**/*.db\ndocs\n!docs/keep.md\n"), 0o600)
	d := readDockerIgnore(t, filepath.Join(dir, "i"))
	for rel, want := range map[string]bool{"mailferry": true, "cmd/mailferry/main.go": false, "a.db": true, "x/y/a.db": true,
		"a.dbx": false, "docs/usage.md": true, "docs/keep.md": false, "go.mod": false} {
		if got := d.ignored(rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}

// copyBuildContext copies what docker build would send: the repository
// less what .dockerignore leaves out.
func copyBuildContext(t *testing.T, root, dst string) {
	t.Helper()
	ignore := readDockerIgnore(t, filepath.Join(root, ".dockerignore"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.ignored(rel) {
			// A directory left out may still hold an exception.
			if e.IsDir() && !slices.ContainsFunc(ignore, func(p ignorePattern) bool { return !p.exclude }) {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case e.IsDir():
			return os.MkdirAll(target, 0o755)
		case e.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
