package pricing

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Price snapshots: `costctl pricing update` validates a price source (a
// file or URL in costctl's format or LiteLLM's JSON), merges it over the
// built-in table and writes the result as a dated, checksummed snapshot
// that every command then prices with instead of the built-in table, until
// `pricing update --reset`. The snapshot is the whole table, gob-encoded
// behind a SHA-256, so loading it costs a decode, not a YAML parse: a
// larger table does not slow start-up.

// snapshotMagic starts every snapshot file.
const snapshotMagic = "costctl-prices-snapshot 1\n"

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	AsOf   string    // the prices' date (the source's as_of, else the day it was taken)
	Taken  time.Time // when `pricing update` wrote it
	From   string    // the file or URL it came from
	Models int
}

type snapshotFile struct {
	Info   SnapshotInfo
	Models []Model // values: one allocation for all of them when decoded
}

// SnapshotPath is where the snapshot lives: $XDG_DATA_HOME/costctl/prices.snapshot,
// else ~/.local/share/costctl/prices.snapshot.
func SnapshotPath(getenv func(string) string) (string, error) {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "costctl", "prices.snapshot"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("cannot find a data directory for the price snapshot: set XDG_DATA_HOME or HOME")
	}
	return filepath.Join(home, ".local", "share", "costctl", "prices.snapshot"), nil
}

// EncodeSnapshot is t as a snapshot file's bytes.
func EncodeSnapshot(t *Table, info SnapshotInfo) ([]byte, error) {
	info.Models = len(t.models)
	var body bytes.Buffer
	ms := t.Models()
	vals := make([]Model, len(ms))
	for i, m := range ms {
		vals[i] = *m
	}
	if err := gob.NewEncoder(&body).Encode(snapshotFile{Info: info, Models: vals}); err != nil {
		return nil, fmt.Errorf("price snapshot: %w", err)
	}
	sum := sha256.Sum256(body.Bytes())
	out := make([]byte, 0, len(snapshotMagic)+65+body.Len())
	out = append(out, snapshotMagic...)
	out = append(out, hex.EncodeToString(sum[:])...)
	out = append(out, '\n')
	return append(out, body.Bytes()...), nil
}

// DecodeSnapshot reads a snapshot file's bytes, checking its checksum.
func DecodeSnapshot(data []byte) (*Table, SnapshotInfo, error) {
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) || len(data) < len(snapshotMagic)+65 {
		return nil, SnapshotInfo{}, errors.New("not a costctl price snapshot")
	}
	rest := data[len(snapshotMagic):]
	want, body := string(rest[:64]), rest[65:]
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != want || rest[64] != '\n' {
		return nil, SnapshotInfo{}, errors.New("checksum mismatch: the snapshot is damaged")
	}
	var f snapshotFile
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&f); err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("unreadable snapshot: %v", err)
	}
	t := &Table{AsOf: f.Info.AsOf, models: make(map[string]*Model, len(f.Models)), index: make(map[string]*Model, 2*len(f.Models))}
	for i := range f.Models {
		t.add(&f.Models[i])
	}
	t.Overrides = []string{"snapshot of " + f.Info.From + " taken " + f.Info.Taken.UTC().Format("2006-01-02")}
	return t, f.Info, nil
}

// LoadSnapshot reads the snapshot at path; ok is false when there is none.
func LoadSnapshot(path string) (t *Table, info SnapshotInfo, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, SnapshotInfo{}, false, nil
	}
	if err != nil {
		return nil, SnapshotInfo{}, false, fmt.Errorf("price snapshot %s: %w", path, err)
	}
	t, info, err = DecodeSnapshot(data)
	if err != nil {
		return nil, SnapshotInfo{}, false, fmt.Errorf("price snapshot %s: %w", path, err)
	}
	return t, info, true, nil
}

// WriteSnapshot writes data to path atomically (a temporary file renamed
// over it), creating the directory.
func WriteSnapshot(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".prices-*.tmp")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// FromSource merges a price source over the built-in table, validating all
// of it; it returns the table, how many models the source priced and the
// warnings the merge raised (prices that look like the wrong unit).
func FromSource(name string, data []byte) (*Table, int, []string, error) {
	t, err := Default()
	if err != nil {
		return nil, 0, nil, err
	}
	warns, err := t.MergeWarn(name, data)
	if err != nil {
		return nil, 0, nil, err
	}
	n := 0
	for _, m := range t.models {
		if m.Origin == name {
			n++
		}
	}
	if n == 0 {
		return nil, 0, nil, fmt.Errorf("%s prices no model", name)
	}
	return t, n, warns, nil
}

// PriceChange is one price that differs between two tables.
type PriceChange struct {
	Model string  `json:"model"`
	Field string  `json:"field"` // input, cached_input, cache_write_5m, cache_write_1h, output, batch_input, batch_output
	Old   string  `json:"old_per_1m"`
	New   string  `json:"new_per_1m"`
	Pct   float64 `json:"change_pct"` // (new − old) / old × 100; 0 when old is 0
}

// TableDiff is what changed from one table to another.
type TableDiff struct {
	Added   []string      `json:"added"`
	Removed []string      `json:"removed"`
	Changed []PriceChange `json:"changed"`
}

// Empty reports whether nothing changed.
func (d TableDiff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// priceFields are the list prices a diff compares.
// A price derived from another (a cache write or batch price a model does
// not list) is compared only when one side lists it.
var priceFields = []struct {
	name   string
	get    func(r Rates) Rate
	listed func(r Rates) bool
}{
	{"input", func(r Rates) Rate { return r.Input }, func(Rates) bool { return true }},
	{"cached_input", func(r Rates) Rate { return r.CachedInput }, func(r Rates) bool { return r.HasCachedInput }},
	{"cache_write_5m", func(r Rates) Rate { return r.CacheWrite5m }, func(r Rates) bool { return r.HasCacheWrite5m }},
	{"cache_write_1h", func(r Rates) Rate { return r.CacheWrite1h }, func(r Rates) bool { return r.HasCacheWrite1h }},
	{"output", func(r Rates) Rate { return r.Output }, func(Rates) bool { return true }},
	{"batch_input", func(r Rates) Rate { return r.BatchInput }, func(r Rates) bool { return r.HasBatchInput }},
	{"batch_output", func(r Rates) Rate { return r.BatchOutput }, func(r Rates) bool { return r.HasBatchOutput }},
}

// Diff lists the models only in a (removed), only in b (added) and the
// prices that differ between them, sorted by model and field.
func Diff(a, b *Table) TableDiff {
	d := TableDiff{Added: []string{}, Removed: []string{}, Changed: []PriceChange{}}
	for name := range a.models {
		if _, ok := b.models[name]; !ok {
			d.Removed = append(d.Removed, name)
		}
	}
	for name, mb := range b.models {
		ma, ok := a.models[name]
		if !ok {
			d.Added = append(d.Added, name)
			continue
		}
		for _, f := range priceFields {
			oa, ob := f.get(ma.Rates), f.get(mb.Rates)
			if oa == ob || !f.listed(ma.Rates) && !f.listed(mb.Rates) {
				continue
			}
			pct := 0.0
			if oa != 0 {
				pct = math.Round((float64(ob)-float64(oa))/float64(oa)*1000) / 10
			}
			d.Changed = append(d.Changed, PriceChange{Model: name, Field: f.name, Old: oa.Per1M(), New: ob.Per1M(), Pct: pct})
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Slice(d.Changed, func(i, j int) bool {
		if d.Changed[i].Model != d.Changed[j].Model {
			return d.Changed[i].Model < d.Changed[j].Model
		}
		return d.Changed[i].Field < d.Changed[j].Field
	})
	return d
}

// Implausible says why next should not replace cur, or "" when it may: a
// source that leaves out most of the models cur prices, or that changes most
// input or output prices by more than 10× (a unit mistake), is refused.
func Implausible(cur, next *Table, sourceModels int) string {
	if n := len(cur.models); sourceModels*2 < n && sourceModels < 50 {
		return fmt.Sprintf("it prices %d models where the current table has %d: a snapshot replaces the whole table (use --pricing FILE for a few overrides)", sourceModels, n)
	}
	compared, wild := 0, 0
	for name, mc := range cur.models {
		mn, ok := next.models[name]
		if !ok || strings.HasPrefix(mn.Origin, "built-in") && mn.Origin == mc.Origin {
			continue
		}
		for _, p := range [][2]Rate{{mc.Input, mn.Input}, {mc.Output, mn.Output}} {
			if p[0] <= 0 || p[1] <= 0 {
				continue
			}
			compared++
			if r := float64(p[1]) / float64(p[0]); r > 10 || r < 0.1 {
				wild++
			}
		}
	}
	if compared >= 4 && wild*2 > compared {
		return fmt.Sprintf("%d of %d input and output prices it changes move by more than 10× (a per-token or per-1K price where per-1M is expected?)", wild, compared)
	}
	return ""
}
