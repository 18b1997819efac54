package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Config is what an Ingester needs besides the ledger.
type Config struct {
	Table    *pricing.Table
	Defaults Defaults
	Now      func() time.Time // for lines without a timestamp
	// BatchSize is how many events go into one ledger transaction
	// (default 20000).
	BatchSize int
	// PollInterval is how often Follow checks a file for growth,
	// truncation and rotation (default 250ms).
	PollInterval time.Duration
	// BadLine receives each bad line as "FILE:LINE: reason" (nil: dropped).
	// At most MaxBadReports are reported; all are counted.
	BadLine func(string)
	// Flushed, when set, is called after each batch is committed.
	Flushed func(Stats)
}

// MaxBadReports caps how many bad lines are reported one by one.
const MaxBadReports = 100

// MaxLineBytes is the longest line accepted (longer ones are bad lines).
const MaxLineBytes = 64 << 20

// Stats count what an ingest did.
type Stats struct {
	Lines          int64
	Ingested       int64
	Duplicates     int64
	Bad            int64
	Cost           pricing.Money    // of the ingested (new, priced) events
	Unpriced       int64            // ingested events whose model has no price
	UnpricedModels map[string]int64 // model → events
}

// UnpricedList is the unpriced models, most events first.
func (s Stats) UnpricedList() []string {
	var names []string
	for m := range s.UnpricedModels {
		names = append(names, m)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := s.UnpricedModels[names[i]], s.UnpricedModels[names[j]]
		if a != b {
			return a > b
		}
		return names[i] < names[j]
	})
	return names
}

// Ingester prices events and writes them to the ledger in batches. It is
// safe for concurrent use by several readers (one per followed file); the
// writes are serialised.
type Ingester struct {
	db  *ledger.DB
	cfg Config

	mu       sync.Mutex // guards the batch being filled
	batch    []ledger.Event
	pending  map[string]int64          // unpriced models in the batch
	models   map[string]*pricing.Model // lookup cache; nil value = unpriced
	inflight chan struct{}             // closed when the batch being written is committed
	lines    int64
	bad      int64

	smu   sync.Mutex // guards what the writer updates
	stats Stats
	werr  error
}

// New returns an Ingester writing to db.
func New(db *ledger.DB, cfg Config) *Ingester {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 20000
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ingester{db: db, cfg: cfg, models: map[string]*pricing.Model{},
		pending: map[string]int64{}, stats: Stats{UnpricedModels: map[string]int64{}}}
}

// Stats returns the counts so far (committed events only).
func (in *Ingester) Stats() Stats {
	in.mu.Lock()
	lines, bad := in.lines, in.bad
	in.mu.Unlock()
	in.smu.Lock()
	defer in.smu.Unlock()
	s := in.stats
	s.Lines, s.Bad = lines, bad
	s.UnpricedModels = make(map[string]int64, len(in.stats.UnpricedModels))
	for k, v := range in.stats.UnpricedModels {
		s.UnpricedModels[k] = v
	}
	return s
}

func (in *Ingester) price(e *ledger.Event) {
	m, ok := in.models[e.Model]
	if !ok {
		var err error
		m, err = in.cfg.Table.Lookup(e.Model)
		if err != nil {
			m = nil
		}
		in.models[e.Model] = m
	}
	if m == nil {
		e.Unpriced = true
		return
	}
	e.Cost = m.Cost(pricing.Usage{InputTokens: e.InputTokens, CachedInputTokens: e.CachedTokens, OutputTokens: e.OutputTokens}, false)
}

// handle parses, prices and queues one line; a full batch is written.
func (in *Ingester) handle(ctx context.Context, name string, lineNo int64, b []byte) error {
	b = bytes.TrimSpace(b)
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(b) == 0 {
		return nil
	}
	in.lines++
	var e ledger.Event
	var err error
	if len(b) > MaxLineBytes {
		err = fmt.Errorf("line longer than %d MiB", MaxLineBytes>>20)
	} else {
		e, err = parseLine(b, in.cfg.Defaults, in.cfg.Now())
	}
	if err != nil {
		in.bad++
		if in.cfg.BadLine != nil && in.bad <= MaxBadReports {
			in.cfg.BadLine(fmt.Sprintf("%s:%d: %v", name, lineNo, err))
		}
		return nil
	}
	in.price(&e)
	if e.Unpriced {
		in.pending[e.Model]++
	}
	in.batch = append(in.batch, e)
	if len(in.batch) >= in.cfg.BatchSize {
		return in.flushLocked(ctx)
	}
	return nil
}

// Flush writes the queued events and waits until they are committed.
func (in *Ingester) Flush(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dispatchLocked(ctx, true)
}

func (in *Ingester) flushLocked(ctx context.Context) error { return in.dispatchLocked(ctx, false) }

// dispatchLocked hands the batch to a writer goroutine so the next batch
// is parsed while this one is written (at most one write in flight; one
// writer at a time). wait: return only when it is committed.
func (in *Ingester) dispatchLocked(ctx context.Context, wait bool) error {
	if in.inflight != nil {
		<-in.inflight
		in.inflight = nil
	}
	if err := in.writeErr(); err != nil {
		return err
	}
	if len(in.batch) == 0 {
		return nil
	}
	batch, pending := in.batch, in.pending
	in.batch = make([]ledger.Event, 0, in.cfg.BatchSize)
	in.pending = map[string]int64{}
	done := make(chan struct{})
	in.inflight = done
	go func() {
		defer close(done)
		in.write(ctx, batch, pending)
	}()
	if !wait {
		return nil
	}
	<-done
	in.inflight = nil
	return in.writeErr()
}

func (in *Ingester) writeErr() error {
	in.smu.Lock()
	defer in.smu.Unlock()
	return in.werr
}

func (in *Ingester) write(ctx context.Context, batch []ledger.Event, pending map[string]int64) {
	// The write is not cut short by the caller's cancellation: what was
	// read is saved.
	res, err := in.db.Insert(context.WithoutCancel(ctx), batch)
	in.smu.Lock()
	defer in.smu.Unlock()
	if err != nil {
		in.werr = err
		return
	}
	in.stats.Ingested += int64(res.Inserted)
	in.stats.Duplicates += int64(res.Duplicates)
	// Only events that were new count.
	var cost pricing.Money
	for i := range batch {
		cost += batch[i].Cost
	}
	for _, i := range res.Skipped {
		e := &batch[i]
		cost -= e.Cost
		if e.Unpriced {
			pending[e.Model]--
		}
	}
	in.stats.Cost += cost
	for m, n := range pending {
		if n > 0 {
			in.stats.UnpricedModels[m] += n
			in.stats.Unpriced += n
		}
	}
	if in.cfg.Flushed != nil {
		in.cfg.Flushed(in.stats)
	}
}

// Reader ingests r to its end; name is used in bad-line reports.
func (in *Ingester) Reader(ctx context.Context, name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var lineNo int64
	var long []byte
	for {
		if err := ctx.Err(); err != nil {
			return errors.Join(in.Flush(ctx), err)
		}
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) <= MaxLineBytes {
				long = append(long, chunk...)
			}
			continue
		}
		if len(chunk) > 0 || long != nil {
			lineNo++
			b := chunk
			if long != nil {
				b = append(long, chunk...)
				long = nil
			}
			if herr := in.handle(ctx, name, lineNo, b); herr != nil {
				return herr
			}
		}
		if errors.Is(err, io.EOF) {
			return in.Flush(ctx)
		}
		if err != nil {
			return errors.Join(in.Flush(ctx), fmt.Errorf("read %s: %w", name, err))
		}
	}
}

// File ingests the file at path to its end ("-" is not special here).
func (in *Ingester) File(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return in.Reader(ctx, path, f)
}
