package main

import (
	"fmt"
	"slices"
	"strings"
)

// median of xs (0 for none); an even count gives the mean of the middle two.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianOf is the median of key over the runs that succeeded.
func medianOf(runs []metrics, key string) (float64, bool) {
	var xs []float64
	for _, m := range runs {
		if v, ok := m[key]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs), len(xs) > 0
}

// ratioOf is the median over rounds of a's key divided by b's in the same
// round: neighbours in time, so the machine's drift cancels best.
func ratioOf(a, b []metrics, key string) (float64, bool) {
	var xs []float64
	for i := range min(len(a), len(b)) {
		if a[i] != nil && b[i] != nil && b[i][key] != 0 {
			xs = append(xs, a[i][key]/b[i][key])
		}
	}
	return median(xs), len(xs) > 0
}

func printTable(cfg *config, r row, runs map[string][]metrics) {
	_, hasBase := runs["base"]
	heads := []string{"server"}
	for _, c := range r.cols {
		heads = append(heads, c.head)
	}
	heads = append(heads, "min–max")
	if r.bare {
		heads = append(heads, "÷bare")
	}
	if hasBase {
		heads = append(heads, "latch÷base")
	}
	var lines [][]string
	for _, t := range cfg.targets {
		rs, ok := runs[t.name]
		if !ok {
			continue
		}
		line := []string{t.name}
		for _, c := range r.cols {
			if v, ok := medianOf(rs, c.key); ok {
				line = append(line, fmt.Sprintf(c.format, v))
			} else {
				line = append(line, "failed")
			}
		}
		line = append(line, spread(rs, r))
		if r.bare {
			line = append(line, ratioCell(t.name != "bare", rs, runs["bare"], r.primary))
		}
		if hasBase {
			line = append(line, ratioCell(t.name == "latch", rs, runs["base"], r.primary))
		}
		lines = append(lines, line)
	}
	widths := make([]int, len(heads))
	for _, l := range append([][]string{heads}, lines...) {
		for i, c := range l {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, l := range append([][]string{heads}, lines...) {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range l {
			fmt.Fprintf(&b, " %*s", widths[i], c)
		}
		fmt.Println(b.String())
	}
}

func ratioCell(applies bool, a, b []metrics, key string) string {
	if !applies {
		return "—"
	}
	if v, ok := ratioOf(a, b, key); ok {
		return fmt.Sprintf("%.2f", v)
	}
	return "n/a"
}

// spread is the lowest and highest of the primary figure over the rounds:
// how far apart the runs that the median hides were.
func spread(runs []metrics, r row) string {
	var xs []float64
	for _, m := range runs {
		if v, ok := m[r.primary]; ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return "failed"
	}
	f := r.cols[slices.IndexFunc(r.cols, func(c col) bool { return c.key == r.primary })].format
	return fmt.Sprintf(f+"–"+f, slices.Min(xs), slices.Max(xs))
}
