package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// memStore is an in-memory ledger: ingest needs only Store, so a second
// store (PostgreSQL next) plugs in the same way.
type memStore struct {
	mu     sync.Mutex
	events map[string]ledger.Event
}

func (m *memStore) Record(_ context.Context, events []ledger.Event, _ []ledger.JudgeResult) (ledger.InsertResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res ledger.InsertResult
	for i, e := range events {
		if _, ok := m.events[e.Key]; ok {
			res.Duplicates++
			res.Skipped = append(res.Skipped, i)
			continue
		}
		m.events[e.Key] = e
		res.Inserted++
	}
	return res, nil
}

func (m *memStore) LookupKeys(_ context.Context, keys []string) (map[string]ledger.StoredKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]ledger.StoredKey{}
	for _, k := range keys {
		if e, ok := m.events[k]; ok {
			out[k] = ledger.StoredKey{Tenant: e.Tenant, ContentHash: e.ContentHash}
		}
	}
	return out, nil
}

func (m *memStore) HasKeyPrefix(_ context.Context, prefix string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.events {
		if strings.HasPrefix(k, prefix) {
			return true, nil
		}
	}
	return false, nil
}

// The whole ingest path on a fake in-memory store: keys, prices,
// duplicates and conflicts come out as on SQLite.
func TestIngestIntoMemoryStore(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	st := &memStore{events: map[string]ledger.Event{}}
	var bad []string
	in := New(st, Config{Table: pricing.MustDefault(), Now: func() time.Time { return now }, BatchSize: 2,
		BadLine: func(s string) { bad = append(bad, s) }})
	defer in.Close()
	log := `{"id":"a","ts":1795168800,"tenant":"acme","model":"gpt-4o-mini","input_tokens":1000,"output_tokens":200}
{"id":"b","ts":1795168800,"tenant":"acme","model":"gpt-4o","input_tokens":1000,"cached_input_tokens":400,"output_tokens":100}
{"id":"a","ts":1795168800,"tenant":"acme","model":"gpt-4o-mini","input_tokens":1000,"output_tokens":200}
{"id":"b","ts":1795168800,"tenant":"acme","model":"gpt-4o","input_tokens":9999,"output_tokens":100}
{"id":"a","ts":1795168800,"tenant":"globex","model":"gpt-4o-mini","input_tokens":1000,"output_tokens":200}
`
	if err := in.Reader(context.Background(), "log", strings.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	s := in.Stats()
	// gpt-4o-mini 1000 in, 200 out: $0.00027; gpt-4o 600 + 400 cached in, 100 out: $0.0030
	if s.Lines != 5 || s.Ingested != 3 || s.Duplicates != 1 || s.Conflicts != 1 || s.Cost.String() != "0.00354" {
		t.Fatalf("stats %+v (cost %s)", s, s.Cost)
	}
	var keys []string
	for k := range st.events {
		keys = append(keys, k)
	}
	if got := fmt.Sprintf("%d %s", len(keys), st.events["ingest:flat:globex:id:a"].Tenant); got != "3 globex" {
		t.Fatalf("stored %v", keys)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "log:4: conflict: ingest:flat:acme:id:b is already in the ledger") {
		t.Fatalf("reports %q", bad)
	}
}
