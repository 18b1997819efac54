package tokenizer

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzReference compares Encode and Count with the reference for valid
// UTF-8 inputs of moderate length (the reference is quadratic).
func fuzzReference(t *testing.T, name, s string) {
	if !utf8.ValidString(s) || len(s) > 400 {
		t.Skip()
	}
	e := mustGet(t, name)
	want := reference(t, name).EncodeOrdinary(s)
	got := e.Encode(s)
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s Encode(%q)\n got  %v\n want %v", name, s, got, want)
	}
	if n := e.Count(s); n != len(want) {
		t.Fatalf("%s Count(%q) = %d, want %d", name, s, n, len(want))
	}
}

func addSeeds(f *testing.F) {
	for _, s := range cornerCases {
		f.Add(s)
	}
	for _, v := range vectors {
		f.Add(v.text)
	}
}

func FuzzCountCl100k(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) { fuzzReference(t, "cl100k_base", s) })
}

func FuzzCountO200k(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) { fuzzReference(t, "o200k_base", s) })
}

func FuzzCountR50k(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		fuzzReference(t, "r50k_base", s)
		fuzzReference(t, "p50k_base", s)
	})
}

// FuzzCountReader checks streaming against CountBytes on arbitrary bytes
// (invalid UTF-8 included) with small buffers.
func FuzzCountReader(f *testing.F) {
	f.Add([]byte("ab cd\xe2\x82 ef\xf0\x9f\x98 gh"), uint8(3))
	f.Add([]byte("x\n\ny  \n z\r\n//\n/q 1a2b3c"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, k uint8) {
		if len(b) > 1<<14 {
			t.Skip()
		}
		oldR, oldC := readSize, chunkSize
		readSize, chunkSize = 1+int(k%16), 2+int(k%32)
		defer func() { readSize, chunkSize = oldR, oldC }()
		e := mustGet(t, "o200k_base")
		want, wantInv := e.CountBytes(b)
		got, inv, err := e.CountReader(&chunkedReader{data: b, sizes: []int{1 + int(k%7), 3}})
		if err != nil || got != int64(want) || inv != wantInv {
			t.Fatalf("CountReader = %d,%v,%v want %d,%v", got, inv, err, want, wantInv)
		}
	})
}
