// Package observability is the Grafana dashboard and the Prometheus alert rules beside this file;
// its only Go is this test, which keeps what they query and what the worker exports in step: a
// panel or an alert on a metric, a label or a label value the worker does not export shows
// nothing, or never fires, and nobody notices until the day it should have.
package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/channels"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/history"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
	"github.com/platform/platform/worker/webhooks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	dashboardFile = "grafana-dashboard.json"
	alertsFile    = "alerts.yaml"
)

// --- what the files query ------------------------------------------------------------------

// query is one PromQL expression and where it came from (for messages).
type query struct {
	where  string
	expr   string
	legend string // a panel target's legendFormat
}

// selector is a metric named in a query, with its label matchers.
type selector struct {
	metric   string // as written: a histogram's _bucket stays so (declaration.base)
	matchers []matcher
}

type matcher struct{ label, op, value string }

// exported are the prefixes of the metrics the worker's registry serves: its own, and Go's
// runtime and process collectors'.
var exported = regexp.MustCompile(`^(platform|go|process)_[a-z0-9_]+$`)

// builtinVars are Grafana's own variables; the dashboard defines the others.
var builtinVars = []string{"__rate_interval", "__range", "__interval", "__all"}

// targetLabels are added by Prometheus when it scrapes, so no /metrics line carries them.
var targetLabels = []string{"job", "instance"}

// onlyOnFailure are label values a healthy run cannot produce: no storage request of a test
// against Azurite is answered 5xx or unanswered. The expressions that match them are written to
// show zero (the dashboard) or not fire (the alerts) while they are absent.
var onlyOnFailure = map[string][]string{"platform_storage_requests_total/status": {"5xx", "error"}}

// dashboard is the part of Grafana's model this test reads.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		RefID        string `json:"refId"`
		Datasource   *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"` // a string, or {"query": "..."}
}

func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels flattens rows (a collapsed row holds its panels).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// ruleFile is Prometheus's rule file format.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

func readAlerts(t *testing.T) *ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key ("annotation", "label") is an error, not an omission
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return &f
}

// queries are every PromQL expression of both files.
func queries(t *testing.T) []query {
	t.Helper()
	var qs []query
	d := readDashboard(t)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			qs = append(qs, query{where: "dashboard variable " + v.Name, expr: v.query()})
		}
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{where: fmt.Sprintf("dashboard panel %q %s", p.Title, tg.RefID), expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
		}
	}
	return qs
}

// token is a PromQL token, as much of PromQL's lexer as naming metrics and labels needs.
type token struct {
	kind byte // 'i' identifier, 's' string, 'o' operator or punctuation, 'n' number or duration
	text string
}

var lexeme = regexp.MustCompile(`^(?:` +
	`(?P<i>[a-zA-Z_:][a-zA-Z0-9_:]*)|` +
	`(?P<s>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" + `)|` +
	`(?P<n>[0-9][0-9.eE+]*[a-z]*)|` +
	`(?P<o>=~|!~|!=|==|<=|>=|[-+*/%^=<>(){}\[\],:@$])|` +
	`(?P<ws>\s+))`)

func lex(expr string) ([]token, error) {
	var out []token
	for rest := expr; rest != ""; {
		m := lexeme.FindStringSubmatchIndex(rest)
		if m == nil {
			return nil, fmt.Errorf("cannot read %q", rest[:min(len(rest), 20)])
		}
		for i, name := range lexeme.SubexpNames() {
			if name != "" && name != "ws" && m[2*i] >= 0 {
				out = append(out, token{name[0], rest[m[2*i]:m[2*i+1]]})
			}
		}
		rest = rest[m[1]:]
	}
	return out, nil
}

// unquote reads a PromQL string literal (Go's escapes; backquotes are raw).
func unquote(s string) string {
	if s[0] == '`' {
		return s[1 : len(s)-1]
	}
	var out string
	if err := json.Unmarshal([]byte(`"`+strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`)+`"`), &out); err != nil {
		return s[1 : len(s)-1]
	}
	return out
}

// parse finds the metrics an expression selects, the labels it groups or joins by, and checks
// that its brackets balance.
func parse(expr string) (sels []selector, grouping []string, err error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, nil, err
	}
	var open []string
	pairs := map[string]string{")": "(", "}": "{", "]": "["}
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch {
		case tk.kind == 'o' && (tk.text == "(" || tk.text == "{" || tk.text == "["):
			open = append(open, tk.text)
		case tk.kind == 'o' && pairs[tk.text] != "":
			if len(open) == 0 || open[len(open)-1] != pairs[tk.text] {
				return nil, nil, fmt.Errorf("unbalanced %q", tk.text)
			}
			open = open[:len(open)-1]
		case tk.kind == 'i' && slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, tk.text) &&
			i+1 < len(toks) && toks[i+1].text == "(":
			for j := i + 2; j < len(toks) && toks[j].text != ")"; j++ {
				if toks[j].kind == 'i' {
					grouping = append(grouping, toks[j].text)
				}
			}
		case tk.kind == 'i' && exported.MatchString(tk.text):
			sel := selector{metric: tk.text}
			if i+1 < len(toks) && toks[i+1].text == "{" {
				// label op "value" (, label op "value")* ,? }
				j := i + 2
				for j < len(toks) && toks[j].text != "}" {
					if j+2 >= len(toks) || toks[j].kind != 'i' || toks[j+1].kind != 'o' || toks[j+2].kind != 's' {
						return nil, nil, fmt.Errorf("%s: cannot read a matcher at %q", tk.text, toks[j].text)
					}
					sel.matchers = append(sel.matchers, matcher{toks[j].text, toks[j+1].text, unquote(toks[j+2].text)})
					j += 3
					if j < len(toks) && toks[j].text == "," {
						j++
					}
				}
				if j >= len(toks) {
					return nil, nil, fmt.Errorf("%s: unterminated matchers", tk.text)
				}
				i = j
			}
			sels = append(sels, sel)
		}
	}
	if len(open) > 0 {
		return nil, nil, fmt.Errorf("unclosed %q", open[len(open)-1])
	}
	return sels, grouping, nil
}

// --- the files themselves ----------------------------------------------------------------

func TestDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion 36 or later", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["DS_PROMETHEUS"]; !ok || v.Type != "datasource" || v.query() != "prometheus" {
		t.Errorf("want a datasource variable DS_PROMETHEUS of type prometheus, got %+v", v)
	}
	if v, ok := vars["queue"]; !ok || v.Type != "query" || !strings.HasPrefix(v.query(), "label_values(platform_") {
		t.Errorf("want a query variable queue from label_values, got %+v", v)
	}
	varRef := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	ids := map[int]string{}
	panels := allPanels(d.Panels)
	if len(panels) < 10 {
		t.Fatalf("%d panels: the dashboard did not load", len(panels))
	}
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %s", name, prev)
		}
		ids[p.ID] = name
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		if p.GridPos.W < 1 || p.GridPos.H < 1 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24 columns", name, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("%s: no description (say what it shows and what to do when it is red)", name)
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("%s: datasource %+v, want uid ${DS_PROMETHEUS}", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no target", name)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("%s: a target without expr or refId", name)
			}
			if tg.Datasource != nil && tg.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("%s %s: datasource %q", name, tg.RefID, tg.Datasource.UID)
			}
			for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !slices.Contains(builtinVars, m[1]) {
					t.Errorf("%s %s: variable $%s is not defined", name, tg.RefID, m[1])
				}
			}
		}
	}
	for _, q := range queries(t) {
		if _, _, err := parse(q.expr); err != nil && strings.HasPrefix(q.where, "dashboard") {
			t.Errorf("%s: %v in %s", q.where, err, q.expr)
		}
	}
}

// TestQueriedMetricsAreDeclared needs no worker: a misspelt name fails here at once.
func TestQueriedMetricsAreDeclared(t *testing.T) {
	t.Parallel()
	d := declared()
	if !d.names["platform_queue_messages_total"] || !d.histograms["platform_effect_latency_seconds"] || !d.names["go_goroutines"] {
		t.Fatalf("internal/telemetry's declarations did not read: %d names, %d histograms", len(d.names), len(d.histograms))
	}
	n := 0
	for _, q := range queries(t) {
		sels, _, err := parse(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
		for _, sel := range sels {
			n++
			if !d.names[d.base(sel.metric)] {
				t.Errorf("%s: %s is declared nowhere (internal/telemetry, Go's and the process collector)", q.where, sel.metric)
			}
		}
	}
	if n < 40 {
		t.Errorf("%d metric selectors in both files: the extraction is broken", n)
	}
}

// promDuration is Prometheus's duration syntax (the rule file's "for").
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

func TestAlertRulesAreComplete(t *testing.T) {
	t.Parallel()
	f := readAlerts(t)
	if len(f.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	// Prometheus runs annotations and labels as Go templates with these variables and functions.
	funcs := template.FuncMap{}
	for _, fn := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "printf", "title", "toUpper", "toLower", "reReplaceAll"} {
		funcs[fn] = func(...any) string { return "" }
	}
	names := map[string]bool{}
	n := 0
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			n++
			name := fmt.Sprintf("group %s alert %q", g.Name, r.Alert)
			if r.Alert == "" {
				t.Errorf("%s: no alert name (recording rules belong elsewhere)", name)
			}
			if names[r.Alert] {
				t.Errorf("%s: name used twice", name)
			}
			names[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: no expr", name)
			} else if _, _, err := parse(r.Expr); err != nil {
				t.Errorf("%s: %v in %s", name, err, r.Expr)
			}
			// Every rule says how long it waits, 0m included: a rule without one fires on one
			// evaluation, which is right only for a counter's increase, and should say so.
			if !promDuration.MatchString(r.For) {
				t.Errorf("%s: for %q, want a Prometheus duration", name, r.For)
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", name, sev)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", name, a)
				}
			}
			for k, v := range r.Annotations {
				if _, err := template.New(k).Funcs(funcs).Parse(`{{$labels := .Labels}}{{$value := .Value}}` + v); err != nil {
					t.Errorf("%s: annotation %s: %v", name, k, err)
				}
			}
		}
	}
	if n < 8 {
		t.Errorf("%d rules: the file did not load whole", n)
	}
}

// --- against a running worker --------------------------------------------------------------

// scrape is what one GET /metrics served.
type scrape map[string]*dto.MetricFamily

func getMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return fams
}

// declaration is what internal/telemetry registers: every metric's name, and which are
// histograms (their _bucket, _sum and _count series are the histogram's).
type declaration struct {
	names      map[string]bool
	histograms map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func declared() declaration {
	d := declaration{names: map[string]bool{}, histograms: map[string]bool{}}
	m := telemetry.New()
	describe := func(c prometheus.Collector, into map[string]bool) {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for desc := range ch {
			if n := fqName.FindStringSubmatch(desc.String()); n != nil {
				into[n[1]] = true
			}
		}
	}
	describe(m.Registry, d.names) // the registry describes all it holds, Go's collectors too
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if h, ok := v.Field(i).Interface().(*prometheus.HistogramVec); ok {
			describe(h, d.histograms)
		}
	}
	return d
}

// base is the metric a written name reads: a histogram's _bucket, _sum and _count are its own.
func (d declaration) base(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && d.histograms[b] {
			return b
		}
	}
	return name
}

// labelValues are the values each label takes over a family's series.
func labelValues(f *dto.MetricFamily) map[string][]string {
	out := map[string][]string{}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if !slices.Contains(out[lp.GetName()], lp.GetValue()) {
				out[lp.GetName()] = append(out[lp.GetName()], lp.GetValue())
			}
		}
	}
	return out
}

// problems is what the queries ask of s that s does not have: metrics, labels, label values.
// Metrics come first, each once with the queries that read it.
func problems(qs []query, d declaration, s scrape) []string {
	var out []string
	absent := map[string][]string{}
	for _, q := range qs {
		sels, grouping, err := parse(q.expr)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", q.where, err))
			continue
		}
		labels := slices.Clone(targetLabels) // of any metric the expression reads
		allFound := true
		for _, sel := range sels {
			base := d.base(sel.metric)
			f := s[base]
			if f == nil || len(f.GetMetric()) == 0 {
				if !slices.Contains(absent[base], q.where) {
					absent[base] = append(absent[base], q.where)
				}
				allFound = false
				continue
			}
			values := labelValues(f)
			for l := range values {
				labels = append(labels, l)
			}
			if d.histograms[base] {
				labels = append(labels, "le")
			}
			for _, m := range sel.matchers {
				if slices.Contains(targetLabels, m.label) {
					continue
				}
				got, ok := values[m.label]
				switch {
				case !ok:
					out = append(out, fmt.Sprintf("%s: %s has no label %q (it has %v)", q.where, base, m.label, keys(values)))
				case strings.Contains(m.value, "$") || m.op == "!=" || m.op == "!~":
					// A dashboard variable, or a matcher that excludes: nothing to find.
				case m.op == "=" && !slices.Contains(got, m.value):
					out = append(out, fmt.Sprintf("%s: no %s series with %s=%q (values seen: %v)", q.where, base, m.label, m.value, got))
				case m.op == "=~":
					re, err := regexp.Compile("^(?:" + m.value + ")$")
					if err != nil {
						out = append(out, fmt.Sprintf("%s: %s{%s=~%q}: %v", q.where, base, m.label, m.value, err))
						break
					}
					if !slices.ContainsFunc(got, re.MatchString) && !slices.ContainsFunc(onlyOnFailure[base+"/"+m.label], re.MatchString) {
						out = append(out, fmt.Sprintf("%s: no %s series with %s=~%q (values seen: %v)", q.where, base, m.label, m.value, got))
					}
				}
			}
		}
		if !allFound || len(sels) == 0 {
			continue // the labels of a metric not there cannot be checked
		}
		for _, l := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			grouping = append(grouping, l[1])
		}
		for _, l := range slices.Compact(slices.Sorted(slices.Values(grouping))) {
			if !slices.Contains(labels, l) {
				out = append(out, fmt.Sprintf("%s: label %q (in by, on or the legend) is on none of the metrics it reads", q.where, l))
			}
		}
	}
	var metrics []string
	for _, name := range keys(absent) {
		why := "declared in internal/telemetry, but no series after the run: a vector prints nothing until a label set is observed or pre-initialized"
		if !d.names[name] {
			why = "declared nowhere: not in internal/telemetry, nor one of Go's or the process collector's"
		}
		metrics = append(metrics, fmt.Sprintf("metric %s: %s (read by %s)", name, why, strings.Join(absent[name], "; ")))
	}
	seen := map[string]bool{}
	for _, o := range out {
		if !seen[o] {
			seen[o] = true
			metrics = append(metrics, o)
		}
	}
	return metrics
}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEveryQueriedMetricIsExported drives a short run through a real worker — an event through
// the outbox to its timeline row, an email over SMTP and an endpoint delivery answered 500 then
// 204, a malformed event poisoned, a job of a removed type failed and poisoned — then scrapes
// the worker's /metrics and checks every metric, label and label value the dashboard and the
// alerts query. All that is missing is listed in one failure.
func TestEveryQueriedMetricIsExported(t *testing.T) {
	t.Parallel()
	qs := queries(t)
	decl := declared()
	ctx := context.Background()

	ns := testenv.Namespace(t)
	dsn := filepath.Join(t.TempDir(), "settings.db")
	db, err := settings.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []int{mappings.NotificationAttendeeNewProfile, removedType} {
		if err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
			VALUES (42, %d, TRUE, 'email', 0)`, typ)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	smtp := testenv.StartSMTP(t)
	var calls atomic.Int32 // the receiver answers 500 once, then 204
	receiver := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	cfg := worker.Config{
		Account: storage.Account{}, Namespace: ns, Logger: testenv.Logger(t), SettingsDSN: dsn,
		HTTPAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Consumer: queues.ConsumerConfig{VisibilityTimeout: 2 * time.Second, RetryBackoff: time.Second,
			PollInterval: 20 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond},
		Outbox:           outbox.Config{LeaseDuration: 15 * time.Second, PollInterval: 100 * time.Millisecond},
		Delivery:         delivery.Config{SendLease: 2 * time.Second},
		Webhooks:         webhooks.Config{RetrySchedule: []time.Duration{time.Second, time.Second}},
		SMTP:             &channels.SMTPConfig{Addr: smtp.Addr, From: "Platform <platform@example.com>", TLS: smtp.ClientTLS},
		WebhookAllowlist: []string{"127.0.0.1"},
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: receiver.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11}}); err != nil {
		t.Fatal(err)
	}

	// A hinted event through the outbox: history, an email, an endpoint delivery.
	ev, err := platform.DecodeEvent([]byte(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
		`"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":101,` +
		`"payload":{"firstName":"Ada","lastName":"Lovelace","guardianEmail":"guardian@example.com","guardianName":"Byron"}}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := w.Outbox().AppendIntent(ctx, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Outbox().ConfirmIntent(ctx, in.SourceKey); err != nil {
		t.Fatal(err)
	}
	// An intent rolled back.
	other := *ev
	other.CreatedOn = other.CreatedOn.Add(time.Second)
	rolledBack, err := w.Outbox().AppendIntent(ctx, &other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Outbox().DiscardIntent(ctx, rolledBack.SourceKey); err != nil {
		t.Fatal(err)
	}
	// A malformed event: poisoned at once.
	if err := w.Queues().Enqueue(ctx, platform.QueueEntityEvents, `{"eventTypeId":"not a number"}`, 0); err != nil {
		t.Fatal(err)
	}
	// A direct job of a type this worker does not know (removed while the job was on its way,
	// as a deployment can): the generator fails it and poisons its message.
	tool := removedTypeTool(t, cfg)
	if _, _, err := tool.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: removedType, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "a@example.com"}}}, ""); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 60*time.Second, "the timeline row, the mail and the endpoint's second attempt", func() bool {
		rows, _, err := history.Timeline(ctx, w.History(), w.Blobs(), 1, "7c9e6679-7425-40de-944b-e07fc1f90ae7", &tables.TimelineOptions{Limit: 10})
		return err == nil && len(rows) == 1 && len(smtp.Mails()) == 1 && calls.Load() >= 2
	})
	drainCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := w.WaitDrained(drainCtx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	// Some series come a moment later (the queue sampler, the materializer's lease): scrape
	// until nothing is missing, or for one sampling period and a little more.
	var last []string
	deadline := time.Now().Add(40 * time.Second)
	for {
		last = problems(qs, decl, getMetrics(t, w.MetricsAddr()))
		if len(last) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(last) > 0 {
		t.Fatalf("the dashboard and alerts query what the worker does not export (%d):\n%s", len(last), strings.Join(last, "\n"))
	}
}

// removedType is a direct notification type only the tool below knows.
const removedType = 299

// removedTypeTool is a worker that is not started (as the command line is), knowing one more
// type than the running worker: it writes a job the running worker cannot generate.
func removedTypeTool(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	cfg.HTTPAddr, cfg.MetricsAddr = "", ""
	cfg.NotificationTypes = append(mappings.ExampleNotifications(), mappings.NotificationType{
		ID: removedType, Name: "RemovedLater", Path: mappings.Direct,
		Render: &mappings.Renderer{Template: "removed-later", Default: &mappings.Template{Subject: "s", Text: "t"}}})
	tool, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tool
}
