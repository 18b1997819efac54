package tokenizer

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/costctl/costctl/tokenizer/internal/rankfile"
	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// TestRanksUpToDate regenerates ranks/*.bin from the loader's .tiktoken
// files and checks the committed files are identical (run
// `go generate ./tokenizer` if not). It also checks the fast in-package
// parser of .tiktoken files against the generated tables.
func TestRanksUpToDate(t *testing.T) {
	parsed := map[string][][]byte{}
	for _, f := range rankfile.Files {
		data, err := assets.Assets.ReadFile(f.Source)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := rankfile.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		parsed[f.Name] = toks
		want, err := rankfile.Encode(toks, parsed[f.Base])
		if err != nil {
			t.Fatal(err)
		}
		got, err := ranksFS.ReadFile("ranks/" + f.Name + ".bin")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ranks/%s.bin is stale (err=%v): run go generate ./tokenizer", f.Name, err)
		}
		e := mustGet(t, f.Name)
		pv, err := parseTiktoken(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(pv.off) != len(e.v.off) || pv.n != e.v.n || !bytes.Equal(pv.blob, e.v.blob) {
			t.Fatalf("%s: parseTiktoken disagrees with the generated table", f.Name)
		}
		for r, tok := range toks {
			if tok == nil {
				continue
			}
			if got := e.v.rank(string(tok)); got != r {
				t.Fatalf("%s: rank(%q) = %d, want %d", f.Name, tok, got, r)
			}
		}
	}
}

var updateIndex = flag.Bool("update-index", false, "rewrite ranks/*.idx from ranks/*.bin")

// TestIndexUpToDate checks the precomputed hash tables ranks/*.idx against
// the ones newVocab would build from ranks/*.bin (rewrite them with
// go test ./tokenizer -run TestIndexUpToDate -update-index), and that a
// vocab loaded from an index answers like one built by hashing.
func TestIndexUpToDate(t *testing.T) {
	for _, s := range specs {
		blob, off, err := loadTokens(s.name, s.base)
		if err != nil {
			t.Fatal(err)
		}
		want := encodeIndex(buildSlots(blob, off))
		path := filepath.Join("ranks", s.name+".idx")
		if *updateIndex {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := ranksFS.ReadFile("ranks/" + s.name + ".idx")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s is stale (err=%v): go test ./tokenizer -run TestIndexUpToDate -update-index", path, err)
		}
		built := newVocab(blob, off)
		loaded := mustGet(t, s.name).v
		if built.n != loaded.n || built.maxLen != loaded.maxLen || !slices.Equal(built.pair, loaded.pair) || !slices.Equal(built.slots, loaded.slots) {
			t.Fatalf("%s: vocab from the index differs from the hashed one", s.name)
		}
		if _, ok := slotsFromIndex(got[:len(got)-4], len(off)-1); ok {
			t.Fatalf("%s: a truncated index was accepted", s.name)
		}
		if _, ok := slotsFromIndex(got, len(off)); ok && slotCount(len(off)) != slotCount(len(off)-1) {
			t.Fatalf("%s: an index for another token count was accepted", s.name)
		}
	}
}
