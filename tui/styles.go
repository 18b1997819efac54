package tui

import (
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// styles are the few colours top uses. Every state they mark is also said
// in words or glyphs (PAUSED, ✖ OVER BUDGET, ⚠ unpriced), so nothing
// depends on colour; with NO_COLOR or --no-color they are all plain.
type styles struct {
	title, bold, header, paused, alert, warn, ok, spark, barOK, barWarn, barOver, selected lipgloss.Style
}

func newStyles(color bool) styles {
	if !color {
		return styles{}
	}
	return styles{
		title:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12")),
		bold:     lipgloss.NewStyle().Bold(true),
		header:   lipgloss.NewStyle().Bold(true).Underline(true),
		paused:   lipgloss.NewStyle().Bold(true).Reverse(true),
		alert:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("9")),
		warn:     lipgloss.NewStyle().Foreground(lipgloss.Color("11")),
		ok:       lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		spark:    lipgloss.NewStyle().Foreground(lipgloss.Color("14")),
		barOK:    lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		barWarn:  lipgloss.NewStyle().Foreground(lipgloss.Color("11")),
		barOver:  lipgloss.NewStyle().Foreground(lipgloss.Color("9")),
		selected: lipgloss.NewStyle().Reverse(true),
	}
}

func ansiTruncate(s string, width int) string { return ansi.Truncate(s, width, "") }
