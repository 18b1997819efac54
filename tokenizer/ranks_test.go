package tokenizer

import (
	"bytes"
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
