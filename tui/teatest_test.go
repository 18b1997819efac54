package tui

import (
	"bytes"
	"io"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// One end-to-end run of the real program loop: Init fetches, the tick
// refreshes, keys arrive through the input, q quits.
func TestProgramSmoke(t *testing.T) {
	db := fixture(t, false)
	m := New(Options{Config: cfg(), Fetch: DBFetch(db), Now: func() time.Time { return now }, Interval: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("acme")) && bytes.Contains(b, []byte("PROJECTED OVER BUDGET"))
	}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	tm.Send(tea.KeyPressMsg{Code: 'p', Text: "p"})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("PAUSED")) },
		teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	final := tm.FinalModel(t).(Model)
	if !final.paused || !final.have || final.cfg.GroupBy != "tenant" {
		t.Fatalf("final model: paused=%v have=%v group=%s", final.paused, final.have, final.cfg.GroupBy)
	}
	_, _ = io.ReadAll(tm.FinalOutput(t))
}
