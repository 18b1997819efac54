package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder is the one write a ledger store offers: events and judge
// verdicts in one transaction, each event skipped when its key is already
// stored (InsertResult says which). *DB implements it; so will any other
// store.
type Recorder interface {
	Record(ctx context.Context, events []Event, judges []JudgeResult) (InsertResult, error)
}

// WriterConfig tunes a Writer.
type WriterConfig struct {
	// RetryBusy is how long a write is retried while another process holds
	// the ledger's write lock (0: 2 minutes; negative: not retried).
	RetryBusy time.Duration
	// MaxGroup bounds the requests merged into one transaction (0: 256).
	MaxGroup int
	// Queue is how many requests may wait for the writer before Write and
	// Go block (0: 64): the back-pressure that bounds what a fast producer
	// holds in memory.
	Queue int
	// Workers is how many transactions may be in flight at once (default
	// 1). A PostgreSQL ledger takes two: one server process copies a batch
	// while another commits the one before; SQLite has one writer anyway.
	Workers int
}

// Writer is the one goroutine that writes a process's events to a ledger,
// shared by eval, ingest and the proxy: requests are written in the order
// they arrive; requests that arrive while a transaction is open are merged
// into the next one (group commit), so many small writers cost few
// transactions; a busy ledger (another process writing) is retried with
// jittered, doubling pauses; any other error is retried twice. Write
// returns when the events are committed (durable as the store promises), so
// a caller that waits loses at most what is in flight when it is killed.
type Writer struct {
	rec      Recorder
	cfg      WriterConfig
	reqs     chan *writeReq
	done     chan struct{}
	failed   atomic.Bool
	closeOne sync.Once
}

type writeReq struct {
	ctx    context.Context
	events []Event
	judges []JudgeResult
	done   func(InsertResult, error)
}

// NewWriter starts a writer for rec. Close stops it.
func NewWriter(rec Recorder, cfg WriterConfig) *Writer {
	if cfg.RetryBusy == 0 {
		cfg.RetryBusy = 2 * time.Minute
	}
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 256
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	w := &Writer{rec: rec, cfg: cfg, reqs: make(chan *writeReq, cfg.Queue), done: make(chan struct{})}
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop()
		}()
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// Write writes events and verdicts and waits until they are committed. The
// result's Skipped indexes are into events. The write is not cut short by
// ctx's cancellation (what was paid for is recorded); ctx is passed to the
// store for its values.
func (w *Writer) Write(ctx context.Context, events []Event, judges []JudgeResult) (InsertResult, error) {
	ch := make(chan struct{})
	var res InsertResult
	var err error
	w.Go(ctx, events, judges, func(r InsertResult, e error) {
		res, err = r, e
		close(ch)
	})
	<-ch
	return res, err
}

// Go queues events and verdicts without waiting; done (if not nil) is
// called on the writer's goroutine when they are committed or have failed,
// in the order the requests were queued. It blocks only while the queue is
// full.
func (w *Writer) Go(ctx context.Context, events []Event, judges []JudgeResult, done func(InsertResult, error)) {
	if len(events) == 0 && len(judges) == 0 {
		if done != nil {
			done(InsertResult{}, nil)
		}
		return
	}
	w.reqs <- &writeReq{ctx: context.WithoutCancel(ctx), events: events, judges: judges, done: done}
}

// Close writes what is queued, waits for it and stops the writer. Nothing
// may be queued after Close.
func (w *Writer) Close() {
	w.closeOne.Do(func() { close(w.reqs) })
	<-w.done
}

func (w *Writer) loop() {
	for r := range w.reqs {
		group := []*writeReq{r}
	drain:
		for len(group) < w.cfg.MaxGroup {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		w.write(group)
	}
}

// write commits one group and tells each request its part of the result.
func (w *Writer) write(group []*writeReq) {
	events, judges := group[0].events, group[0].judges
	if len(group) > 1 {
		events, judges = nil, nil
		for _, r := range group {
			events = append(events, r.events...)
			judges = append(judges, r.judges...)
		}
	}
	var res InsertResult
	limit := w.cfg.RetryBusy
	if w.failed.Load() {
		limit = -1
	}
	err := RetryBusy(limit, func(n int) (bool, error) {
		var err error
		res, err = w.rec.Record(group[0].ctx, events, judges)
		// Anything but a busy ledger is retried twice, unless a write
		// has already failed for good: then later groups get one try.
		return err != nil && n < 2 && limit >= 0, err
	})
	if err != nil {
		w.failed.Store(true)
	}
	// Split the result among the requests: Skipped indexes are into the
	// merged events, in order.
	off, s := 0, 0
	for _, r := range group {
		var part InsertResult
		end := off + len(r.events)
		for s < len(res.Skipped) && res.Skipped[s] < end {
			part.Skipped = append(part.Skipped, res.Skipped[s]-off)
			s++
		}
		if err == nil {
			part.Duplicates = len(part.Skipped)
			part.Inserted = len(r.events) - part.Duplicates
		}
		off = end
		if r.done != nil {
			r.done(part, err)
		}
	}
}

// RetryBusy runs op until it succeeds, fails with an error that is not
// worth retrying, or the ledger has stayed busy (IsBusy: another process
// holds its write lock) for limit: waiting with jittered, doubling pauses
// (10 ms to 1 s) lets every writer through in turn. op is given the attempt
// number (0, 1, ...) and says whether a non-busy error should be retried
// too. A negative limit does not retry a busy ledger.
func RetryBusy(limit time.Duration, op func(attempt int) (retry bool, err error)) error {
	start := time.Now()
	pause := 10 * time.Millisecond
	for n := 0; ; n++ {
		retry, err := op(n)
		if err == nil {
			return nil
		}
		busy := IsBusy(err)
		if !busy && !retry {
			return err
		}
		if busy {
			if limit < 0 {
				return err
			}
			if waited := time.Since(start); waited >= limit {
				return fmt.Errorf("%w (another writer held the ledger for %s; try again when it is done)", err, waited.Round(time.Second))
			}
		}
		time.Sleep(pause/2 + rand.N(pause))
		pause = min(2*pause, time.Second)
	}
}
