package pricing

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Price snapshots: `costctl pricing update` validates a price source (a
// file or URL in costctl's format, LiteLLM's or genai-prices' JSON), merges
// it over the built-in table and writes the result as a dated, checksummed
// snapshot that every command then prices with instead of the built-in
// table, until `pricing update --reset`. The snapshot is the whole table
// behind an index of names, so loading it costs a checksum and a lookup
// decodes one model, not a YAML parse nor the whole table: a larger table
// does not slow start-up.

// snapshotMagic starts every snapshot file; the number is the format.
// Format 3 (long-context tiers as a list, max output, deprecation date, an
// index read in place and models decoded on demand) replaced formats 1
// and 2.
const (
	snapshotMagicPrefix = "costctl-prices-snapshot "
	snapshotMagic       = snapshotMagicPrefix + "3\n"
)

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	AsOf   string    // the prices' date (the source's as_of, else the day it was taken)
	Taken  time.Time // when `pricing update` wrote it
	From   string    // the file or URL it came from
	Models int
}

// A format-3 snapshot, after its magic line and the CRC-32C (Castagnoli)
// of the rest in hex on a line of its own, is little-endian:
//
//	6 × uint32      number of keys, of models; bytes of info, of keys, of
//	                the models' type prefix, of the models' stream
//	info            SnapshotInfo as JSON
//	keyEnd[keys]    uint32: key i is keys[keyEnd[i-1]:keyEnd[i]]
//	keyModel[keys]  uint32: the model key i names
//	modelEnd[models] uint32: model i is stream[modelEnd[i-1]:modelEnd[i]]
//	                (modelEnd[-1] = the prefix's length)
//	keys            the lower-cased names and aliases, sorted, concatenated
//	stream          one gob stream: the type definitions and a zero Model
//	                (the prefix), then each model's value
//
// Loading it checks the checksum and reads the index where it lies: no
// model and no key is decoded or copied until a lookup needs it, and then
// only the model it resolves to (from the type prefix and its own bytes).
// A command that prices one model thus allocates next to nothing for a
// table of thousands (BenchmarkSnapshotLookup, TestSnapshotLookupAllocs).
type snapshotIndex struct {
	nKeys, nModels int
	keyEnd         []byte // uint32s
	keyModel       []byte
	modelEnd       []byte
	keys           []byte
	prefix         []byte // the stream's type prefix
	stream         []byte
}

func u32(b []byte, i int) int { return int(binary.LittleEndian.Uint32(b[4*i:])) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// lazyModels is a snapshot's models, decoded on demand.
type lazyModels struct {
	mu    sync.Mutex
	idx   snapshotIndex
	cache []*Model
	done  bool  // every model decoded into the table's maps
	err   error // the first model that failed to decode
}

func (l *lazyModels) key(i int) []byte {
	from := 0
	if i > 0 {
		from = u32(l.idx.keyEnd, i-1)
	}
	return l.idx.keys[from:u32(l.idx.keyEnd, i)]
}

func (l *lazyModels) find(t *Table, key string) *Model {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return t.index[key]
	}
	n := l.idx.nKeys
	i := sort.Search(n, func(i int) bool { return string(l.key(i)) >= key })
	if i == n || string(l.key(i)) != key {
		return nil
	}
	return l.model(u32(l.idx.keyModel, i))
}

// span is model i's bytes in the stream.
func (l *lazyModels) span(i int) []byte {
	from := len(l.idx.prefix)
	if i > 0 {
		from = u32(l.idx.modelEnd, i-1)
	}
	return l.idx.stream[from:u32(l.idx.modelEnd, i)]
}

// model decodes model i (l.mu held); nil, with l.err set, if it cannot.
func (l *lazyModels) model(i int) *Model {
	if m := l.cache[i]; m != nil {
		return m
	}
	v := l.span(i)
	buf := make([]byte, 0, len(l.idx.prefix)+len(v))
	dec := gob.NewDecoder(bytes.NewReader(append(append(buf, l.idx.prefix...), v...)))
	var zero, m Model
	if err := dec.Decode(&zero); err != nil {
		l.fail(i, err)
		return nil
	}
	if err := dec.Decode(&m); err != nil {
		l.fail(i, err)
		return nil
	}
	l.cache[i] = &m
	return &m
}

func (l *lazyModels) fail(i int, err error) {
	if l.err == nil {
		l.err = fmt.Errorf("price snapshot: model %d is unreadable (%v); costctl pricing update --reset removes the snapshot", i, err)
	}
}

// materialize decodes every model into t's maps, keyed as when the
// snapshot was written.
func (l *lazyModels) materialize(t *Table) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	t.models = make(map[string]*Model, len(l.cache))
	t.index = make(map[string]*Model, l.idx.nKeys)
	// One decoder over the whole stream: a decoder per model would compile
	// the types each time.
	dec := gob.NewDecoder(bytes.NewReader(l.idx.stream))
	var zero Model
	err := dec.Decode(&zero)
	vals := make([]Model, len(l.cache))
	for i := range l.cache {
		if err != nil {
			l.fail(i, err)
			break
		}
		if l.cache[i] != nil {
			// Decoded already (a lookup holds it): skip its bytes.
			err = dec.Decode(&zero)
			zero = Model{}
			continue
		}
		if err = dec.Decode(&vals[i]); err == nil {
			l.cache[i] = &vals[i]
		}
	}
	for _, m := range l.cache {
		if m != nil {
			t.models[m.Name] = m
		}
	}
	for k := 0; k < l.idx.nKeys; k++ {
		if m := l.cache[u32(l.idx.keyModel, k)]; m != nil {
			t.index[string(l.key(k))] = m
		}
	}
	l.done = true
}

// lazyErr is the error of a snapshot model that could not be decoded.
func (t *Table) lazyErr() error {
	if t.lazy == nil {
		return nil
	}
	t.lazy.mu.Lock()
	defer t.lazy.mu.Unlock()
	return t.lazy.err
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
	ms := t.Models()
	info.Models = len(ms)
	pos := make(map[*Model]int, len(ms))
	byName := make(map[string]int, len(ms))
	var stream bytes.Buffer
	enc := gob.NewEncoder(&stream)
	if err := enc.Encode(Model{}); err != nil {
		return nil, fmt.Errorf("price snapshot: %w", err)
	}
	prefix := stream.Len()
	modelEnd := make([]uint32, len(ms))
	for i, m := range ms {
		if err := enc.Encode(m); err != nil {
			return nil, fmt.Errorf("price snapshot: %s: %w", m.Name, err)
		}
		modelEnd[i] = uint32(stream.Len())
		pos[m], byName[m.Name] = i, i
	}
	keys := make([]string, 0, len(t.index))
	for k := range t.index {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kb bytes.Buffer
	var keyEnd, keyModel []uint32
	for _, k := range keys {
		m := t.index[k]
		i, ok := pos[m]
		if !ok {
			if i, ok = byName[m.Name]; !ok {
				continue
			}
		}
		kb.WriteString(k)
		keyEnd = append(keyEnd, uint32(kb.Len()))
		keyModel = append(keyModel, uint32(i))
	}
	ij, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("price snapshot: %w", err)
	}
	if stream.Len() > math.MaxUint32/2 {
		return nil, errors.New("price snapshot: table too large")
	}
	var body bytes.Buffer
	le := func(v any) { _ = binary.Write(&body, binary.LittleEndian, v) }
	le([]uint32{uint32(len(keyEnd)), uint32(len(ms)), uint32(len(ij)), uint32(kb.Len()), uint32(prefix), uint32(stream.Len())})
	body.Write(ij)
	le(keyEnd)
	le(keyModel)
	le(modelEnd)
	body.Write(kb.Bytes())
	body.Write(stream.Bytes())
	out := make([]byte, 0, len(snapshotMagic)+9+body.Len())
	out = append(out, snapshotMagic...)
	out = fmt.Appendf(out, "%08x\n", crc32.Checksum(body.Bytes(), castagnoli))
	return append(out, body.Bytes()...), nil
}

// DecodeSnapshot reads a snapshot file's bytes, checking its checksum. The
// table reads its index and models from data where they lie: data must not
// change after.
func DecodeSnapshot(data []byte) (*Table, SnapshotInfo, error) {
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		if bytes.HasPrefix(data, []byte(snapshotMagicPrefix)) {
			line, _, _ := bytes.Cut(data[len(snapshotMagicPrefix):], []byte("\n"))
			return nil, SnapshotInfo{}, fmt.Errorf("snapshot format %.10q is not this costctl's (format 3): write it again with costctl pricing update --from SOURCE", line)
		}
		return nil, SnapshotInfo{}, errors.New("not a costctl price snapshot")
	}
	rest := data[len(snapshotMagic):]
	if len(rest) < 9+24 || rest[8] != '\n' {
		return nil, SnapshotInfo{}, errors.New("checksum mismatch: the snapshot is damaged (truncated)")
	}
	want, err := strconv.ParseUint(string(rest[:8]), 16, 32)
	body := rest[9:]
	if err != nil || uint32(want) != crc32.Checksum(body, castagnoli) {
		return nil, SnapshotInfo{}, errors.New("checksum mismatch: the snapshot is damaged")
	}
	var h [6]int
	for i := range h {
		h[i] = u32(body, i)
	}
	nKeys, nModels, infoLen, keysLen, prefixLen, streamLen := h[0], h[1], h[2], h[3], h[4], h[5]
	if 24+infoLen+8*nKeys+4*nModels+keysLen+streamLen != len(body) || prefixLen > streamLen {
		return nil, SnapshotInfo{}, errors.New("unreadable snapshot: sections do not add up")
	}
	p := body[24:]
	take := func(n int) []byte { b := p[:n:n]; p = p[n:]; return b }
	var info SnapshotInfo
	if err := json.Unmarshal(take(infoLen), &info); err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("unreadable snapshot: %v", err)
	}
	idx := snapshotIndex{nKeys: nKeys, nModels: nModels, keyEnd: take(4 * nKeys), keyModel: take(4 * nKeys), modelEnd: take(4 * nModels), keys: take(keysLen)}
	idx.stream = take(streamLen)
	idx.prefix = idx.stream[:prefixLen]
	if err := idx.check(); err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("unreadable snapshot: %v", err)
	}
	l := &lazyModels{idx: idx, cache: make([]*Model, nModels)}
	t := &Table{AsOf: info.AsOf, lazy: l}
	t.Overrides = []string{"snapshot of " + info.From + " taken " + info.Taken.UTC().Format("2006-01-02")}
	return t, info, nil
}

// check validates the index's offsets (so that a lookup cannot slice out
// of range).
func (x *snapshotIndex) check() error {
	prev := len(x.prefix)
	for i := 0; i < x.nModels; i++ {
		e := u32(x.modelEnd, i)
		if e < prev || e > len(x.stream) {
			return errors.New("model offsets out of range")
		}
		prev = e
	}
	prev = 0
	for i := 0; i < x.nKeys; i++ {
		e, m := u32(x.keyEnd, i), u32(x.keyModel, i)
		if e < prev || e > len(x.keys) || m >= x.nModels {
			return errors.New("index out of range")
		}
		prev = e
	}
	return nil
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
		tmp.Close() // the write error is returned; the file is removed next
		return removeTemp(tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return removeTemp(tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return removeTemp(tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return removeTemp(tmp.Name(), err)
	}
	return nil
}

// removeTemp removes the temporary file of a failed WriteSnapshot and
// returns err, saying so when the file could not be removed: no stray file
// is left unmentioned.
func removeTemp(name string, err error) error {
	if rmErr := os.Remove(name); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		return fmt.Errorf("%w (and the temporary file %s is left behind: %v)", err, name, rmErr)
	}
	return err
}

// FromSource merges a price source over the built-in table, validating all
// of it; it returns the table, how many models the source priced and the
// warnings the merge raised (prices that look like the wrong unit).
func FromSource(name string, data []byte) (*Table, int, []string, error) {
	return FromSourceAt(name, data, time.Now())
}

// FromSourceAt is FromSource with the date that picks a dated source's
// prices in force (genai-prices).
func FromSourceAt(name string, data []byte, now time.Time) (*Table, int, []string, error) {
	t, err := Default()
	if err != nil {
		return nil, 0, nil, err
	}
	warns, err := t.MergeWarnAt(name, data, now)
	if err != nil {
		return nil, 0, nil, err
	}
	n := 0
	t.all()
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
	Field string  `json:"field"`      // input, cached_input, cache_write_5m, cache_write_1h, output, batch_input, batch_output; a long-context tier's with _above_<N>k (input_above_272k)
	Old   string  `json:"old_per_1m"` // "" when the old table has no such price (a new long-context tier)
	New   string  `json:"new_per_1m"` // "" when the new table has none
	Pct   float64 `json:"change_pct"` // (new − old) / old × 100; 0 when old is 0 or either is missing
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
	a.all()
	b.all()
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
		d.Changed = append(d.Changed, diffRates(name, "", &ma.Rates, &mb.Rates)...)
		// Long-context tiers, matched by threshold; a tier only one side
		// has lists its prices against "" (none).
		for _, above := range tierThresholds(ma, mb) {
			ra, rb := tierAt(ma, above), tierAt(mb, above)
			d.Changed = append(d.Changed, diffRates(name, "_above_"+tokensK(above), ra, rb)...)
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

// diffRates lists the prices that differ between a and b (either nil: a
// tier that side does not have), each field named with suffix.
func diffRates(model, suffix string, a, b *Rates) []PriceChange {
	var out []PriceChange
	for _, f := range priceFields {
		switch {
		case a != nil && b != nil:
			oa, ob := f.get(*a), f.get(*b)
			if oa == ob || !f.listed(*a) && !f.listed(*b) {
				continue
			}
			pct := 0.0
			if oa != 0 {
				pct = math.Round((float64(ob)-float64(oa))/float64(oa)*1000) / 10
			}
			out = append(out, PriceChange{Model: model, Field: f.name + suffix, Old: oa.Per1M(), New: ob.Per1M(), Pct: pct})
		case a != nil && f.listed(*a):
			out = append(out, PriceChange{Model: model, Field: f.name + suffix, Old: f.get(*a).Per1M()})
		case b != nil && f.listed(*b):
			out = append(out, PriceChange{Model: model, Field: f.name + suffix, New: f.get(*b).Per1M()})
		}
	}
	return out
}

// tierThresholds is the sorted union of a's and b's long-context thresholds.
func tierThresholds(a, b *Model) []int64 {
	var out []int64
	for _, m := range []*Model{a, b} {
		for _, lc := range m.LongContext {
			if i, found := slices.BinarySearch(out, lc.AboveTokens); !found {
				out = slices.Insert(out, i, lc.AboveTokens)
			}
		}
	}
	return out
}

// tierAt is m's long-context tier at threshold above, or nil.
func tierAt(m *Model, above int64) *Rates {
	for i := range m.LongContext {
		if m.LongContext[i].AboveTokens == above {
			return &m.LongContext[i].Rates
		}
	}
	return nil
}

// tokensK writes a threshold as LiteLLM's keys do: 272000 → "272k".
func tokensK(n int64) string {
	if n%1000 == 0 {
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// Implausible says why next should not replace cur, or "" when it may: a
// source that leaves out most of the models cur prices, or that changes most
// input or output prices by more than 10× (a unit mistake), is refused.
func Implausible(cur, next *Table, sourceModels int) string {
	cur.all()
	next.all()
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
