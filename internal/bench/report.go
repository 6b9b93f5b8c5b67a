package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people: every stage beside its baseline,
// then the targets.
func (r *Report) WriteTable(out io.Writer) {
	m := r.Machine
	fmt.Fprintf(out, "\neventflow benchmark: %s stack, delivery guarantee %s, %s\n", r.Stack, r.Guarantee, r.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "machine: %s, %s, %d cores, %.1f GiB, Linux %s, %s", m.Host, m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.Go)
	if m.Postgres != "" {
		fmt.Fprintf(out, ", PostgreSQL %s", m.Postgres)
	}
	if m.Kafka != "" {
		fmt.Fprintf(out, ", Kafka %s", m.Kafka)
	}
	if m.Commit != "" {
		fmt.Fprintf(out, ", eventflow %s", m.Commit)
	}
	fmt.Fprintln(out)
	if len(r.Settings) > 0 {
		fmt.Fprintf(out, "settings: %s\n", strings.Join(r.Settings, " "))
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tresult\tbaseline (same run)\tratio\tp50\tp99")
	for _, s := range r.Stages {
		if s.Err != "" {
			fmt.Fprintf(tw, "%s\tFAILED: %s\t\t\t\t\n", s.Stage, s.Err)
			continue
		}
		if s.Result.Unit == "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\n", s.Stage)
			continue
		}
		base, ratio := "", ""
		if s.Baseline != nil {
			base = fmt.Sprintf("%s %s  (%s)", num(s.Baseline.Value), s.Baseline.Unit, s.Baseline.Name)
			ratio = fmt.Sprintf("%.2f", s.Ratio)
		}
		p50, p99 := "", ""
		if s.Latency != nil {
			p50, p99 = fmt.Sprintf("%.1f ms", s.Latency.P50), fmt.Sprintf("%.1f ms", s.Latency.P99)
		}
		fmt.Fprintf(tw, "%s\t%s %s  (%s)\t%s\t%s\t%s\t%s\n", s.Stage, num(s.Result.Value), s.Result.Unit, s.Result.Name, base, ratio, p50, p99)
	}
	tw.Flush()
	for _, s := range r.Stages {
		if len(s.Figures)+len(s.Notes) == 0 {
			continue
		}
		fmt.Fprintf(out, "\n%s:\n", s.Stage)
		for _, f := range s.Figures {
			fmt.Fprintf(out, "  %s: %s %s\n", f.Name, num(f.Value), f.Unit)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(out, "  (%s)\n", n)
		}
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(out, "\ntargets:\n")
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		for _, c := range r.Checks {
			verdict := "met"
			if !c.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", verdict, c.Stage, c.Target, c.Got)
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "\nthe run took %.0f s\n", r.Took)
}

// num prints a figure with thousands separators, and decimals only when
// it is small.
func num(v float64) string {
	if math.Abs(v) >= 100 {
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return fmt.Sprintf("%.3g", v)
}

// ReadReport reads a report WriteJSON wrote and checks its figures against
// the targets anew, so that a saved run can be printed again.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Checks = checkTargets(&r)
	return &r, nil
}

// WriteJSON writes the whole report, series and samples included.
func (r *Report) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteHTML writes a self-contained page: the table, and for every stage
// with a series its throughput and p50/p99 latency over time as SVG.
func (r *Report) WriteHTML(out io.Writer) error {
	var table strings.Builder
	r.WriteTable(&table)
	type chart struct {
		Title string
		SVG   template.HTML
	}
	var charts []chart
	for _, s := range r.Stages {
		if len(s.Series) > 1 {
			rate := make([]float64, len(s.Series))
			p50 := make([]float64, len(s.Series))
			p99 := make([]float64, len(s.Series))
			for i, p := range s.Series {
				rate[i], p50[i], p99[i] = p.Rate, p.P50, p.P99
			}
			charts = append(charts,
				chart{s.Stage + ": completed per second", lineChart(s.Result.Unit, s.Series[len(s.Series)-1].T, []line{{"per second", "#2563eb", rate}})},
				chart{s.Stage + ": latency", lineChart("ms", s.Series[len(s.Series)-1].T, []line{{"p50", "#16a34a", p50}, {"p99", "#dc2626", p99}})})
		}
		if len(s.Samples) > 1 {
			rss := make([]float64, len(s.Samples))
			gor := make([]float64, len(s.Samples))
			fds := make([]float64, len(s.Samples))
			for i, x := range s.Samples {
				rss[i], gor[i], fds[i] = x.RSSMiB, x.Goroutines, x.OpenFiles
			}
			end := s.Samples[len(s.Samples)-1].T
			charts = append(charts,
				chart{s.Stage + ": RSS", lineChart("MiB", end, []line{{"RSS", "#7c3aed", rss}})},
				chart{s.Stage + ": goroutines and open files", lineChart("count", end, []line{{"goroutines", "#ea580c", gor}, {"open files", "#0891b2", fds}})})
		}
	}
	return pageTemplate.Execute(out, map[string]any{"Report": r, "Table": table.String(), "Charts": charts})
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>eventflow benchmark, {{.Report.Stack}} stack</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:13px}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:600;margin-bottom:.3em}</style></head>
<body><h1>eventflow benchmark: {{.Report.Stack}} stack</h1>
<pre>{{.Table}}</pre>
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>{{.SVG}}</figure>
{{end}}</body></html>
`))

type line struct {
	name, color string
	values      []float64
}

// lineChart draws lines over time, evenly spaced from 0 to end seconds, as
// an SVG with its axis ranges and legend; no scripts, no external files.
func lineChart(unit string, end float64, lines []line) template.HTML {
	const w, h, left, bottom = 500, 220, 60, 30
	top := 0.0
	n := 0
	for _, l := range lines {
		n = max(n, len(l.values))
		for _, v := range l.values {
			top = max(top, v)
		}
	}
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-size="11" font-family="sans-serif">`, w, h)
	fmt.Fprintf(&b, `<line x1="%d" y1="10" x2="%d" y2="%d" stroke="#999"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`,
		left, left, h-bottom, left, h-bottom, w-10, h-bottom)
	fmt.Fprintf(&b, `<text x="4" y="16">%s</text><text x="4" y="%d">0</text>`, template.HTMLEscapeString(num(top)+" "+unit), h-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d">0</text><text x="%d" y="%d" text-anchor="end">%s s</text>`, left, h-bottom+14, w-10, h-bottom+14, num(end))
	for i, l := range lines {
		var pts strings.Builder
		for j, v := range l.values {
			x := float64(left) + float64(j)/float64(max(1, n-1))*float64(w-10-left)
			y := float64(h-bottom) - v/top*float64(h-bottom-10)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, pts.String())
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`, left+10+i*90, h-4, l.color, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
