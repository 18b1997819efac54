// Package render writes the tabular output every costctl command shares:
// aligned text tables for terminals, CSV, Markdown for pull requests, and
// versioned JSON.
package render

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/costctl/costctl/pricing"
)

// Formats accepted by --format.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
	FormatMD    = "md"
)

// CheckFormat returns an error naming the allowed formats when f is not one.
func CheckFormat(f string, allowed ...string) error {
	for _, a := range allowed {
		if f == a {
			return nil
		}
	}
	return fmt.Errorf("invalid --format %q (expected %s)", f, strings.Join(allowed, ", "))
}

// Align of a column.
type Align int

// Column alignments.
const (
	Left Align = iota
	Right
)

// Table is a header, rows and an optional footer (a totals row).
type Table struct {
	Headers []string
	Align   []Align // per column; missing = Left
	Rows    [][]string
	Footer  []string // drawn under a rule in text, as a last row in CSV/Markdown
}

// AddRow appends a row.
func (t *Table) AddRow(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t *Table) align(i int) Align {
	if i < len(t.Align) {
		return t.Align[i]
	}
	return Left
}

func width(s string) int { return utf8.RuneCountInString(s) }

// WriteText writes an aligned plain-text table (two spaces between columns,
// a rule under the header and above the footer, no trailing spaces).
func (t *Table) WriteText(w io.Writer) error {
	n := len(t.Headers)
	widths := make([]int, n)
	all := append([][]string{t.Headers}, t.Rows...)
	if t.Footer != nil {
		all = append(all, t.Footer)
	}
	for _, r := range all {
		for i := 0; i < n && i < len(r); i++ {
			widths[i] = max(widths[i], width(r[i]))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		var l strings.Builder
		for i := 0; i < n; i++ {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-width(c))
			if t.align(i) == Right {
				l.WriteString(pad + c)
			} else {
				l.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	rule := func() {
		total := 0
		for _, wd := range widths {
			total += wd
		}
		total += 2 * (n - 1)
		b.WriteString(strings.Repeat("-", total))
		b.WriteByte('\n')
	}
	line(t.Headers)
	rule()
	for _, r := range t.Rows {
		line(r)
	}
	if t.Footer != nil {
		rule()
		line(t.Footer)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCSV writes the header, rows and footer as CSV.
func (t *Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(t.Headers)
	for _, r := range t.Rows {
		_ = cw.Write(r)
	}
	if t.Footer != nil {
		_ = cw.Write(t.Footer)
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown writes a GitHub-flavoured Markdown table; the footer becomes
// a bold last row.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, h := range t.Headers {
		b.WriteString(" " + esc(h) + " |")
	}
	b.WriteString("\n|")
	for i := range t.Headers {
		if t.align(i) == Right {
			b.WriteString("---:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	row := func(r []string, bold bool) {
		b.WriteString("|")
		for i := range t.Headers {
			c := ""
			if i < len(r) {
				c = esc(r[i])
			}
			if bold && c != "" {
				c = "**" + c + "**"
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	for _, r := range t.Rows {
		row(r, false)
	}
	if t.Footer != nil {
		row(t.Footer, true)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Write writes t in format f (table, csv or md).
func (t *Table) Write(w io.Writer, f string) error {
	switch f {
	case FormatCSV:
		return t.WriteCSV(w)
	case FormatMD:
		return t.WriteMarkdown(w)
	default:
		return t.WriteText(w)
	}
}

// JSON writes v as indented JSON with a trailing newline. Callers put
// "version": 1 in v; money fields use pricing.Money, which marshals as a
// decimal string.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Int formats n with thousands separators: 5123 → "5,123".
func Int(n int64) string { return pricing.GroupInt(n) }

// Pct formats a percentage with one decimal: 12.5 → "12.5%".
func Pct(p float64) string { return fmt.Sprintf("%.1f%%", p) }
