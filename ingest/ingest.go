package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Config is what an Ingester needs besides the ledger.
type Config struct {
	Table    *pricing.Table
	Defaults Defaults
	// Source is the namespace of the logs' ids (see Key); "" is each
	// line's shape (flat, openai_chat, anthropic, ...: see Shapes). Check
	// a user's value with CheckSource.
	Source string
	Now    func() time.Time // for lines without a timestamp
	// BatchSize is how many events go into one ledger transaction
	// (default 20000).
	BatchSize int
	// PollInterval is how often Follow checks a file for growth,
	// truncation and rotation (default 250ms).
	PollInterval time.Duration
	// Poll, when set, replaces Follow's wait of PollInterval between two
	// checks: Follow calls it once everything read so far is written, and
	// checks its file again when it returns (tests drive Follow with it).
	// It must return when ctx is done.
	Poll func(ctx context.Context)
	// BusyRetry is how long a write that finds the ledger locked by
	// another writer is retried, with jittered backoff, before the ingest
	// fails (default 2 minutes; negative: not retried). Each try itself
	// waits up to the ledger's busy timeout.
	BusyRetry time.Duration
	// BadLine receives each bad line as "FILE:LINE: reason", and each
	// conflict as "FILE:LINE: conflict: ..." (nil: dropped). At most
	// MaxBadReports are reported; all are counted.
	BadLine func(string)
	// Flushed, when set, is called after each batch is committed.
	Flushed func(Stats)
}

// MaxBadReports caps how many bad lines and conflicts are reported one by one.
const MaxBadReports = 100

// MaxLineBytes is the longest line accepted (longer ones are bad lines).
const MaxLineBytes = 64 << 20

// Stats count what an ingest did.
type Stats struct {
	Lines      int64
	Ingested   int64
	Duplicates int64 // already in the ledger with the same content (or repeated in the input)
	// Conflicts are events whose key is already in the ledger with other
	// content: reported, counted, not stored.
	Conflicts      int64
	Bad            int64
	Cost           pricing.Amount   // of the ingested (new, priced) events, exact
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

// CheckSource says whether name can be a Source: 1 to 64 letters, digits,
// '.', '_' or '-', starting with a letter or digit; not "id" or "sha256",
// the namespaces of keys written before sources existed.
func CheckSource(name string) error {
	bad := name == "" || len(name) > 64 || name == "id" || name == "sha256"
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		bad = bad || !ok
	}
	if bad {
		return fmt.Errorf("invalid source %q: want 1 to 64 letters, digits, '.', '_' or '-' (not \"id\" or \"sha256\")", name)
	}
	return nil
}

// Key is the idempotency key of an ingested event:
//
//	ingest:SOURCE:TENANT:id:ID          a line with an "id"
//	ingest:SOURCE:TENANT:sha256:HASH    a line without one (HASH: of the line)
//
// SOURCE is --source, else the line's shape (the same id in two shapes is
// two calls). TENANT is the event's tenant (from the line or --tenant) with
// '%' and ':' percent-escaped, so two tenants' logs that both number their
// events 1, 2, 3 are six events, and two systems' logs kept apart by
// --source never collide. rest is the part parseLine gives after "ingest:" (id:ID or
// sha256:HASH), which is also the whole key older versions wrote (see
// legacyPrefixes).
func Key(source, tenant, rest string) string {
	if strings.ContainsAny(tenant, "%:") {
		tenant = strings.NewReplacer("%", "%25", ":", "%3A").Replace(tenant)
	}
	return "ingest:" + source + ":" + tenant + ":" + rest
}

// legacyPrefixes are the keys ingest wrote before sources and tenants were
// part of them ("ingest:id:ID", "ingest:sha256:HASH"). A ledger that holds
// any is checked for them too, so logs ingested by an older costctl are not
// counted again.
var legacyPrefixes = []string{"ingest:id:", "ingest:sha256:"}

// ContentHash is the 64-bit FNV-1a hash of what an
// event bills: its time (to the millisecond, as stored; left out when the
// line had none and the ingest time stood in), tenant, user, endpoint,
// model, every token count, batch and service tier. Zero counts and empty
// strings are left out, so an event hashes the same after a new kind of
// token is added. Latency and cost are not content: a re-ingest with new
// prices is a duplicate, not a conflict. It is never 0 (0 means "no hash"),
// and stored as an INTEGER. It is compared only between events under one
// key, so a non-cryptographic hash is enough (a chance collision, 2^-64,
// would take a conflict for a duplicate) and much cheaper per line.
func ContentHash(e *ledger.Event, withTime bool) int64 {
	var buf [256]byte
	b := buf[:0]
	if withTime {
		b = hashInt(b, 't', e.Time.UnixMilli())
	}
	b = hashStr(b, 'T', e.Tenant)
	b = hashStr(b, 'u', e.User)
	b = hashStr(b, 'e', e.Endpoint)
	b = hashStr(b, 'm', e.Model)
	b = hashInt(b, 'i', e.InputTokens)
	b = hashInt(b, 'c', e.CachedTokens)
	b = hashInt(b, '5', e.CacheWrite5mTokens)
	b = hashInt(b, '1', e.CacheWrite1hTokens)
	b = hashInt(b, 'o', e.OutputTokens)
	b = hashInt(b, 'r', e.ReasoningTokens)
	if e.Batch {
		b = append(b, 'b')
	}
	b = hashStr(b, 's', e.ServiceTier)
	f := fnv.New64a()
	f.Write(b)
	h := int64(f.Sum64())
	if h == 0 {
		h = 1
	}
	return h
}

// The hashed fields are a tag byte and a varint, or a tag byte, a length
// and the bytes: no value can pass for another.

func hashInt(b []byte, tag byte, v int64) []byte {
	if v == 0 {
		return b
	}
	return binary.AppendVarint(append(b, tag), v)
}

func hashStr(b []byte, tag byte, v string) []byte {
	if v == "" {
		return b
	}
	return append(binary.AppendUvarint(append(b, tag), uint64(len(v))), v...)
}

// Ingester prices events and writes them to the ledger in batches. It is
// safe for concurrent use by several readers (one per followed file); the
// writes are serialised.
type Ingester struct {
	db     Store
	writer *ledger.Writer
	cfg    Config

	mu          sync.Mutex // guards the batch being filled
	batch       []ledger.Event
	from        []origin                  // where each event of batch came from
	pending     map[string]int64          // unpriced models in the batch
	models      map[string]*pricing.Model // lookup cache; nil value = unpriced
	inflight    []*write                  // batches being written, oldest first (at most maxInflight)
	maxInflight int
	lines       int64
	bad         int64
	reported    int64 // bad lines and conflicts passed to BadLine

	smu   sync.Mutex // guards what the writer updates
	stats Stats
	werr  error

	legacyOnce sync.Once
	legacy     bool // the ledger holds keys in the old format
	legacyErr  error
}

// origin is where an event was read, for reports.
type origin struct {
	name string
	line int64
	rest string // parseLine's key without "ingest:": the key older versions wrote, after that prefix
}

// Store is what ingest needs from a ledger: the shared write, and two
// reads that tell a duplicate from a conflict. *ledger.DB implements it.
type Store interface {
	ledger.Recorder
	// LookupKeys returns what is stored under those of keys that are.
	LookupKeys(ctx context.Context, keys []string) (map[string]ledger.StoredKey, error)
	// HasKeyPrefix reports whether any event key starts with prefix.
	HasKeyPrefix(ctx context.Context, prefix string) (bool, error)
}

// New returns an Ingester writing to db through one ledger.Writer; Close
// stops it.
func New(db Store, cfg Config) *Ingester {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 20000
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BusyRetry == 0 {
		cfg.BusyRetry = 2 * time.Minute
	}
	// A PostgreSQL ledger writes two batches at once (two server
	// processes); SQLite has one writer.
	inflight := 1
	if pg, ok := db.(interface{ IsPostgres() bool }); ok && pg.IsPostgres() {
		inflight = 2
	}
	return &Ingester{db: db, cfg: cfg, models: map[string]*pricing.Model{}, maxInflight: inflight,
		writer:  ledger.NewWriter(db, ledger.WriterConfig{RetryBusy: cfg.BusyRetry, Queue: 1, Workers: inflight}),
		pending: map[string]int64{}, stats: Stats{UnpricedModels: map[string]int64{}}}
}

// Close writes what is queued and stops the writer (Flush first to write
// the batch being filled).
func (in *Ingester) Close() { in.writer.Close() }

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

// price sets e's cost with priceEvent (each kind of token at its rate),
// looking each model up once.
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
	priceEvent(m, e)
}

// report passes a bad line or a conflict to BadLine (the first
// MaxBadReports of them). The caller holds mu.
func (in *Ingester) report(s string) {
	in.reported++
	if in.cfg.BadLine != nil && in.reported <= MaxBadReports {
		in.cfg.BadLine(s)
	}
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
	var p parsed
	var err error
	now := in.cfg.Now()
	if len(b) > MaxLineBytes {
		err = fmt.Errorf("line longer than %d MiB", MaxLineBytes>>20)
	} else {
		p, err = parseShaped(b, in.cfg.Defaults, now)
	}
	if err != nil {
		in.bad++
		in.report(fmt.Sprintf("%s:%d: %v", name, lineNo, err))
		return nil
	}
	e := p.Event
	in.price(&e)
	if e.Unpriced {
		in.pending[e.Model]++
	}
	source := in.cfg.Source
	if source == "" {
		source = string(p.Shape)
	}
	rest := strings.TrimPrefix(e.Key, "ingest:")
	e.Key = Key(source, e.Tenant, rest)
	e.ContentHash = ContentHash(&e, !e.Time.Equal(now))
	in.batch = append(in.batch, e)
	in.from = append(in.from, origin{name: name, line: lineNo, rest: rest})
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

// dispatchLocked hands the batch to the writer so the next batch is
// parsed while this one is written (at most maxInflight writes in
// flight: one on SQLite, two on PostgreSQL). wait: return only when every
// write is committed. Conflicts the writer found are reported here, under
// mu, batch by batch in input order, so reports come in a fixed order for
// a given input and batch size.
func (in *Ingester) dispatchLocked(ctx context.Context, wait bool) error {
	for len(in.inflight) > 0 && (len(in.inflight) >= in.maxInflight || len(in.batch) == 0 && wait) {
		in.awaitOldestLocked()
	}
	if err := in.writeErr(); err != nil {
		return err
	}
	if len(in.batch) == 0 {
		return nil
	}
	w := &write{events: in.batch, from: in.from, unpriced: in.pending, done: make(chan struct{})}
	in.batch = make([]ledger.Event, 0, in.cfg.BatchSize)
	in.from = make([]origin, 0, in.cfg.BatchSize)
	in.pending = map[string]int64{}
	// The write is not cut short by the caller's cancellation: what was
	// read is saved.
	ctx = context.WithoutCancel(ctx)
	var dups int64
	if err := in.dropLegacy(ctx, w, &dups); err != nil {
		in.smu.Lock()
		in.werr = err
		in.smu.Unlock()
		return err
	}
	in.inflight = append(in.inflight, w)
	in.writer.Go(ctx, w.events, nil, func(res ledger.InsertResult, err error) {
		defer close(w.done)
		in.written(ctx, w, dups, res, err)
	})
	if !wait {
		return nil
	}
	for len(in.inflight) > 0 {
		in.awaitOldestLocked()
	}
	return in.writeErr()
}

// awaitOldestLocked waits for the oldest write in flight and reports its
// conflicts.
func (in *Ingester) awaitOldestLocked() {
	w := in.inflight[0]
	<-w.done
	in.inflight = in.inflight[1:]
	for _, r := range w.reports {
		in.report(r)
	}
}

func (in *Ingester) writeErr() error {
	in.smu.Lock()
	defer in.smu.Unlock()
	return in.werr
}

// write is one batch on its way to the ledger.
type write struct {
	events   []ledger.Event
	from     []origin
	unpriced map[string]int64 // model → unpriced events in events
	done     chan struct{}    // closed once written (and classified)
	reports  []string         // its conflicts, reported in batch order
}

// drop removes the events whose keep is false.
func (w *write) drop(keep func(i int) bool) {
	n := 0
	for i := range w.events {
		if keep(i) {
			w.events[n], w.from[n] = w.events[i], w.from[i]
			n++
		} else if e := &w.events[i]; e.Unpriced {
			w.unpriced[e.Model]--
		}
	}
	w.events, w.from = w.events[:n], w.from[:n]
}

// written classifies what the writer did with a batch (on the writer's
// goroutine, in batch order): each event the ledger skipped is classified
// by the content hash stored under its key: the same (or none) is a
// duplicate, another is a conflict. Events already stored under an
// old-format key (see legacyPrefixes) were dropped before the write.
func (in *Ingester) written(ctx context.Context, w *write, dups int64, res ledger.InsertResult, err error) {
	var conflicts int64
	var reports []string
	skipped := make([]bool, len(w.events))
	if err == nil && len(res.Skipped) > 0 {
		keys := make([]string, len(res.Skipped))
		for j, i := range res.Skipped {
			keys[j] = w.events[i].Key
			skipped[i] = true
		}
		var stored map[string]ledger.StoredKey
		if err = in.retryBusy(func() error {
			var err error
			stored, err = in.db.LookupKeys(ctx, keys)
			return err
		}); err == nil {
			for _, i := range res.Skipped {
				e := &w.events[i]
				if s, ok := stored[e.Key]; !ok || s.ContentHash == 0 || s.ContentHash == e.ContentHash {
					dups++
					continue
				}
				conflicts++
				reports = append(reports, fmt.Sprintf("%s:%d: conflict: %s is already in the ledger with other content (time, tenant, user, endpoint, model or tokens); not stored (a reused id? give this log its own --source)",
					w.from[i].name, w.from[i].line, e.Key))
			}
		}
	}
	in.smu.Lock()
	defer in.smu.Unlock()
	if err != nil {
		in.werr = err
		if res.Inserted == 0 {
			return
		}
	}
	in.stats.Ingested += int64(res.Inserted)
	in.stats.Duplicates += dups
	in.stats.Conflicts += conflicts
	w.reports = reports
	// Only events that were new count.
	for i := range w.events {
		if e := &w.events[i]; !skipped[i] {
			in.stats.Cost = in.stats.Cost.Add(e.CostExact)
		} else if e.Unpriced {
			w.unpriced[e.Model]--
		}
	}
	for m, n := range w.unpriced {
		if n > 0 {
			in.stats.UnpricedModels[m] += n
			in.stats.Unpriced += n
		}
	}
	if in.cfg.Flushed != nil {
		in.cfg.Flushed(in.stats)
	}
}

// dropLegacy drops from w the events an older costctl already stored under
// its key format for the same tenant (counted in dups). Only a ledger that
// holds such keys is asked.
func (in *Ingester) dropLegacy(ctx context.Context, w *write, dups *int64) error {
	in.legacyOnce.Do(func() {
		for _, p := range legacyPrefixes {
			var has bool
			in.legacyErr = in.retryBusy(func() error {
				var err error
				has, err = in.db.HasKeyPrefix(ctx, p)
				return err
			})
			if in.legacyErr != nil || has {
				in.legacy = has
				return
			}
		}
	})
	if in.legacyErr != nil || !in.legacy {
		return in.legacyErr
	}
	keys := make([]string, len(w.events))
	for i := range w.from {
		keys[i] = "ingest:" + w.from[i].rest
	}
	var stored map[string]ledger.StoredKey
	if err := in.retryBusy(func() error {
		var err error
		stored, err = in.db.LookupKeys(ctx, keys)
		return err
	}); err != nil || len(stored) == 0 {
		return err
	}
	w.drop(func(i int) bool {
		s, ok := stored[keys[i]]
		if ok && s.Tenant == w.events[i].Tenant {
			*dups++
			return false
		}
		return true
	})
	return nil
}

// retryBusy runs a read until it succeeds, fails with something other
// than a locked ledger, or the ledger has stayed locked for BusyRetry
// (ledger.RetryBusy).
func (in *Ingester) retryBusy(op func() error) error {
	return ledger.RetryBusy(in.cfg.BusyRetry, func(int) (bool, error) { return false, op() })
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
	defer f.Close() // only read: a close error cannot lose data
	return in.Reader(ctx, path, f)
}
