package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// ReportInfo describes a run for the HTML report's header.
type ReportInfo struct {
	Target  string    // e.g. "latch at http://127.0.0.1:7070"
	Options string    // the command line or options, as text
	Started time.Time // when the run began
}

// WriteReport writes a self-contained HTML page (no scripts, no external
// assets: the charts are inline SVG) with a throughput bar chart, a
// latency percentile chart and a table of every result.
func WriteReport(w io.Writer, info ReportInfo, results []*Result) error {
	var ran []*Result
	for _, r := range results {
		if r.Skipped == "" {
			ran = append(ran, r)
		}
	}
	data := struct {
		Info       ReportInfo
		Started    string
		Throughput template.HTML
		Latency    template.HTML
		Results    []reportRow
		Violations int
	}{
		Info: info, Started: info.Started.Format(time.RFC3339),
		Throughput: throughputChart(ran), Latency: latencyChart(ran),
	}
	for _, r := range results {
		row := reportRow{R: r, Rate: human(r.Throughput()) + " " + r.Unit + "/sec"}
		if r.PayloadBytes > 0 {
			row.Rate += fmt.Sprintf(", %.1f MB/sec", r.BytesPerSec()/1e6)
		}
		for _, p := range ReportedPercentiles {
			row.Lat = append(row.Lat, roundDur(r.Percentile(p)).String())
		}
		row.Lat = append(row.Lat, roundDur(r.Max()).String())
		if n := r.ErrorCount(); n > 0 {
			row.Errors = fmt.Sprintf("%d (%s)", n, r.errorList())
		}
		data.Violations += len(r.Violations)
		data.Results = append(data.Results, row)
	}
	return reportTmpl.Execute(w, data)
}

type reportRow struct {
	R      *Result
	Rate   string
	Lat    []string
	Errors string
}

const (
	chartW     = 980
	labelW     = 170
	rowH       = 22
	chartPadTB = 30
)

// logAxis maps v in [lo, hi] (log scale) onto [x0, x1].
func logAxis(v, lo, hi, x0, x1 float64) float64 {
	v = math.Max(v, lo)
	return x0 + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(x1-x0)
}

// decades returns the powers of ten spanning [min, max].
func decades(minV, maxV float64) (lo, hi float64) {
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(minV, 1e-9))))
	hi = math.Pow(10, math.Ceil(math.Log10(math.Max(maxV, 1e-9))))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func throughputChart(rs []*Result) template.HTML {
	if len(rs) == 0 {
		return "<p>No results.</p>"
	}
	maxV, minV := 0.0, math.Inf(1)
	for _, r := range rs {
		v := r.Throughput()
		maxV = math.Max(maxV, v)
		if v > 0 {
			minV = math.Min(minV, v)
		}
	}
	if math.IsInf(minV, 1) {
		minV = 1
	}
	lo, hi := decades(minV/2, maxV)
	x0, x1 := float64(labelW), float64(chartW-90)
	h := len(rs)*rowH + 2*chartPadTB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, chartW, h)
	for d := lo; d <= hi*1.001; d *= 10 {
		x := logAxis(d, lo, hi, x0, x1)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#666">%s/s</text>`,
			x, chartPadTB-5, x, h-chartPadTB+5, x, chartPadTB-10, human(d))
	}
	for i, r := range rs {
		y := chartPadTB + i*rowH
		v := r.Throughput()
		x := logAxis(v, lo, hi, x0, x1)
		color := "#4a7bd0"
		if r.Failed() {
			color = "#d04a4a"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end">%s<title>%s</title></text>`, x0-8, y+15, esc(r.Scenario), esc(r.Title))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
			x0, y+3, math.Max(x-x0, 1), rowH-6, color, esc(fmt.Sprintf("%s: %.1f %s/sec", r.Scenario, v, r.Unit)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%s %s/s</text>`, math.Max(x, x0)+4, y+15, human(v), esc(r.Unit))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var latencyMarks = []struct {
	p     float64
	name  string
	color string
}{
	{0.5, "p50", "#2e7d32"}, {0.9, "p90", "#1565c0"}, {0.99, "p99", "#ef6c00"}, {0.999, "p99.9", "#8e24aa"}, {1, "max", "#c62828"},
}

func latencyChart(rs []*Result) template.HTML {
	var withLat []*Result
	minV, maxV := math.Inf(1), 0.0
	for _, r := range rs {
		if r.Histogram().Count() == 0 {
			continue
		}
		withLat = append(withLat, r)
		minV = math.Min(minV, math.Max(float64(r.Percentile(0.5)), 1e3))
		maxV = math.Max(maxV, float64(r.Max()))
	}
	if len(withLat) == 0 {
		return "<p>No latencies.</p>"
	}
	lo, hi := decades(minV, maxV)
	x0, x1 := float64(labelW), float64(chartW-20)
	h := len(withLat)*rowH + 2*chartPadTB + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, chartW, h)
	for d := lo; d <= hi*1.001; d *= 10 {
		x := logAxis(d, lo, hi, x0, x1)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#666">%s</text>`,
			x, chartPadTB-5, x, h-chartPadTB-15, x, chartPadTB-10, time.Duration(d))
	}
	for i, m := range latencyMarks {
		x := x0 + float64(i)*90
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%d" r="5" fill="%s"/><text x="%.1f" y="%d">%s</text>`, x, h-12, m.color, x+9, h-8, m.name)
	}
	for i, r := range withLat {
		y := float64(chartPadTB + i*rowH + rowH/2)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s<title>%s</title></text>`, x0-8, y+4, esc(r.Scenario), esc(r.Title))
		xa, xb := logAxis(float64(r.Percentile(0.5)), lo, hi, x0, x1), logAxis(float64(r.Max()), lo, hi, x0, x1)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-width="2"/>`, xa, y, xb, y)
		for _, m := range latencyMarks {
			d := r.Percentile(m.p)
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s"><title>%s %s</title></circle>`,
				logAxis(float64(d), lo, hi, x0, x1), y, m.color, m.name, roundDur(d))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var reportTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>latch loadtest report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td.l,th.l{text-align:left}
.bad{color:#c62828;font-weight:bold}
.ok{color:#2e7d32}
svg{display:block;margin:1em 0}
</style></head><body>
<h1>latch loadtest report</h1>
<p>Target: {{.Info.Target}}<br>Started: {{.Started}}<br>Options: <code>{{.Info.Options}}</code></p>
{{if .Violations}}<p class="bad">{{.Violations}} correctness violations: see the table.</p>{{else}}<p class="ok">No correctness violations.</p>{{end}}
<h2>Throughput (log scale)</h2>
{{.Throughput}}
<h2>Latency percentiles (log scale)</h2>
{{.Latency}}
<h2>All results</h2>
<table><tr><th class="l">scenario</th><th class="l">title</th><th>clients</th><th>rate</th>
<th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>ops</th><th>requests</th><th class="l">errors</th><th class="l">notes</th></tr>
{{range .Results}}<tr><td class="l">{{.R.Scenario}}</td><td class="l">{{.R.Title}}</td>
{{if .R.Skipped}}<td colspan="11" class="l">skipped: {{.R.Skipped}}</td>{{else}}
<td>{{.R.Clients}}</td><td>{{.Rate}}</td>{{range .Lat}}<td>{{.}}</td>{{end}}<td>{{.R.Ops}}</td><td>{{.R.Requests}}</td>
<td class="l">{{.Errors}}</td><td class="l">{{.R.Note}}{{range .R.Violations}}<div class="bad">VIOLATION: {{.}}</div>{{end}}</td>{{end}}</tr>
{{end}}</table>
</body></html>
`))
