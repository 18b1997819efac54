package evaluator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Store is what a run needs from the ledger, nothing more. *ledger.DB
// implements it.
type Store interface {
	GetJudge(ctx context.Context, key string) (ledger.JudgeResult, bool, error)
	// Record writes events and verdicts in one transaction.
	Record(ctx context.Context, events []ledger.Event, judges []ledger.JudgeResult) (ledger.InsertResult, error)
	StartRun(ctx context.Context, id, source string, at time.Time, detail string) error
	FinishRun(ctx context.Context, id, status string, at time.Time) error
}

// committer is the run's side of the ledger's shared writer
// (ledger.Writer): workers hand it each paid call as soon as the server
// answers and wait until it is committed, so a kill -9 loses at most the
// calls in flight; calls that arrive while a transaction is open are
// written together in the next one (group commit). It counts the paid
// calls that could not be written and reports the first failure.
type committer struct {
	w          *ledger.Writer // nil: no ledger (nothing is written)
	failed     atomic.Bool
	unrecorded atomic.Int64 // paid calls that could not be written
	onFail     func(error)  // the first persistent failure
}

func newCommitter(store Store, retryFor time.Duration, onFail func(error)) *committer {
	c := &committer{onFail: onFail}
	if store != nil {
		c.w = ledger.NewWriter(store, ledger.WriterConfig{RetryBusy: retryFor})
	}
	return c
}

// done is called with the outcome of each write.
func (c *committer) done(events []ledger.Event, err error) {
	if err == nil {
		return
	}
	for _, ev := range events {
		if !ev.CacheHit {
			c.unrecorded.Add(1)
		}
	}
	if c.failed.CompareAndSwap(false, true) && c.onFail != nil {
		c.onFail(err)
	}
}

// commit writes events and verdicts and waits until they are durable.
func (c *committer) commit(events []ledger.Event, judges []ledger.JudgeResult) error {
	if c.w == nil {
		return nil
	}
	_, err := c.w.Write(context.Background(), events, judges)
	c.done(events, err)
	return err
}

// commitAsync queues events that cost nothing (cache hits) without waiting.
func (c *committer) commitAsync(events []ledger.Event) {
	if c.w == nil || len(events) == 0 {
		return
	}
	c.w.Go(context.Background(), events, nil, func(_ ledger.InsertResult, err error) { c.done(events, err) })
}

// close writes what is queued and stops the writer.
func (c *committer) close() {
	if c.w != nil {
		c.w.Close()
	}
}

// flight is one judge request in progress (or finished) in this run:
// identical requests (the same cache key) wait for it instead of paying again.
type flight struct {
	done chan struct{}
	res  flightResult
}

type flightResult struct {
	ok      bool // a verdict
	score   float64
	reason  string
	usage   pricing.Usage // what the verdict cost, for the avoided figure
	errMsg  string        // an error row's message
	aborted bool          // the run stopped before an answer: ask again
}

// flights dedupes judge requests within a run. With keep (--no-cache,
// --refresh: the ledger cache is not read) finished answers stay in memory
// so later duplicates reuse them; otherwise they are dropped once committed,
// and the ledger cache serves later duplicates.
type flights struct {
	mu   sync.Mutex
	m    map[string]*flight
	keep bool
}

// join returns the flight for key and whether the caller leads it (must
// resolve it with finish).
func (f *flights) join(key string) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl, false
	}
	fl := &flight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

func (f *flights) finish(key string, fl *flight, res flightResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.res = res
	close(fl.done)
	if !f.keep || res.aborted {
		delete(f.m, key)
	}
}

// errStopped is returned to a worker waiting for the budget or another
// worker's answer when the run stops for another reason.
var errStopped = errors.New("run stopped")

// SharedBudget is a budget that several processes hold against at once
// (eval --shard with --max-cost: the ledger's budget holds). Reserve
// returns a hold id, or "" when the amount does not fit, and whether
// other calls held part of the budget when it was decided (their
// settlement may make room); Release ends the hold with what the call cost.
type SharedBudget interface {
	Reserve(ctx context.Context, amount pricing.Money) (id string, othersHold bool, err error)
	Release(ctx context.Context, id string, spent pricing.Money) error
}

// budget reserves each call's worst case so that spent plus reserved never
// exceeds the cap, whatever the concurrency. A reservation that does not fit
// waits while calls are in flight (their settlement frees the difference
// between worst case and actual cost); the cap stops the run only when
// nothing is in flight and the next call still does not fit, so a capped
// run ends within one call's worst case of the cap. With a shared budget
// the check is the shared one (every process's spend and holds); the
// waiting is the same, for this process's own calls in flight.
type budget struct {
	mu       sync.Mutex
	cap      pricing.Money // 0: no cap
	spent    pricing.Money
	reserved pricing.Money
	inflight int
	changed  chan struct{} // closed (and replaced) at every settle
	shared   SharedBudget  // nil: the cap is checked here
}

func newBudget(limit pricing.Money, shared SharedBudget) *budget {
	return &budget{cap: limit, changed: make(chan struct{}), shared: shared}
}

// hold is one reservation: its amount and, with a shared budget, its id.
type hold struct {
	amount pricing.Money
	id     string
}

func (b *budget) reserve(ctx context.Context, stop <-chan struct{}, x pricing.Money) (hold, error) {
	for {
		b.mu.Lock()
		ch, inflight := b.changed, b.inflight
		fits := b.shared == nil && (b.cap <= 0 || b.spent+b.reserved+x <= b.cap)
		if fits {
			b.reserved += x
			b.inflight++
			b.mu.Unlock()
			return hold{amount: x}, nil
		}
		b.mu.Unlock()
		if b.shared != nil {
			id, othersHold, err := b.shared.Reserve(context.WithoutCancel(ctx), x)
			if err != nil {
				return hold{}, &FatalError{Msg: fmt.Sprintf("the shared budget cannot be read: %v", err), Err: err}
			}
			if id != "" {
				b.mu.Lock()
				b.reserved += x
				b.inflight++
				b.mu.Unlock()
				return hold{amount: x, id: id}, nil
			}
			if inflight == 0 && othersHold {
				// Another process's calls hold the room this one needs:
				// their settlement may free it. Ask again shortly.
				if err := pause(ctx, stop, sharedPoll); err != nil {
					return hold{}, err
				}
				continue
			}
		}
		if inflight == 0 {
			return hold{}, errBudget
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return hold{}, ctx.Err()
		case <-stop:
			return hold{}, errStopped
		}
	}
}

// settle ends a reservation with what the call actually cost. A shared
// hold that cannot be released is an error: the run must stop, since the
// shared spend would otherwise go uncounted once the hold expires.
func (b *budget) settle(h hold, actual pricing.Money) error {
	b.mu.Lock()
	b.reserved -= h.amount
	b.spent += actual
	b.inflight--
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	if h.id == "" {
		return nil
	}
	if err := b.shared.Release(context.Background(), h.id, actual); err != nil {
		return &FatalError{Msg: fmt.Sprintf("the shared budget cannot be written: %v", err), Err: err}
	}
	return nil
}

// sharedPoll is how often a process whose shared budget is held by other
// processes' calls asks again.
const sharedPoll = 100 * time.Millisecond

// pause waits d, or until ctx ends or the run stops.
func pause(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return errStopped
	}
}
