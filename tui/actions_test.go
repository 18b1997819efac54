package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// On-call acts from the live view: the tenant view marks policies and the
// budget used; ↓ selects, b blocks after a reason, s samples after a share
// and a reason — written as policy changes with audit rows — and esc
// cancels without writing.
func TestTopActs(t *testing.T) {
	ctx := context.Background()
	db := fixture(t, false)
	// acme: $60 today (30 × $2) against a $100 daily budget, routed.
	if err := db.SetPolicy(ctx, ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(100), Routes: map[string]string{"gpt-4o": "gpt-4o-mini"}},
		ledger.PolicyChange{At: now, Tenant: "acme", What: "daily-budget 100", Reason: "plan", Who: "test"}); err != nil {
		t.Fatal(err)
	}
	var acts []Action
	act := func(ctx context.Context, a Action) (string, error) {
		acts = append(acts, a)
		var what string
		_, err := db.UpdatePolicy(ctx, a.Tenant, func(p *ledger.Policy) (ledger.PolicyChange, error) {
			switch {
			case a.Block != nil:
				p.Blocked, what = *a.Block, map[bool]string{true: "block", false: "unblock"}[*a.Block]
			default:
				p.SampleBP, what = 100, "sample "+a.Sample
			}
			return ledger.PolicyChange{At: now, Tenant: a.Tenant, What: what, Reason: a.Reason, Who: "oncall"}, nil
		})
		return what, err
	}
	m := New(Options{Config: cfg(), Fetch: DBFetch(db), Now: func() time.Time { return now }, Act: act})
	m = step(t, m, tea.WindowSizeMsg{Width: 110, Height: 24})
	m = step(t, m, m.fetchCmd(m.seq)())
	view := ansi.Strip(m.View().Content)
	if !strings.Contains(view, "▸ ↪ acme 60%/d") || !strings.Contains(view, "b block/unblock") {
		t.Fatalf("the tenant view lacks the selected, routed acme at 60%% of its daily budget, or the action keys:\n%s", view)
	}

	// ↓ to globex, b, a reason, enter: blocked.
	m = keys(t, m, "j", "j", "b") // ↓↓ to globex (rows by cost: acme, initech, globex)
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "block globex — reason: █") {
		t.Fatalf("no block prompt:\n%s", got)
	}
	m = confirm(t, keys(t, m, "s", "p", "i", "k", "e"))
	if len(acts) != 1 || acts[0].Tenant != "globex" || acts[0].Block == nil || !*acts[0].Block || acts[0].Reason != "spike" {
		t.Fatalf("actions %+v", acts)
	}
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "✔ globex: block") || !strings.Contains(got, "▸ ⛔ globex") {
		t.Fatalf("after blocking:\n%s", got)
	}

	// s on globex: share, then reason.
	m = confirm(t, keys(t, m, "s", "1", "%", "enter", "r", "b"))
	if len(acts) != 2 || acts[1].Sample != "1%" || acts[1].Reason != "rb" {
		t.Fatalf("actions %+v", acts)
	}
	// b again unblocks; esc cancels it before anything is written.
	m = keys(t, m, "b")
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "unblock globex — reason:") {
		t.Fatalf("no unblock prompt:\n%s", got)
	}
	m = keys(t, m, "x", "esc")
	if len(acts) != 2 || m.prompt != nil {
		t.Fatalf("esc wrote %+v", acts)
	}
	changes, err := db.PolicyChanges(ctx, "globex")
	if err != nil || len(changes) != 2 || changes[0].What != "block" || changes[1].What != "sample 1%" || changes[1].Who != "oncall" {
		t.Fatalf("audit rows %+v, %v", changes, err)
	}
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "⛔ ~1% globex") {
		t.Fatalf("after sampling:\n%s", got)
	}
}

// confirm presses enter on a prompt and runs what follows as the program
// would: the action's command, then the refetch its outcome asks for.
func confirm(t *testing.T, m Model) Model {
	t.Helper()
	nm, cmd := m.Update(tea.KeyPressMsg{Code: tea.KeyEnter})
	if cmd == nil {
		t.Fatal("enter on the reason ran nothing")
	}
	nm, cmd = nm.Update(cmd())
	if cmd == nil {
		t.Fatalf("the action's outcome asked for no refetch: %q", nm.(Model).flash)
	}
	return step(t, nm.(Model), cmd())
}
