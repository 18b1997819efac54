package tokenizer

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReplaceInvalidUTF8Python(t *testing.T) {
	// Expected values are Python's bytes.decode("utf-8", errors="replace").
	cases := []struct {
		in, want string
	}{
		{"\xe2\x82", "\ufffd"},
		{"\xff\xff", "\ufffd\ufffd"},
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf0\x9f\x98x", "\ufffdx"},
		{"a\x80b", "a\ufffdb"},
		{"\xc0\xaf", "\ufffd\ufffd"},                     // overlong
		{"\xe0\x80\x80", "\ufffd\ufffd\ufffd"},           // overlong 3-byte
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"}, // > U+10FFFF
		{"\xf5\x80", "\ufffd\ufffd"},
		{"\xe2\x82\xac", "€"},
		{"\xe2\x82\xe2\x82\xac", "\ufffd€"},
		{"\xf0\x9f\x98\x80", "😀"},
		{"\xf1\x80\x80", "\ufffd"},
		{"\xc2", "\ufffd"},
		{"\xc2\xc2\xa0", "\ufffd\u00a0"},
		{"\xed\x9f\xbf", "\ud7ff"},
		{"", ""},
	}
	for _, c := range cases {
		got, rep := ReplaceInvalidUTF8([]byte(c.in))
		if got != c.want {
			t.Errorf("ReplaceInvalidUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
		if rep != (c.in != c.want) {
			t.Errorf("ReplaceInvalidUTF8(%q) replaced = %v", c.in, rep)
		}
	}
}

func TestCountBytesInvalid(t *testing.T) {
	e := mustGet(t, "cl100k_base")
	for _, in := range []string{"\xe2\x82 hi", "\xff\xff", "ok", "\xed\xa0\x80abc"} {
		want, _ := ReplaceInvalidUTF8([]byte(in))
		n, inv := e.CountBytes([]byte(in))
		if n != e.Count(want) || inv != (want != in) {
			t.Errorf("CountBytes(%q) = %d,%v; want %d,%v", in, n, inv, e.Count(want), want != in)
		}
		if e.Count(in) != n {
			t.Errorf("Count(%q) must replace invalid UTF-8 the same way", in)
		}
	}
}

// chunkedReader returns the data in reads of the given sizes (cycled).
type chunkedReader struct {
	data  []byte
	sizes []int
	k     int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := r.sizes[r.k%len(r.sizes)]
	r.k++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func withSmallChunks(t *testing.T, rs, cs int) {
	oldR, oldC := readSize, chunkSize
	readSize, chunkSize = rs, cs
	t.Cleanup(func() { readSize, chunkSize = oldR, oldC })
}

func streamCorpus(r *rand.Rand, atoms int) []byte {
	var b bytes.Buffer
	invalid := []string{"\xe2\x82", "\xff", "\xed\xa0\x80", "\xf0\x9f\x98", "\xc2", "\x80\x80"}
	for i := 0; i < atoms; i++ {
		switch r.IntN(10) {
		case 0:
			b.WriteString(invalid[r.IntN(len(invalid))])
		case 1:
			b.WriteString(strings.Repeat(fuzzAtoms[r.IntN(len(fuzzAtoms))], 1+r.IntN(30)))
		default:
			b.WriteString(fuzzAtoms[r.IntN(len(fuzzAtoms))])
		}
	}
	return b.Bytes()
}

func TestCountReaderMatchesCount(t *testing.T) {
	atoms := 6000
	if testing.Short() || raceEnabled {
		atoms = 1500
	}
	r := rand.New(rand.NewPCG(3, 4))
	corpora := [][]byte{
		streamCorpus(r, atoms),
		[]byte(strings.Repeat("hello world, this is prose.\nAnd code: x := f(1, 22, 333)\n", atoms/20)),
		[]byte(strings.Repeat("a", 5000) + " b " + strings.Repeat("😀", 900) + "\n" + strings.Repeat("7", 1001)),
	}
	for _, name := range Names() {
		e := mustGet(t, name)
		for ci, data := range corpora {
			want, wantInv := e.CountBytes(data)
			for _, cfg := range [][2]int{{1, 7}, {3, 64}, {7, 100}, {64, 256}, {1000, 4096}, {1 << 20, 1 << 20}} {
				withSmallChunks(t, cfg[0], cfg[1])
				for _, sizes := range [][]int{{1}, {2, 3}, {5, 1, 13}, {4096}, {997}} {
					got, inv, err := e.CountReader(&chunkedReader{data: data, sizes: sizes})
					if err != nil || got != int64(want) || inv != wantInv {
						t.Fatalf("%s corpus %d cfg %v sizes %v: CountReader = %d,%v,%v want %d,%v",
							name, ci, cfg, sizes, got, inv, err, want, wantInv)
					}
				}
			}
		}
	}
}

// Every split point of a short text, with invalid and multi-byte runes
// right at the read-buffer edges.
func TestCountReaderEverySplitPoint(t *testing.T) {
	texts := []string{
		"ab cd\xe2\x82 ef\xf0\x9f\x98 gh😀 ij\xed\xa0\x80 kl é\u0301 mn\n12 34x5 '\xff's ok",
		"x\n\ny  \n z\r\n\r\nw //\n/q 1a2b3c",
	}
	withSmallChunks(t, 1, 2)
	for _, name := range Names() {
		e := mustGet(t, name)
		for _, text := range texts {
			data := []byte(text)
			want, wantInv := e.CountBytes(data)
			for k := 1; k < len(data); k++ {
				got, inv, err := e.CountReader(&chunkedReader{data: data, sizes: []int{k, len(data)}})
				if err != nil || got != int64(want) || inv != wantInv {
					t.Fatalf("%s split %d: got %d,%v,%v want %d,%v", name, k, got, inv, err, want, wantInv)
				}
			}
		}
	}
}

func TestCountReaderError(t *testing.T) {
	e := mustGet(t, "o200k_base")
	boom := errors.New("boom")
	_, _, err := e.CountReader(io.MultiReader(strings.NewReader("hello world "), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	n, inv, err := e.CountReader(strings.NewReader(""))
	if n != 0 || inv || err != nil {
		t.Fatalf("empty: %d %v %v", n, inv, err)
	}
}
