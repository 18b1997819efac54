// Package alerts posts costctl's alerts to a webhook: a tenant crossing
// 50/80/100% of a budget, blocked or unblocked, or spending far above its
// baseline. The body is JSON with a Slack-compatible "text" (a Slack or
// Mattermost incoming webhook shows it as is) and the same facts as
// structured fields for anything else:
//
//	{"version":1,"text":"costctl: tenant acme has spent $41.00, past 80% of its daily budget of $50.00",
//	 "tenant":"acme","kind":"budget_80","period":"daily","budget":"50.00","spend":"41.00",
//	 "at":"2026-11-20T14:30:20Z"}
//
// Notify never blocks its caller (the proxy's request path): alerts go to
// a bounded queue that one goroutine delivers, each POST tried up to three
// times with backoff. At most one alert per tenant, kind and budget period
// is delivered per UTC day; one that could not be delivered (or did not
// fit the queue) does not count, so the next Notify of it tries again.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Kinds of alert.
const (
	KindBudget50  = "budget_50"
	KindBudget80  = "budget_80"
	KindBudget100 = "budget_100"
	KindBlocked   = "blocked"
	KindUnblocked = "unblocked"
	KindSpike     = "spike"
	// KindSemanticOff: the proxy switched a tenant's semantic cache off
	// (its measured precision fell below its minimum).
	KindSemanticOff = "semantic_off"
)

// Budget periods.
const (
	PeriodDaily   = "daily"
	PeriodMonthly = "monthly"
)

// Alert is one thing to tell a person.
type Alert struct {
	Tenant string
	Kind   string // one of the Kind constants
	Period string // budget kinds: PeriodDaily or PeriodMonthly
	Budget pricing.Money
	// Spend is the tenant's spend in the budget's period, or in the spike's
	// window.
	Spend pricing.Amount
	// Spike: the spend expected in Window (the baseline) and the window.
	Baseline pricing.Amount
	Window   time.Duration
	// Blocked and unblocked: who changed the policy and why.
	Who, Reason string
	At          time.Time // zero: now
	Text        string    // "" = written from the fields above
}

// QueueSize is how many alerts may wait for delivery; Notify drops (and
// counts) alerts beyond it rather than wait.
const QueueSize = 256

// Tries is how many times a POST is tried.
const Tries = 3

// Stats count what a Notifier did.
type Stats struct {
	Sent       int64 // delivered (2xx)
	Failed     int64 // not delivered after every try
	Dropped    int64 // the queue was full, or the Notifier closed
	Suppressed int64 // already sent today
}

// Notifier delivers alerts to one webhook. The zero value is not usable:
// use New.
type Notifier struct {
	url     string
	client  *http.Client
	now     func() time.Time
	backoff []time.Duration // wait before try 2, 3, …
	timeout time.Duration   // per try

	mu        sync.Mutex
	day       string            // the UTC day sent is about
	sent      map[dedupKey]bool // queued or delivered today
	closed    bool
	onFailure func(Alert, error)

	queue  chan job
	done   chan struct{}
	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	sentN, failedN, droppedN, suppressedN atomic.Int64
}

type dedupKey struct{ tenant, kind, period string }

type job struct {
	a   Alert
	key dedupKey
	day string
}

// New returns a Notifier posting to url with client (nil: a client of
// its own), reading the time from now (nil: time.Now). An empty url is a
// Notifier that sends nothing, so a caller without --webhook needs no
// special case. Close it to deliver what is queued.
func New(url string, client *http.Client, now func() time.Time) *Notifier {
	return newNotifier(url, client, now, []time.Duration{time.Second, 4 * time.Second})
}

func newNotifier(url string, client *http.Client, now func() time.Time, backoff []time.Duration) *Notifier {
	if client == nil {
		client = &http.Client{}
	}
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{url: url, client: client, now: now, backoff: backoff, timeout: 10 * time.Second,
		sent: map[dedupKey]bool{}, queue: make(chan job, QueueSize), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	if url == "" {
		n.closed = true
		close(n.done)
		return n
	}
	go n.run()
	return n
}

// OnFailure sets f to be called (from the delivering goroutine) with each
// alert that could not be delivered and why. The error never holds the
// webhook URL, which often carries a secret.
func (n *Notifier) OnFailure(f func(Alert, error)) {
	n.mu.Lock()
	n.onFailure = f
	n.mu.Unlock()
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{Sent: n.sentN.Load(), Failed: n.failedN.Load(), Dropped: n.droppedN.Load(), Suppressed: n.suppressedN.Load()}
}

// Notify queues a for delivery and returns at once. An alert of the same
// tenant, kind and period already queued or delivered this UTC day is
// suppressed.
func (n *Notifier) Notify(a Alert) {
	now := n.now().UTC()
	if a.At.IsZero() {
		a.At = now
	}
	day := now.Format(time.DateOnly)
	key := dedupKey{a.Tenant, a.Kind, a.Period}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		if n.url != "" {
			n.droppedN.Add(1)
		}
		return
	}
	if day != n.day {
		n.day = day
		clear(n.sent) // yesterday's alerts may be sent again
	}
	if n.sent[key] {
		n.suppressedN.Add(1)
		return
	}
	select {
	case n.queue <- job{a: a, key: key, day: day}:
		n.sent[key] = true
	default:
		n.droppedN.Add(1)
	}
}

// Close stops taking alerts and waits until the queued ones are delivered
// (or given up) or ctx is done; then it abandons the rest and returns
// ctx's error. It may be called more than once.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		n.cancel()
		<-n.done
		return ctx.Err()
	}
}

func (n *Notifier) run() {
	defer close(n.done)
	defer n.cancel()
	for j := range n.queue {
		err := n.deliver(j.a)
		if err == nil {
			n.sentN.Add(1)
			continue
		}
		n.failedN.Add(1)
		n.mu.Lock()
		if n.day == j.day {
			delete(n.sent, j.key) // not delivered: the next Notify tries again
		}
		f := n.onFailure
		n.mu.Unlock()
		if f != nil {
			f(j.a, err)
		}
	}
}

// deliver POSTs a, up to Tries times.
func (n *Notifier) deliver(a Alert) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the text is shown as written
	if err := enc.Encode(payloadOf(a)); err != nil {
		return err
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	var last error
	for try := 0; try < Tries; try++ {
		if try > 0 {
			wait := n.backoff[min(try-1, len(n.backoff)-1)]
			var se *statusError
			if errors.As(last, &se) && se.retryAfter > wait {
				wait = se.retryAfter
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-n.ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook: gave up on closing after %d tries: %w", try, last)
			}
		}
		var retry bool
		retry, last = n.post(body)
		if last == nil {
			return nil
		}
		if !retry {
			return last
		}
	}
	return fmt.Errorf("webhook: %d tries: %w", Tries, last)
}

// statusError is a webhook's refusal.
type statusError struct {
	code       int
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("webhook answered %d %s", e.code, http.StatusText(e.code))
}

// maxRetryAfter bounds how long a webhook's Retry-After may hold the queue.
const maxRetryAfter = 30 * time.Second

// post is one try; retry says whether another may succeed.
func (n *Notifier) post(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("webhook: invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "costctl-alerts")
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return n.ctx.Err() == nil, fmt.Errorf("webhook POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drained so the connection is reused; only the status matters
	resp.Body.Close()                                             // read (drained) above: a close error loses nothing
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	se := &statusError{code: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.retryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout, se
}

// payload is the JSON body.
type payload struct {
	Version  int     `json:"version"`
	Text     string  `json:"text"`
	Tenant   string  `json:"tenant"`
	Kind     string  `json:"kind"`
	Period   string  `json:"period,omitempty"`
	Budget   *string `json:"budget"` // null: none
	Spend    string  `json:"spend"`
	Baseline string  `json:"baseline,omitempty"`
	Who      string  `json:"who,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	At       string  `json:"at"`
}

func payloadOf(a Alert) payload {
	p := payload{Version: 1, Text: a.Text, Tenant: a.Tenant, Kind: a.Kind, Period: a.Period, Spend: a.Spend.String(),
		Who: a.Who, Reason: a.Reason, At: a.At.UTC().Format(time.RFC3339)}
	if p.Text == "" {
		p.Text = Text(a)
	}
	if a.Budget != 0 {
		b := a.Budget.String()
		p.Budget = &b
	}
	if a.Kind == KindSpike {
		p.Baseline = a.Baseline.String()
	}
	return p
}

// money is an amount for a person: cents, or exact below a cent.
func money(a pricing.Amount) string {
	if a.Sign() != 0 && a.Cmp(pricing.AmountFromPico(10_000_000_000)) < 0 {
		return a.Display()
	}
	return a.DisplayRounded(2)
}

// resetAt is when a budget of period starts again after at (UTC).
func resetAt(period string, at time.Time) (time.Time, bool) {
	at = at.UTC()
	switch period {
	case PeriodDaily:
		return time.Date(at.Year(), at.Month(), at.Day()+1, 0, 0, 0, 0, time.UTC), true
	case PeriodMonthly:
		return time.Date(at.Year(), at.Month()+1, 1, 0, 0, 0, 0, time.UTC), true
	}
	return time.Time{}, false
}

// Text is the message written for a: one line, for a person.
func Text(a Alert) string {
	period := a.Period
	if period == "" {
		period = "the"
	}
	budget := money(pricing.AmountFromMoney(a.Budget))
	by := ""
	if a.Who != "" {
		by = " by " + a.Who
	}
	if a.Reason != "" {
		by += ": " + a.Reason
	}
	switch a.Kind {
	case KindBudget50, KindBudget80:
		pct := map[string]string{KindBudget50: "50%", KindBudget80: "80%"}[a.Kind]
		return fmt.Sprintf("costctl: tenant %s has spent %s, past %s of its %s budget of %s", a.Tenant, money(a.Spend), pct, period, budget)
	case KindBudget100:
		s := fmt.Sprintf("costctl: tenant %s reached its %s budget of %s (spent %s)", a.Tenant, period, budget, money(a.Spend))
		if r, ok := resetAt(a.Period, a.At); ok {
			s += "; calls are refused until " + r.Format("2006-01-02 15:04") + " UTC"
		}
		return s
	case KindBlocked:
		return fmt.Sprintf("costctl: tenant %s was blocked%s; its calls are refused", a.Tenant, by)
	case KindUnblocked:
		return fmt.Sprintf("costctl: tenant %s was unblocked%s", a.Tenant, by)
	case KindSemanticOff:
		return fmt.Sprintf("costctl: tenant %s: semantic cache switched off%s", a.Tenant, by)
	case KindSpike:
		s := fmt.Sprintf("costctl: tenant %s spent %s", a.Tenant, money(a.Spend))
		if a.Window > 0 {
			s += " in the last " + window(a.Window)
		}
		if a.Baseline.Sign() > 0 {
			r := new(big.Rat).Quo(a.Spend.Rat(), a.Baseline.Rat())
			s += fmt.Sprintf(", %s× its baseline of %s", r.FloatString(1), money(a.Baseline))
		}
		return s
	}
	return fmt.Sprintf("costctl: tenant %s: %s", a.Tenant, a.Kind)
}

// window is a duration for a person: "5 minutes", "1 hour", "90 seconds".
func window(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	default:
		return unit(int64(d.Round(time.Second)/time.Second), "second")
	}
}
