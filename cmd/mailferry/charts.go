package main

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Inline SVG charts for the status page and the HTML report: drawn on the
// server, so the page needs no script and no chart library, and the report
// stays one file that opens offline.

type point struct{ X, Y float64 }

// bar is one bar of a bar chart; Bad draws it in the failure colour.
type bar struct {
	Label string
	Value float64
	Bad   bool
}

const (
	chartW, chartH = 640.0, 220.0
	padL, padR     = 70.0, 10.0
	padT, padB     = 22.0, 34.0
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten, for the axis.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// yAxis draws the horizontal grid lines and their labels.
func yAxis(b *strings.Builder, top float64, label func(float64) string) {
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := padT + (chartH-padT-padB)*(1-float64(i)/4)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, esc(label(v)))
	}
}

func chartStart(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><title>%s</title>`, chartW, chartH, esc(title), esc(title))
	fmt.Fprintf(b, `<text x="%.1f" y="14">%s</text>`, padL, esc(title))
}

// lineChart draws pts (X ascending) as a filled line.
func lineChart(title string, pts []point, xLabel, yLabel func(float64) string) template.HTML {
	var b strings.Builder
	chartStart(&b, title)
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">no data yet</text></svg>`, padL, chartH/2)
		return template.HTML(b.String())
	}
	maxX, maxY := pts[len(pts)-1].X, 0.0
	for _, p := range pts {
		maxY = max(maxY, p.Y)
	}
	if maxX <= 0 {
		maxX = 1
	}
	top := niceMax(maxY)
	yAxis(&b, top, yLabel)
	w, h := chartW-padL-padR, chartH-padT-padB
	xy := func(p point) (float64, float64) { return padL + w*p.X/maxX, padT + h*(1-p.Y/top) }
	var line strings.Builder
	for i, p := range pts {
		x, y := xy(p)
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&line, " L%.1f %.1f", x, y)
		}
	}
	x0, _ := xy(pts[0])
	x1, _ := xy(pts[len(pts)-1])
	fmt.Fprintf(&b, `<path class="area" d="%s L%.1f %.1f L%.1f %.1f Z"/>`, line.String(), x1, padT+h, x0, padT+h)
	fmt.Fprintf(&b, `<path class="line" d="%s"/>`, line.String())
	for i := 0; i <= 4; i++ {
		x := padL + w*float64(i)/4
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x, chartH-padB+16, anchor, esc(xLabel(maxX*float64(i)/4)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws one vertical bar per entry, labelled underneath.
func barChart(title string, bars []bar, yLabel func(float64) string) template.HTML {
	var b strings.Builder
	chartStart(&b, title)
	if len(bars) == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">no data</text></svg>`, padL, chartH/2)
		return template.HTML(b.String())
	}
	maxY := 0.0
	for _, br := range bars {
		maxY = max(maxY, br.Value)
	}
	top := niceMax(maxY)
	if top < 4 && integral(bars) {
		top = 4 // whole ticks for small counts
	}
	yAxis(&b, top, yLabel)
	w, h := chartW-padL-padR, chartH-padT-padB
	slot := w / float64(len(bars))
	longest := 0
	for _, br := range bars {
		longest = max(longest, len([]rune(shortLabel(br.Label))))
	}
	every := max(1, int(math.Ceil(float64(longest)*7.5/slot))) // labels do not overlap
	for i, br := range bars {
		bh := h * br.Value / top
		x := padL + slot*float64(i) + slot*0.1
		class := "bar"
		if br.Bad {
			class += " bad"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s</title></rect>`,
			class, x, padT+h-bh, slot*0.8, bh, esc(br.Label), esc(yLabel(br.Value)))
		if i%every == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+slot*0.4, chartH-padB+16, esc(shortLabel(br.Label)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func integral(bars []bar) bool {
	for _, b := range bars {
		if b.Value != math.Trunc(b.Value) {
			return false
		}
	}
	return true
}

// shortLabel cuts a bar's label under the chart; its tooltip has it whole.
func shortLabel(s string) string {
	if r := []rune(s); len(r) > 14 {
		return string(r[:13]) + "…"
	}
	return s
}
