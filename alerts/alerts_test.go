package alerts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

var t0 = time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)

// hook is a webhook on loopback that records bodies and answers with
// the next status of codes (200 once they run out).
type hook struct {
	mu       sync.Mutex
	bodies   []string
	headers  []http.Header
	codes    []int
	received chan struct{}
	block    chan struct{} // when set, the handler waits on it (or the request's end)
	srv      *httptest.Server
}

func newHook(t *testing.T, codes ...int) *hook {
	h := &hook{codes: codes, received: make(chan struct{}, 10_000)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.headers = append(h.headers, r.Header.Clone())
		code := 200
		if len(h.codes) > 0 {
			code, h.codes = h.codes[0], h.codes[1:]
		}
		block := h.block
		h.mu.Unlock()
		h.received <- struct{}{}
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func testNotifier(h *hook, c *clock) *Notifier {
	return newNotifier(h.srv.URL+"/hook/secret-token", h.srv.Client(), c.Now, []time.Duration{0})
}

func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The body of each kind, exactly.
func TestAlertJSON(t *testing.T) {
	for _, tc := range []struct {
		a    Alert
		want string
	}{
		{Alert{Tenant: "acme", Kind: KindBudget80, Period: PeriodDaily, Budget: pricing.Dollars(50), Spend: pricing.Amount{Dollars: 41}},
			`{"version":1,"text":"costctl: tenant acme has spent $41.00, past 80% of its daily budget of $50.00","tenant":"acme","kind":"budget_80","period":"daily","budget":"50.00","spend":"41.00","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindBudget50, Period: PeriodMonthly, Budget: pricing.Money(1_000_000_000_001), Spend: pricing.Amount{Dollars: 500, Pico: 1}},
			`{"version":1,"text":"costctl: tenant acme has spent $500.00, past 50% of its monthly budget of $1,000.00","tenant":"acme","kind":"budget_50","period":"monthly","budget":"1000.000000001","spend":"500.000000000001","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindBudget100, Period: PeriodMonthly, Budget: pricing.Dollars(1000), Spend: pricing.Amount{Dollars: 1000}, At: t0.Add(-time.Hour)},
			`{"version":1,"text":"costctl: tenant acme reached its monthly budget of $1,000.00 (spent $1,000.00); calls are refused until 2026-12-01 00:00 UTC","tenant":"acme","kind":"budget_100","period":"monthly","budget":"1000.00","spend":"1000.00","at":"2026-11-20T13:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindBlocked, Who: "alice", Reason: "cost spike"},
			`{"version":1,"text":"costctl: tenant acme was blocked by alice: cost spike; its calls are refused","tenant":"acme","kind":"blocked","budget":null,"spend":"0.00","who":"alice","reason":"cost spike","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindSemanticOff, Who: "costctl proxy", Reason: "measured precision 90.0% < 98.0% over 20 verified hits"},
			`{"version":1,"text":"costctl: tenant acme: semantic cache switched off by costctl proxy: measured precision 90.0% < 98.0% over 20 verified hits","tenant":"acme","kind":"semantic_off","budget":null,"spend":"0.00","who":"costctl proxy","reason":"measured precision 90.0% < 98.0% over 20 verified hits","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindUnblocked},
			`{"version":1,"text":"costctl: tenant acme was unblocked","tenant":"acme","kind":"unblocked","budget":null,"spend":"0.00","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindSpike, Spend: pricing.Amount{Dollars: 12}, Baseline: pricing.Amount{Dollars: 2}, Window: 5 * time.Minute},
			`{"version":1,"text":"costctl: tenant acme spent $12.00 in the last 5 minutes, 6.0× its baseline of $2.00","tenant":"acme","kind":"spike","budget":null,"spend":"12.00","baseline":"2.00","at":"2026-11-20T14:30:20Z"}`},
		{Alert{Tenant: "acme", Kind: KindSpike, Spend: pricing.AmountFromPico(4_000_000_000), Text: "custom <text> & more"},
			`{"version":1,"text":"custom <text> & more","tenant":"acme","kind":"spike","budget":null,"spend":"0.004","baseline":"0.00","at":"2026-11-20T14:30:20Z"}`},
	} {
		t.Run(tc.a.Kind, func(t *testing.T) {
			h := newHook(t)
			n := testNotifier(h, &clock{now: t0})
			n.Notify(tc.a)
			closeNow(t, n)
			got := h.got()
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("body\n%q\nwant\n%q", got, tc.want)
			}
			if ct := h.headers[0].Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}

// One alert per tenant, kind and period per UTC day.
func TestAlertDedup(t *testing.T) {
	h := newHook(t)
	c := &clock{now: t0}
	n := testNotifier(h, c)
	budget := func(tenant, kind, period string) Alert {
		return Alert{Tenant: tenant, Kind: kind, Period: period, Budget: pricing.Dollars(10), Spend: pricing.Amount{Dollars: 9}}
	}
	n.Notify(budget("acme", KindBudget80, PeriodDaily))
	n.Notify(budget("acme", KindBudget80, PeriodDaily))   // suppressed
	n.Notify(budget("acme", KindBudget80, PeriodMonthly)) // another period
	n.Notify(budget("acme", KindBudget100, PeriodDaily))  // another kind
	n.Notify(budget("globex", KindBudget80, PeriodDaily)) // another tenant
	c.set(t0.Add(9 * time.Hour))                          // 23:30 UTC, the same day
	n.Notify(budget("acme", KindBudget80, PeriodDaily))   // suppressed
	c.set(t0.Add(10 * time.Hour))                         // 00:30 UTC the next day
	n.Notify(budget("acme", KindBudget80, PeriodDaily))   // a new day
	n.Notify(budget("acme", KindBudget80, PeriodDaily))   // suppressed
	closeNow(t, n)
	var got []string
	for _, b := range h.got() {
		i := strings.Index(b, `"tenant"`)
		got = append(got, b[i:strings.Index(b, `,"budget"`)]+b[strings.Index(b, `"at"`):len(b)-1])
	}
	want := []string{
		`"tenant":"acme","kind":"budget_80","period":"daily""at":"2026-11-20T14:30:20Z"`,
		`"tenant":"acme","kind":"budget_80","period":"monthly""at":"2026-11-20T14:30:20Z"`,
		`"tenant":"acme","kind":"budget_100","period":"daily""at":"2026-11-20T14:30:20Z"`,
		`"tenant":"globex","kind":"budget_80","period":"daily""at":"2026-11-20T14:30:20Z"`,
		`"tenant":"acme","kind":"budget_80","period":"daily""at":"2026-11-21T00:30:20Z"`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := n.Stats(); s != (Stats{Sent: 5, Suppressed: 3}) {
		t.Fatalf("stats %+v", s)
	}
}

// A 500 is tried again; after three failures the alert is given up (with
// an error that does not hold the URL) and may be sent again.
func TestAlertRetry(t *testing.T) {
	h := newHook(t, 500, 200, 500, 503, 502, 200)
	n := testNotifier(h, &clock{now: t0})
	var failures []string
	n.OnFailure(func(a Alert, err error) { failures = append(failures, a.Kind+": "+err.Error()) })
	n.Notify(Alert{Tenant: "acme", Kind: KindBlocked}) // 500, then 200
	n.Notify(Alert{Tenant: "acme", Kind: KindSpike})   // 500, 503, 502: given up
	n.Notify(Alert{Tenant: "acme", Kind: KindSpike})   // suppressed while queued
	closeNow(t, n)
	if len(h.got()) != 5 {
		t.Fatalf("%d POSTs, want 5", len(h.got()))
	}
	if want := []string{"spike: webhook: 3 tries: webhook answered 502 Bad Gateway"}; fmt.Sprint(failures) != fmt.Sprint(want) {
		t.Fatalf("failures %q, want %q", failures, want)
	}
	if s := n.Stats(); s != (Stats{Sent: 1, Failed: 1, Suppressed: 1}) {
		t.Fatalf("stats %+v", s)
	}

	// Not delivered, so not deduplicated: a later Notify sends it.
	h2 := newHook(t, 500, 500, 500)
	n2 := testNotifier(h2, &clock{now: t0})
	failed := make(chan struct{}, 1)
	n2.OnFailure(func(Alert, error) { failed <- struct{}{} })
	n2.Notify(Alert{Tenant: "acme", Kind: KindSpike})
	<-failed
	n2.Notify(Alert{Tenant: "acme", Kind: KindSpike})
	closeNow(t, n2)
	if got := len(h2.got()); got != 4 || n2.Stats() != (Stats{Sent: 1, Failed: 1}) {
		t.Fatalf("%d POSTs, stats %+v", got, n2.Stats())
	}

	// A 4xx other than 408/429 is not tried again; a network error is,
	// and its message has no URL.
	h3 := newHook(t, 404)
	n3 := testNotifier(h3, &clock{now: t0})
	var err3 error
	n3.OnFailure(func(a Alert, err error) { err3 = err })
	n3.Notify(Alert{Tenant: "acme", Kind: KindSpike})
	closeNow(t, n3)
	if len(h3.got()) != 1 || fmt.Sprint(err3) != "webhook answered 404 Not Found" {
		t.Fatalf("404: %d POSTs, %v", len(h3.got()), err3)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/hook/secret-token"
	dead.Close()
	n4 := newNotifier(url, nil, (&clock{now: t0}).Now, []time.Duration{0})
	var err4 error
	n4.OnFailure(func(a Alert, err error) { err4 = err })
	n4.Notify(Alert{Tenant: "acme", Kind: KindSpike})
	closeNow(t, n4)
	if err4 == nil || strings.Contains(err4.Error(), "secret-token") || !strings.HasPrefix(err4.Error(), "webhook: 3 tries: webhook POST: ") {
		t.Fatalf("network error: %v", err4)
	}
}

// Notify never waits: with the webhook stuck, alerts beyond the queue are
// dropped (and counted), and Close with a deadline abandons them.
func TestAlertNeverBlocks(t *testing.T) {
	h := newHook(t)
	h.block = make(chan struct{})
	n := testNotifier(h, &clock{now: t0})
	n.Notify(Alert{Tenant: "t0", Kind: KindSpike})
	<-h.received // the worker is stuck in this POST
	const more = 1000
	for i := 1; i <= more; i++ {
		n.Notify(Alert{Tenant: fmt.Sprint("t", i), Kind: KindSpike})
	}
	if s := n.Stats(); s.Dropped != more-QueueSize {
		t.Fatalf("dropped %d, want %d", s.Dropped, more-QueueSize)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
	close(h.block)
	s := n.Stats()
	if s.Sent != 0 || s.Failed != QueueSize+1 || s.Dropped != more-QueueSize {
		t.Fatalf("after Close: %+v", s)
	}
	n.Notify(Alert{Tenant: "late", Kind: KindSpike}) // after Close: dropped, no panic
	if n.Stats().Dropped != more-QueueSize+1 {
		t.Fatalf("late alert not dropped: %+v", n.Stats())
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Close drains: every queued alert is delivered before it returns.
func TestAlertCloseDrains(t *testing.T) {
	h := newHook(t)
	n := testNotifier(h, &clock{now: t0})
	for i := range 50 {
		n.Notify(Alert{Tenant: fmt.Sprint("t", i), Kind: KindBudget50, Period: PeriodDaily, Budget: pricing.Dollars(1)})
	}
	closeNow(t, n)
	if got := len(h.got()); got != 50 || n.Stats().Sent != 50 {
		t.Fatalf("%d delivered, stats %+v", got, n.Stats())
	}
}

// Without a URL nothing is sent and nothing waits.
func TestAlertNoURL(t *testing.T) {
	n := New("", nil, nil)
	n.Notify(Alert{Tenant: "acme", Kind: KindBlocked})
	if err := n.Close(context.Background()); err != nil || n.Stats() != (Stats{}) {
		t.Fatalf("%v %+v", err, n.Stats())
	}
}

func TestAlertWindowText(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1 minute", 5 * time.Minute: "5 minutes", time.Hour: "1 hour", 90 * time.Second: "90 seconds"} {
		if got := window(d); got != want {
			t.Errorf("window(%v) = %q, want %q", d, got, want)
		}
	}
}
