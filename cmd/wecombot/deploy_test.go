package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// exportedMetrics is every metric name the bot exports: the families a
// running sandbox serves on /metrics after a few callbacks, plus every
// wecombot_ metric the code defines (a vector with no series yet is not on
// /metrics), with the _bucket/_sum/_count series of histograms.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_LOG_LEVEL": "error"}
	in := startServe(t, env)
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"callback", "contact.add", "--url", in.base, "--external-user", "wm_ops", "--state", "xhs"},
		{"callback", "kf", "--url", in.base, "--external-user", "wm_ops", "--text", "可以开发票吗？"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, getenv, nil, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errb.String())
		}
	}
	var body string
	eventuallyT(t, "the callbacks handled", 10*time.Second, func() bool {
		_, body = in.get(t, "/metrics")
		return strings.Contains(body, "wecombot_events_total{") && strings.Contains(body, "wecombot_ai_replies_total{")
	})
	typeLine := regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)`)
	histograms := map[string]bool{}
	for _, m := range typeLine.FindAllStringSubmatch(body, -1) {
		names[m[1]] = true
		if m[2] == "histogram" || m[2] == "summary" {
			histograms[m[1]] = true
		}
	}
	// Defined in code: prometheus Opts{Name: "wecombot_…"} and NewDesc("wecombot_…").
	defined := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(wecombot_[a-z0-9_]+)"`)
	for _, dir := range []string{"../../bot", "../../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range defined.FindAllSubmatch(src, -1) {
				name := string(m[1])
				names[name] = true
				if strings.HasSuffix(name, "_seconds") {
					histograms[name] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for h := range histograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[h+suffix] = true
		}
	}
	return names
}

// promqlKeywords are PromQL words that are not metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

// metricsInQuery returns the metric names a PromQL expression selects. It
// drops string literals, label matchers ({…}), range/offset durations
// ([…]), grouping clauses (by (…), without (…), on (…), ignoring (…),
// group_left (…)), Grafana variables ($job, $__rate_interval), numbers and
// function names (an identifier followed by "(").
func metricsInQuery(expr string) []string {
	expr = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	expr = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(expr, " ")
	expr = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(expr, " ")
	expr = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, " ")
	expr = regexp.MustCompile(`\$[A-Za-z_]+`).ReplaceAllString(expr, " ")
	// numbers and durations (0.99, 1e3, 5m) are not names
	expr = regexp.MustCompile(`\b\d+(\.\d+)?([eE][+-]?\d+)?(ms|s|m|h|d|w|y)?\b`).ReplaceAllString(expr, " ")
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	var out []string
	for _, m := range ident.FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || promqlKeywords[strings.ToLower(m)] {
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestMetricsInQuery(t *testing.T) {
	got := metricsInQuery(`histogram_quantile(0.99, sum by (le, api) (rate(wecombot_wecom_api_seconds_bucket{job="$job",errcode!="0"}[$__rate_interval]))) > 0 and on (job) up offset 5m`)
	if strings.Join(got, ",") != "wecombot_wecom_api_seconds_bucket,up" {
		t.Fatalf("got %v", got)
	}
}

// TestOpsPackQueriesExportedMetrics: every query of the Grafana dashboard and
// every alert rule under deploy/ selects only metrics the bot exports (a
// renamed metric or a typo fails here, not silently on an empty panel), the
// compose file mounts files that exist, and the pieces refer to each other
// by the same names (rule file, datasource uid, scrape job).
func TestOpsPackQueriesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	check := func(where, expr string) {
		t.Helper()
		ms := metricsInQuery(expr)
		if len(ms) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, m := range ms {
			if !exported[m] {
				t.Errorf("%s: %q queries %s, which the bot does not export", where, expr, m)
			}
		}
	}

	// Alert rules.
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
				Annot  map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "../../deploy/prometheus/alerts.yml", &rules)
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			check("alert "+r.Alert, r.Expr)
			if r.Labels["severity"] == "" || r.Annot["summary"] == "" || r.Annot["description"] == "" {
				t.Errorf("alert %s needs a severity label, a summary and a description", r.Alert)
			}
			for _, q := range regexp.MustCompile(`query "((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(r.Annot["description"], -1) {
				check("alert "+r.Alert+" annotation", strings.ReplaceAll(q[1], `\"`, `"`))
			}
		}
	}
	if alerts < 8 {
		t.Errorf("only %d alert rules", alerts)
	}

	// Dashboard.
	raw, err := os.ReadFile("../../deploy/grafana/dashboards/wecombot.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "prometheus" {
			t.Errorf("panel %q: datasource uid %q, want the provisioned prometheus", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if m := regexp.MustCompile(`label_values\((\w+)`).FindStringSubmatch(v.Query); m != nil {
			check("variable "+v.Name, m[1])
		}
	}
	if queries < 15 {
		t.Errorf("only %d dashboard queries", queries)
	}

	// The pieces fit together.
	var ds struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "../../deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != "prometheus" || !strings.Contains(ds.Datasources[0].URL, "prometheus:9090") {
		t.Errorf("datasource: %+v", ds)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "../../deploy/prometheus/prometheus.yml", &prom)
	if len(prom.ScrapeConfigs) == 0 || prom.ScrapeConfigs[0].JobName != "wecombot" || prom.ScrapeConfigs[0].StaticConfigs[0].Targets[0] != "bot:8080" {
		t.Errorf("scrape config: %+v", prom.ScrapeConfigs)
	}
	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, "../../deploy/docker-compose.yml", &compose)
	for _, svc := range []string{"bot", "prometheus", "grafana"} {
		if _, ok := compose.Services[svc]; !ok {
			t.Errorf("docker-compose.yml has no %s service", svc)
		}
	}
	mounted := map[string]bool{}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			mounted[dst] = true
			if src == "./secrets" { // the operator's own files, never in git
				continue
			}
			if _, err := os.Stat(filepath.Join("../../deploy", src)); err != nil {
				t.Errorf("service %s mounts %s, which is not in deploy/: %v", name, src, err)
			}
		}
	}
	for _, rf := range prom.RuleFiles {
		if !filepath.IsAbs(rf) { // relative to the config file's directory
			rf = "/etc/prometheus/" + rf
		}
		if !mounted[rf] {
			t.Errorf("prometheus.yml loads %s, which the compose file doesn't mount", rf)
		}
	}
}

// TestDockerfileBuildArgs: base images and the Go module proxy are build
// arguments (gcr.io and proxy.golang.org are unreachable from mainland
// China), and the image carries OCI labels.
func TestDockerfileBuildArgs(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"ARG BUILD_IMAGE=", "ARG RUNTIME_IMAGE=", "ARG GOPROXY=", "FROM ${BUILD_IMAGE}", "FROM ${RUNTIME_IMAGE}",
		"org.opencontainers.image.version=", "org.opencontainers.image.revision=", "org.opencontainers.image.source=",
		"org.opencontainers.image.created=", "ENV GOPROXY=${GOPROXY}"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	var args []string
	for _, line := range strings.Split(df, "\n") {
		if strings.HasPrefix(line, "FROM ") {
			args = append(args, line)
		}
	}
	sort.Strings(args)
	for _, from := range args {
		if strings.Contains(from, "gcr.io") || strings.Contains(from, "golang:") {
			t.Errorf("%q names a registry directly; use the ARG", from)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRulesWithPromtool runs promtool (Debian's prometheus package; .ci/run
// installs it) on the ops pack: the rules parse, the config loads them, and
// the rule unit tests pass.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); .ci/run runs the same checks")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
