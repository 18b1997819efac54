package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// memRecorder is an in-memory store: keys seen, transactions counted; it
// can refuse the first writes as busy.
type memRecorder struct {
	mu      sync.Mutex
	keys    map[string]bool
	txs     int
	busy    int // refuse this many more Record calls as busy
	gate    chan struct{}
	entered chan struct{} // receives once per Record call that waits at gate
	calls   int
}

type busyErr struct{}

func (busyErr) Error() string { return "store is busy" }
func (busyErr) Busy() bool    { return true }

func (m *memRecorder) Record(_ context.Context, events []Event, judges []JudgeResult) (InsertResult, error) {
	if m.gate != nil {
		m.entered <- struct{}{}
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.busy > 0 {
		m.busy--
		return InsertResult{}, fmt.Errorf("record: %w", busyErr{})
	}
	var res InsertResult
	for i, e := range events {
		if m.keys[e.Key] {
			res.Duplicates++
			res.Skipped = append(res.Skipped, i)
			continue
		}
		m.keys[e.Key] = true
		res.Inserted++
	}
	m.txs++
	return res, nil
}

// Requests queued while a transaction is open are merged into one, and each
// request is told exactly which of its own events were skipped.
func TestWriterGroupsAndSplitsResults(t *testing.T) {
	rec := &memRecorder{keys: map[string]bool{"a2": true, "c1": true}, gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	w := NewWriter(rec, WriterConfig{})
	ctx := context.Background()
	// The first request holds the writer (gate closed) while three more queue.
	first := make(chan InsertResult, 1)
	w.Go(ctx, []Event{{Key: "z1"}}, nil, func(r InsertResult, err error) { first <- r })
	<-rec.entered
	got := make([]InsertResult, 3)
	var wg sync.WaitGroup
	for i, keys := range [][]string{{"a1", "a2", "a3"}, {"b1"}, {"c1", "c1", "c2"}} {
		evs := make([]Event, len(keys))
		for j, k := range keys {
			evs[j].Key = k
		}
		wg.Add(1)
		w.Go(ctx, evs, nil, func(r InsertResult, err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	close(rec.gate)
	wg.Wait()
	w.Close()
	<-first
	want := []InsertResult{
		{Inserted: 2, Duplicates: 1, Skipped: []int{1}},
		{Inserted: 1},
		{Inserted: 1, Duplicates: 2, Skipped: []int{0, 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("results %+v, want %+v", got, want)
	}
	if rec.txs != 2 {
		t.Fatalf("%d transactions, want 2 (one, then the three queued requests together)", rec.txs)
	}
}

// A busy store is retried until it takes the write; with a negative limit
// the busy error comes back at once.
func TestWriterRetriesBusy(t *testing.T) {
	rec := &memRecorder{keys: map[string]bool{}, busy: 3}
	w := NewWriter(rec, WriterConfig{})
	res, err := w.Write(context.Background(), []Event{{Key: "k"}}, nil)
	w.Close()
	if err != nil || res.Inserted != 1 || rec.calls != 4 {
		t.Fatalf("res %+v err %v after %d calls, want 1 inserted after 4", res, err, rec.calls)
	}
	rec = &memRecorder{keys: map[string]bool{}, busy: 1}
	w = NewWriter(rec, WriterConfig{RetryBusy: -1})
	_, err = w.Write(context.Background(), []Event{{Key: "k"}}, nil)
	w.Close()
	if !IsBusy(err) || rec.calls != 1 || !errors.As(err, new(busyErr)) {
		t.Fatalf("err %v after %d calls, want the busy error after 1", err, rec.calls)
	}
}
