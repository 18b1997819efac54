package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// flats is n flat lines with ids PREFIX-0 … PREFIX-(n-1), about 130 bytes each.
func flats(prefix string, n int) string { return paddedFlats(prefix, n, 0) }

// paddedFlats is flats with pad more bytes in each line.
func paddedFlats(prefix string, n, pad int) string {
	var b strings.Builder
	padding := ""
	if pad > 0 {
		padding = fmt.Sprintf(`,"note":%q`, strings.Repeat("x", pad))
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"%s-%d","ts":"2026-11-20T10:00:00Z","tenant":"acme","user":"u%d","model":"gpt-4o","input_tokens":%d,"output_tokens":10%s}`+"\n", prefix, i, i%7, 100+i%50, padding)
	}
	return b.String()
}

func appendTo(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t testing.TB, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// followed is a Follow driven by the test: it polls only when told, so
// every step is deterministic (no sleeps, no wall clock).
type followed struct {
	t      *testing.T
	in     *Ingester
	db     *ledger.DB
	bad    *[]string
	idle   chan struct{}
	resume chan struct{}
	cancel context.CancelFunc
	done   chan error
}

// follow starts Follow on path with an Ingester configured by cfg (Poll,
// BadLine, Table and Now are set here) and waits until it has read and
// stored what path holds.
func follow(t *testing.T, path string, cfg Config) *followed {
	t.Helper()
	db, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &followed{t: t, db: db, bad: &[]string{}, idle: make(chan struct{}), resume: make(chan struct{}), done: make(chan error, 1)}
	var mu sync.Mutex
	cfg.Table, cfg.Now = pricing.MustDefault(), func() time.Time { return now }
	cfg.BadLine = func(s string) { mu.Lock(); *f.bad = append(*f.bad, s); mu.Unlock() }
	cfg.Poll = func(ctx context.Context) {
		select {
		case f.idle <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case <-f.resume:
		case <-ctx.Done():
		}
	}
	f.in = New(db, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.in.Follow(ctx, path) }()
	t.Cleanup(func() {
		if f.cancel != nil {
			f.cancel()
			<-f.done
		}
	})
	f.waitIdle()
	return f
}

// waitIdle returns once Follow has stored everything it could read and
// waits for the next poll.
func (f *followed) waitIdle() {
	f.t.Helper()
	select {
	case <-f.idle:
	case err := <-f.done:
		f.t.Fatalf("Follow returned %v", err)
	}
}

// poll makes Follow check its file once and waits until it is idle again.
func (f *followed) poll() {
	f.t.Helper()
	f.resume <- struct{}{}
	f.waitIdle()
}

// stop ends Follow and returns its stats.
func (f *followed) stop() Stats {
	f.t.Helper()
	f.cancel()
	f.cancel = nil
	if err := <-f.done; !errors.Is(err, context.Canceled) {
		f.t.Fatalf("Follow returned %v, want context.Canceled", err)
	}
	return f.in.Stats()
}

// ids are the ids stored, in insertion order.
func (f *followed) ids() []string {
	f.t.Helper()
	rs, err := f.db.SQL().Query(`SELECT event_key FROM events ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var k string
		if err := rs.Scan(&k); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, k[strings.LastIndex(k, ":id:")+4:])
	}
	return out
}

// assertOnce checks that the events stored are exactly want's ids, each once.
func (f *followed) assertOnce(want ...string) {
	f.t.Helper()
	got := f.ids()
	if len(got) != len(want) {
		f.t.Fatalf("%d events stored, want %d", len(got), len(want))
	}
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		for i := range g {
			if g[i] != w[i] {
				f.t.Fatalf("stored ids differ from the ones written: first difference %q vs %q", g[i], w[i])
			}
		}
	}
}

func idsOf(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func TestFollowSurvivesRotationAndTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.jsonl")
	appendTo(t, path, flat("a1")+flat("a2"))
	f := follow(t, path, Config{})
	f.assertOnce("a1", "a2")

	// Growth, with a line written in two halves.
	line := flat("a3")
	appendTo(t, path, line[:20])
	f.poll()
	f.assertOnce("a1", "a2")
	appendTo(t, path, line[20:])
	f.poll()
	f.assertOnce("a1", "a2", "a3")

	// Rotation: rename, then a new file at the same path. A line appended
	// to the old file just before the rename is not lost.
	appendTo(t, path, flat("a4"))
	mustRename(t, path, path+".1")
	appendTo(t, path, flat("b1")+flat("b2"))
	f.poll()
	f.assertOnce("a1", "a2", "a3", "a4", "b1", "b2")

	// Truncation ("> file"): the file starts over with new lines.
	if err := os.WriteFile(path, []byte(flat("c1")), 0o644); err != nil {
		t.Fatal(err)
	}
	f.poll()
	appendTo(t, path, flat("c2")+"oops\n")
	f.poll()
	st := f.stop()
	if got, want := f.ids(), []string{"a1", "a2", "a3", "a4", "b1", "b2", "c1", "c2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	if want := []string{path + ":3: not valid JSON (byte 1: invalid character 'o' looking for beginning of value)"}; !reflect.DeepEqual(*f.bad, want) {
		t.Fatalf("bad %q, want %q", *f.bad, want)
	}
	if st.Ingested != 8 || st.Duplicates != 0 || st.Bad != 1 || st.Conflicts != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The log is rotated twice (logrotate: usage.jsonl.1 → .2, usage.jsonl →
// .1, a new usage.jsonl) while a 10,000-line backlog is read: the file that
// was at path only in between (B) is read too, from where it was rotated
// to. Before, its 1,000 events were lost.
func TestFollowRotatedTwiceWhileBacklogDrains(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "usage.jsonl")
	appendTo(t, path, flats("a", 10000))
	var once sync.Once
	f := follow(t, path, Config{BatchSize: 1000, Flushed: func(Stats) {
		// After the first batch is committed: the reader is still in
		// the backlog (it cannot be more than two batches ahead).
		once.Do(func() {
			mustRename(t, path, path+".1")
			appendTo(t, path, flats("b", 1000))
			mustRename(t, path+".1", path+".2")
			mustRename(t, path, path+".1")
			appendTo(t, path, flats("c", 1000))
		})
	}})
	f.poll()
	st := f.stop()
	f.assertOnce(slices.Concat(idsOf("a", 10000), idsOf("b", 1000), idsOf("c", 1000))...)
	if st.Lines != 12000 || st.Ingested != 12000 || st.Duplicates != 0 || st.Bad != 0 || len(*f.bad) != 0 {
		t.Fatalf("stats %+v, bad %q", st, *f.bad)
	}
}

// Rotated twice between two polls: the middle file is found next to the
// log; an older rotated file that was there before Follow started, and a
// compressed one, are not read.
func TestFollowRotatedTwiceBetweenPolls(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "usage.jsonl")
	appendTo(t, path+".3", flats("old", 5)) // yesterday's, someone else's business
	appendTo(t, path, flats("a", 10))
	f := follow(t, path, Config{})
	appendTo(t, path, flats("a2", 3))
	mustRename(t, path, path+".1")
	appendTo(t, path, flats("b", 7))
	mustRename(t, path+".1", path+".2")
	mustRename(t, path, path+".1")
	appendTo(t, path+".2.gz", "\x1f\x8b not a log")
	appendTo(t, path, flats("c", 4))
	f.poll()
	appendTo(t, path, flats("c2", 2))
	f.poll()
	st := f.stop()
	f.assertOnce(slices.Concat(idsOf("a", 10), idsOf("a2", 3), idsOf("b", 7), idsOf("c", 4), idsOf("c2", 2))...)
	if st.Ingested != 26 || st.Duplicates != 0 || st.Bad != 0 {
		t.Fatalf("stats %+v, bad %q", st, *f.bad)
	}
}

// The file rotated in first (B) is rotated again and compressed — its
// plain name gone — before the backlog of the file before it is read: it
// was opened as soon as it appeared at path, so it is still read.
func TestFollowRotatedFileDeletedBeforeItsTurn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "usage.jsonl")
	// 1,030-byte lines: a 1,100-line batch spans more than the 1 MiB
	// Follow reads at a time, so path is looked at between the first and
	// the third commit.
	appendTo(t, path, paddedFlats("a", 6000, 900))
	flushes := 0
	f := follow(t, path, Config{BatchSize: 1100, Flushed: func(Stats) {
		switch flushes++; flushes {
		case 1:
			mustRename(t, path, path+".1")
			appendTo(t, path, flats("b", 1000))
		case 3:
			mustRename(t, path+".1", path+".2")
			mustRename(t, path, path+".1")
			appendTo(t, path+".1.gz", "\x1f\x8b compressed")
			if err := os.Remove(path + ".1"); err != nil {
				t.Error(err)
			}
			appendTo(t, path, flats("c", 1000))
		}
	}})
	f.poll()
	st := f.stop()
	f.assertOnce(slices.Concat(idsOf("a", 6000), idsOf("b", 1000), idsOf("c", 1000))...)
	if st.Ingested != 8000 || st.Duplicates != 0 || st.Bad != 0 {
		t.Fatalf("stats %+v, bad %q", st, *f.bad)
	}
}

// copytruncate between two polls: lines appended after the last read are
// copied to usage.jsonl.1 with the rest, the log is truncated and refilled
// past the old read position. The unread lines are read from the copy, the
// refill from its start; nothing twice, no half line.
func TestFollowCopytruncateRefilledWithinOnePoll(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "usage.jsonl")
	appendTo(t, path, flats("a", 1000))
	f := follow(t, path, Config{})
	appendTo(t, path, flats("m", 40)) // not read yet
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, flats("n", 1500)) // longer than before
	f.poll()
	appendTo(t, path, flats("p", 5))
	f.poll()
	st := f.stop()
	f.assertOnce(slices.Concat(idsOf("a", 1000), idsOf("m", 40), idsOf("n", 1500), idsOf("p", 5))...)
	if st.Ingested != 2545 || st.Duplicates != 0 || st.Bad != 0 || len(*f.bad) != 0 {
		t.Fatalf("stats %+v, bad %q", st, *f.bad)
	}
}

// "> file" and a refill past the old read position within one poll, no
// copy: the refill is read from its start (before, it was read from the
// old position: lines lost and a half line reported bad).
func TestFollowTruncatedAndRefilledWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "usage.jsonl")
	appendTo(t, path, flats("a", 100))
	f := follow(t, path, Config{})
	if err := os.WriteFile(path, []byte(flats("n", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.poll()
	st := f.stop()
	f.assertOnce(slices.Concat(idsOf("a", 100), idsOf("n", 300))...)
	if st.Ingested != 400 || st.Bad != 0 {
		t.Fatalf("stats %+v, bad %q", st, *f.bad)
	}
}
