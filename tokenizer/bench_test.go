package tokenizer

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

var (
	corpusOnce sync.Once
	corpus     string
	proseText  string // the prose part alone
)

var tagRE = regexp.MustCompile(`<[^>]*>`)

// benchCorpus builds a ~2 MB mixed code + prose corpus at test time from
// GOROOT: .go files under src/ (deterministic order) interleaved with the
// prose of doc/*.html (tags stripped) and doc/*.md. Nothing is committed.
func benchCorpus(tb testing.TB) string {
	corpusOnce.Do(func() {
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			tb.Skipf("benchmark corpus: go env GOROOT: %v", err)
		}
		root := strings.TrimSpace(string(goroot))
		var code, prose bytes.Buffer
		for _, pat := range []string{"doc/*.html", "doc/*.md"} {
			files, _ := filepath.Glob(filepath.Join(root, pat))
			sort.Strings(files)
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err == nil {
					prose.WriteString(tagRE.ReplaceAllString(string(b), ""))
				}
			}
		}
		var goFiles []string
		filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.Contains(p, "testdata") {
				goFiles = append(goFiles, p)
			}
			return nil
		})
		sort.Strings(goFiles)
		for _, f := range goFiles {
			if code.Len() >= 1<<20 {
				break
			}
			if b, err := os.ReadFile(f); err == nil && len(b) < 64<<10 {
				code.Write(b)
			}
		}
		// Interleave ~16 KB slices of code and prose.
		p, c := prose.String(), code.String()
		var out strings.Builder
		for len(p) > 0 || len(c) > 0 {
			k := min(16<<10, len(c))
			out.WriteString(c[:k])
			c = c[k:]
			k = min(16<<10, len(p))
			out.WriteString(p[:k])
			p = p[k:]
		}
		corpus = strings.ToValidUTF8(out.String(), "\uFFFD")
		proseText = strings.ToValidUTF8(prose.String(), "\uFFFD")
	})
	if len(corpus) < 1<<20 {
		tb.Skip("GOROOT sources not available for the benchmark corpus")
	}
	return corpus
}

// BenchmarkCount compares the fast path with the reference on the same
// corpus (sub-benchmarks fast/reference). The reference gets a 256 KB
// prefix so the run stays short; MB/s is comparable.
func BenchmarkCount(b *testing.B) {
	text := benchCorpus(b)
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustGet(b, name)
		b.Run(name+"/fast", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				e.Count(text)
			}
		})
		b.Run(name+"/fast-encode", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				e.Encode(text)
			}
		})
		ref := reference(b, name)
		small := text[:256<<10]
		small = strings.ToValidUTF8(small[:strings.LastIndexByte(small, '\n')+1], "")
		// The reference is quadratic on long pieces, so it runs on the first
		// 256 KB; the fast counter runs on the same slice beside it, so the
		// ratio compares like with like.
		b.Run(name+"/fast-256k", func(b *testing.B) {
			b.SetBytes(int64(len(small)))
			for b.Loop() {
				e.Count(small)
			}
		})
		b.Run(name+"/reference-256k", func(b *testing.B) {
			b.SetBytes(int64(len(small)))
			for b.Loop() {
				ref.EncodeOrdinary(small)
			}
		})
	}
}

// benchProse returns n bytes of English prose (the GOROOT documents of
// benchCorpus, repeated as needed and cut at a line end).
func benchProse(tb testing.TB, n int) string {
	benchCorpus(tb)
	if len(proseText) < 64<<10 {
		tb.Skip("GOROOT documents not available for the prose input")
	}
	s := strings.Repeat(proseText, n/len(proseText)+1)[:n]
	return s[:strings.LastIndexByte(s, '\n')+1]
}

// BenchmarkAdversarial counts each adversarial input of adversarialInputs
// (1 MB each) and 1 MB of prose for comparison, on cl100k_base and
// o200k_base (MB/s per kind):
//
//	go test ./tokenizer -run XXX -bench Adversarial -benchtime 3x
//
// The tests prove these inputs cost linear work (TestAdversarialWork);
// this is where their speed is measured.
func BenchmarkAdversarial(b *testing.B) {
	inputs := adversarialInputs(1 << 20)
	inputs["prose"] = benchProse(b, 1<<20)
	kinds := slices.Sorted(maps.Keys(inputs))
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustGet(b, name)
		for _, kind := range kinds {
			s := inputs[kind]
			b.Run(name+"/"+kind, func(b *testing.B) {
				b.SetBytes(int64(len(s)))
				for b.Loop() {
					e.Count(s)
				}
			})
		}
	}
}

// BenchmarkCount20MB counts 20 MB without whitespace (base64, like
// minified data) and a 20 MB single pre-token (one letter repeated) on
// o200k_base.
func BenchmarkCount20MB(b *testing.B) {
	inputs := adversarialInputs(20 << 20)
	e := mustGet(b, "o200k_base")
	for _, kind := range []string{"base64", "one-char"} {
		s := inputs[kind]
		b.Run("o200k_base/"+kind, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				e.Count(s)
			}
		})
	}
}

// BenchmarkCountReaderParallel streams a 32 MB input through CountReader
// (all GOMAXPROCS cores).
func BenchmarkCountReaderParallel(b *testing.B) {
	text := benchCorpus(b)
	big := strings.Repeat(text, (32<<20)/len(text)+1)
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustGet(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for b.Loop() {
				if _, _, err := e.CountReader(strings.NewReader(big)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuild measures building each encoding from the embedded rank
// files (what Get pays once per process).
func BenchmarkBuild(b *testing.B) {
	for _, s := range specs {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := build(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
