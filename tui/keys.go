package tui

import (
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// binding is one key action: the keys that trigger it and how the help
// names it. (A local type rather than bubbles' key/help: bubbles pulls in a
// go-runewidth whose init builds a 2 MB table and adds ~40 ms to every
// costctl start, tokens in CI included.)
type binding struct {
	keys      []string // as tea.KeyPressMsg.String() spells them
	key, desc string   // for the help
}

func bind(key, desc string, keys ...string) binding {
	return binding{keys: keys, key: key, desc: desc}
}

func (b binding) matches(msg tea.KeyPressMsg) bool { return slices.Contains(b.keys, msg.String()) }

type keyMap struct {
	Group, SortLeft, SortRight, Reverse, Filter, Clear, Pause, Help, Quit binding
}

func defaultKeys() keyMap {
	return keyMap{
		Group:     bind("g", "group", "g"),
		SortLeft:  bind("<", "sort ←", "<", ","),
		SortRight: bind(">", "sort →", ">", "."),
		Reverse:   bind("r", "reverse", "r"),
		Filter:    bind("/", "filter", "/"),
		Clear:     bind("esc", "clear filter", "esc"),
		Pause:     bind("p/space", "pause", "p", "space"),
		Help:      bind("?", "help", "?"),
		Quit:      bind("q", "quit", "q", "ctrl+c"),
	}
}

// actions are the keys that change a tenant's policy (with Options.Act).
func (k keyMap) actions() []binding {
	return []binding{bind("↑/↓", "select", "up", "down"), bind("b", "block/unblock", "b"), bind("s", "sample", "s")}
}

func (k keyMap) shortHelp() []binding {
	return []binding{k.Group, k.SortLeft, k.SortRight, k.Reverse, k.Filter, k.Pause, k.Help, k.Quit}
}

func (k keyMap) fullHelp() [][]binding {
	return [][]binding{{k.Group, k.SortLeft, k.SortRight, k.Reverse}, {k.Filter, k.Clear, k.Pause, k.Help, k.Quit}}
}

// shortHelpView is one line, "g group • < sort ← • …", cut with " …" when
// it does not fit in width.
func shortHelpView(bs []binding, width int) string {
	var b strings.Builder
	for i, k := range bs {
		item := k.key + " " + k.desc
		if i > 0 {
			item = " • " + item
		}
		if width > 0 && ansi.StringWidth(b.String()+item) > width {
			if ansi.StringWidth(b.String()+" …") <= width {
				b.WriteString(" …")
			}
			break
		}
		b.WriteString(item)
	}
	return b.String()
}

// fullHelpView lays the bindings out in columns of "key desc".
func fullHelpView(cols [][]binding) string {
	height := 0
	for _, c := range cols {
		height = max(height, len(c))
	}
	lines := make([]string, height)
	for ci, c := range cols {
		kw, dw := 0, 0
		for _, k := range c {
			kw, dw = max(kw, ansi.StringWidth(k.key)), max(dw, ansi.StringWidth(k.desc))
		}
		for i := 0; i < height; i++ {
			cell := strings.Repeat(" ", kw+1+dw)
			if i < len(c) {
				cell = pad(c[i].key, kw) + " " + pad(c[i].desc, dw)
			}
			if ci > 0 {
				cell = "    " + cell
			}
			lines[i] += cell
		}
	}
	return strings.Join(lines, "\n")
}

func pad(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}
