package pricing

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// bigLiteLLM is a LiteLLM-sized source: n models, every seventh with two
// long-context tiers.
func bigLiteLLM(n int) []byte {
	var b strings.Builder
	b.WriteString("{\n")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `"prov%d/synthetic-%d": {"litellm_provider": "openai", "max_input_tokens": 128000, "max_output_tokens": 16384, "input_cost_per_token": %d e-07, "output_cost_per_token": 4e-06`, i%10, i, 1+i%9)
		if i%7 == 0 {
			b.WriteString(`, "input_cost_per_token_above_200k_tokens": 2e-06, "output_cost_per_token_above_200k_tokens": 8e-06, "input_cost_per_token_above_272k_tokens": 3e-06`)
		}
		b.WriteString("}")
	}
	b.WriteString("\n}\n")
	return []byte(strings.ReplaceAll(b.String(), " e-07", "e-07"))
}

func snapshotOf(t testing.TB, tbl *Table) []byte {
	t.Helper()
	data, err := EncodeSnapshot(tbl, SnapshotInfo{AsOf: "2026-12-01", Taken: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), From: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSnapshotRoundTrip: a snapshot reads back to the same models —
// long-context tiers, max output and deprecation date included — and a
// lookup decodes only the model it resolves to (counted, not timed).
func TestSnapshotRoundTrip(t *testing.T) {
	tbl := MustDefault()
	if _, err := tbl.MergeWarn("litellm.json", []byte(twoTierLiteLLM)); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.MergeWarn("big.json", bigLiteLLM(300)); err != nil {
		t.Fatal(err)
	}
	got, info, err := DecodeSnapshot(snapshotOf(t, tbl))
	if err != nil {
		t.Fatal(err)
	}
	if info.Models != len(tbl.Models()) || got.AsOf != "2026-12-01" {
		t.Errorf("info = %+v", info)
	}
	for _, q := range []string{"acme-gpt-two-tier", "openai/gpt-4o-2024-08-06", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"} {
		want, err := tbl.Lookup(q)
		if err != nil {
			t.Fatal(err)
		}
		m, err := got.Lookup(q)
		if err != nil || !reflect.DeepEqual(m, want) {
			t.Errorf("%s: %+v, %v\nwant %+v", q, m, err, want)
		}
	}
	decoded := 0
	for _, m := range got.lazy.cache {
		if m != nil {
			decoded++
		}
	}
	if decoded != 3 { // acme-gpt-two-tier, gpt-4o, claude-sonnet-4.5
		t.Errorf("three lookups decoded %d models", decoded)
	}
	if m, _ := got.Lookup("acme-gpt-two-tier"); m.RatesFor(300_000).Input.Per1M() != "6.00" || m.MaxOutput != 128_000 || m.Deprecated != "2027-03-01" {
		t.Errorf("two-tier model from the snapshot: %+v", m)
	}
	if _, err := got.Lookup("no-such-model"); err == nil {
		t.Error("unknown model resolved")
	}
	if !reflect.DeepEqual(got.Models(), tbl.Models()) {
		t.Error("Models() differ after a round trip")
	}
	if d := Diff(tbl, got); !d.Empty() {
		t.Errorf("diff after a round trip: %+v", d)
	}
}

// TestSnapshotOldOrDamaged: a snapshot of an older format (1: one
// long-context tier; 2: a gob-encoded index) is refused with what to do; a
// damaged one by its checksum.
func TestSnapshotOldOrDamaged(t *testing.T) {
	data := snapshotOf(t, MustDefault())
	for _, v := range []string{"1", "2"} {
		old := append([]byte("costctl-prices-snapshot "+v+"\n"), data[len(snapshotMagic):]...)
		if _, _, err := DecodeSnapshot(old); err == nil || err.Error() != `snapshot format "`+v+`" is not this costctl's (format 3): write it again with costctl pricing update --from SOURCE` {
			t.Errorf("format %s: %v", v, err)
		}
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-10] ^= 0xff
	if _, _, err := DecodeSnapshot(bad); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("damaged: %v", err)
	}
	if _, _, err := DecodeSnapshot(data[:len(snapshotMagic)+20]); err == nil {
		t.Error("truncated snapshot accepted")
	}
}

// TestPricingDiffTiers: diff compares long-context tiers by threshold and
// lists a tier only one side has against none.
func TestPricingDiffTiers(t *testing.T) {
	a := MustDefault()
	if err := a.Merge("a.json", []byte(`{"m": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
	  "input_cost_per_token_above_200k_tokens": 2e-06}}`)); err != nil {
		t.Fatal(err)
	}
	b := MustDefault()
	if err := b.Merge("b.json", []byte(`{"m": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
	  "input_cost_per_token_above_200k_tokens": 2.5e-06, "input_cost_per_token_above_272k_tokens": 3e-06}}`)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range Diff(a, b).Changed {
		got = append(got, fmt.Sprintf("%s %s %q→%q %.1f", c.Model, c.Field, c.Old, c.New, c.Pct))
	}
	want := []string{
		`m input_above_200k "2.00"→"2.50" 25.0`,
		`m input_above_272k ""→"3.00" 0.0`,
		`m output_above_272k ""→"2.00" 0.0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// BenchmarkSnapshotLookup is what a command that prices one model pays for
// a LiteLLM-sized snapshot (~2,700 models): check and index the file, then
// resolve and decode one model. The figure for the README's Performance
// table; cold start as a whole: hyperfine -N 'costctl tokens README.md'.
func BenchmarkSnapshotLookup(b *testing.B) {
	tbl := MustDefault()
	if _, err := tbl.MergeWarn("big.json", bigLiteLLM(2600)); err != nil {
		b.Fatal(err)
	}
	data := snapshotOf(b, tbl)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, _, err := DecodeSnapshot(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := t.Lookup("gpt-4o-2024-08-06"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSnapshotLookupAllocs: loading a LiteLLM-sized snapshot and pricing
// one model allocates a few kilobytes — the index is read in place and one
// model decoded — not the table (counted, not timed: start-up stays flat as
// the table grows).
func TestSnapshotLookupAllocs(t *testing.T) {
	tbl := MustDefault()
	if _, err := tbl.MergeWarn("big.json", bigLiteLLM(2600)); err != nil {
		t.Fatal(err)
	}
	data := snapshotOf(t, tbl)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	const runs = 20
	for i := 0; i < runs; i++ {
		st, _, err := DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Lookup("gpt-4o-2024-08-06"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&ms)
	perRun := (ms.TotalAlloc - before) / runs
	if perRun > 64<<10 || uint64(len(data)) < 8*perRun {
		t.Errorf("load + one lookup allocates %d bytes per run for a %d-byte snapshot; want a few KB", perRun, len(data))
	}
}

// BenchmarkSnapshotAll decodes every model of the same snapshot (what
// pricing list or an unknown model's suggestions pay).
func BenchmarkSnapshotAll(b *testing.B) {
	tbl := MustDefault()
	if _, err := tbl.MergeWarn("big.json", bigLiteLLM(2600)); err != nil {
		b.Fatal(err)
	}
	data := snapshotOf(b, tbl)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, _, err := DecodeSnapshot(data)
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Models()) < 2600 {
			b.Fatal("models missing")
		}
	}
}

// TestSnapshotConcurrentLookups: a snapshot table decodes on demand under
// a lock, so commands that price from several goroutines (eval) stay
// race-free (go test -race).
func TestSnapshotConcurrentLookups(t *testing.T) {
	tbl := MustDefault()
	got, _, err := DecodeSnapshot(snapshotOf(t, tbl))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"gpt-4o", "claude-sonnet-4.5", "gemini-2.5-pro", "o3", "gpt-5.4"}
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func(g int) {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				_, err = got.Lookup(names[(g+i)%len(names)])
				if i == 25 && g == 0 {
					got.Models()
				}
			}
			done <- err
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// A WriteSnapshot that fails (here the rename: a non-empty directory is in
// the way) removes its temporary file: no stray .prices-*.tmp is left.
func TestWriteSnapshotFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prices.json")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteSnapshot(path, []byte("{}")); err == nil {
		t.Fatal("WriteSnapshot over a non-empty directory: no error")
	}
	left, err := filepath.Glob(filepath.Join(dir, ".prices-*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}
