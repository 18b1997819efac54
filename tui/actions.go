package tui

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Action is a change on-call makes to a tenant's policy from the live view
// (b: block or unblock; s: the sample share), with the reason asked for.
// It is written as the same audit row as `costctl policy set`.
type Action struct {
	Tenant string
	Block  *bool  // set: block (true) or unblock (false)
	Sample string // set: the sample share as typed ("1%", "0")
	Reason string
}

// ActFunc applies an Action and says what it did ("block", "sample 1%").
type ActFunc func(ctx context.Context, a Action) (string, error)

// PolicySource is a Source that also holds the proxy's tenant policies;
// the tenant view then marks blocked, sampled and routed tenants and shows
// the share of their budget used.
type PolicySource interface {
	Policies(ctx context.Context) (map[string]ledger.Policy, error)
}

// actionMsg is the outcome of an Action.
type actionMsg struct {
	tenant, what string
	err          error
}

// prompt is an action being typed: its steps ask for a share (sample
// only), then a reason; enter moves on, esc cancels.
type prompt struct {
	action Action
	sample bool // asking for the share (step 1 of s)
	input  string
}

func (p *prompt) label() string {
	switch {
	case p.sample:
		return fmt.Sprintf("sample share for %s (e.g. 1%%; 0 stops): ", p.action.Tenant)
	case p.action.Block != nil && *p.action.Block:
		return fmt.Sprintf("block %s — reason: ", p.action.Tenant)
	case p.action.Block != nil:
		return fmt.Sprintf("unblock %s — reason: ", p.action.Tenant)
	default:
		return fmt.Sprintf("sample %s of %s — reason: ", p.action.Sample, p.action.Tenant)
	}
}

// selected is the selected row, if any.
func (m Model) selected() (Row, bool) {
	rows := m.visibleRows()
	if len(rows) == 0 {
		return Row{}, false
	}
	return rows[m.selectedIndex(rows)], true
}

// selectedIndex is where the selected tenant is in rows (the first row
// when it is not there, e.g. filtered out).
func (m Model) selectedIndex(rows []Row) int {
	for i, r := range rows {
		if r.Key == m.selKey {
			return i
		}
	}
	return 0
}

// canAct reports whether actions are on: the command gave an ActFunc and
// the view is by tenant.
func (m Model) canAct() bool { return m.opts.Act != nil && m.cfg.GroupBy == "tenant" }

// startAction opens the prompt for b or s on the selected tenant.
func (m Model) startAction(sample bool) (tea.Model, tea.Cmd) {
	r, ok := m.selected()
	if !ok || !m.canAct() {
		return m, nil
	}
	p := &prompt{action: Action{Tenant: r.Key}, sample: sample}
	if !sample {
		block := r.Policy == nil || !r.Policy.Blocked
		p.action.Block = &block
	}
	m.prompt, m.flash = p, ""
	return m, nil
}

// promptKey edits the prompt; enter on the reason runs the action.
func (m Model) promptKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	p := *m.prompt
	switch msg.String() {
	case "ctrl+c":
		return m, tea.Quit
	case "esc":
		m.prompt, m.flash = nil, "cancelled"
		return m, nil
	case "backspace":
		if p.input != "" {
			_, n := utf8.DecodeLastRuneInString(p.input)
			p.input = p.input[:len(p.input)-n]
		}
	case "enter":
		in := strings.TrimSpace(p.input)
		if in == "" {
			return m, nil // a share and a reason are required
		}
		if p.sample {
			p.action.Sample, p.sample, p.input = in, false, ""
			break
		}
		p.action.Reason = in
		m.prompt = nil
		m.flash = "applying…"
		act, ctx, a := m.opts.Act, m.opts.Ctx, p.action
		return m, func() tea.Msg {
			what, err := act(ctx, a)
			return actionMsg{tenant: a.Tenant, what: what, err: err}
		}
	default:
		if msg.Text != "" && utf8.RuneCountInString(p.input) < 200 {
			p.input += msg.Text
		}
	}
	m.prompt = &p
	return m, nil
}

// policyMarks are the live view's marks of a tenant's policy, before its
// name: ⛔ blocked, ↪ routed, ~N% sampled.
func policyMarks(r Row) string {
	p := r.Policy
	if p == nil {
		return ""
	}
	var b strings.Builder
	if p.Blocked {
		b.WriteString("⛔ ")
	}
	if len(p.Routes) > 0 {
		b.WriteString("↪ ")
	}
	if p.SampleBP > 0 {
		b.WriteString("~" + sampleShare(p.SampleBP) + " ")
	}
	return b.String()
}

// budgetMark is the share of the tenant's budget used, after its name:
// "62%/d" of the daily budget (else "/m" of the monthly one).
func budgetMark(r Row) string {
	if r.Policy == nil || r.BudgetPeriod == "" {
		return ""
	}
	return fmt.Sprintf(" %d%%/%s", r.BudgetPct, r.BudgetPeriod[:1])
}

// sampleShare writes basis points as a percentage: 100 → "1%".
func sampleShare(bp int64) string {
	s := fmt.Sprint(bp / 100)
	if f := bp % 100; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", f), "0")
	}
	return s + "%"
}

// budgetUse sets r's share of its budget: today's spend against the daily
// budget, else the month's against the monthly one.
func budgetUse(r *Row, today, month pricing.Amount) {
	p := r.Policy
	switch {
	case p == nil:
	case p.DailyBudget > 0:
		r.BudgetPct, r.BudgetPeriod = pctOf(today, p.DailyBudget), "daily"
	case p.MonthlyBudget > 0:
		r.BudgetPct, r.BudgetPeriod = pctOf(month, p.MonthlyBudget), "monthly"
	}
}

// pctOf is spend as a whole percentage of budget, rounded down.
func pctOf(spend pricing.Amount, budget pricing.Money) int64 {
	b := pricing.AmountFromMoney(budget)
	if b.Sign() <= 0 {
		return 0
	}
	return int64(spend.Float64() / b.Float64() * 100)
}
