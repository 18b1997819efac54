package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The cut table marks exactly the byte pairs adjacent in no token.
func TestCutTable(t *testing.T) {
	for _, name := range Names() {
		v := mustGet(t, name).v
		cut := v.cutTable()
		var in [1 << 16]bool
		for r := 0; r+1 < len(v.off); r++ {
			tok := string(v.token(r))
			for i := 1; i < len(tok); i++ {
				in[uint16(tok[i-1])<<8|uint16(tok[i])] = true
			}
		}
		cuts := 0
		for k := range in {
			s := string([]byte{byte(k >> 8), byte(k)})
			if isCut(cut, s, 1) == in[k] {
				t.Fatalf("%s: isCut(%q) = %v, but the pair is in a token: %v", name, s, !in[k], in[k])
			}
			if !in[k] {
				cuts++
			}
		}
		// Most of the 65536 pairs are in no token (the vocabularies have
		// 2,700–10,500 distinct pairs): random bytes are cut everywhere.
		if cuts < 1<<15 {
			t.Errorf("%s: only %d cut pairs", name, cuts)
		}
	}
}

// idsFromBounds returns the ids of the parts piece[b[i]:b[i+1]].
func idsFromBounds(v *vocab, piece string, b []int32) []int {
	ids := make([]int, 0, len(b))
	for i := 0; i+1 < len(b); i++ {
		ids = append(ids, v.rank(piece[b[i]:b[i+1]]))
	}
	return ids
}

// checkCutPiece compares encodePiece and countPiece on one long piece (cut
// into segments) with the heap reference merging the whole piece uncut.
func checkCutPiece(t *testing.T, e *Encoding, sc *scratch, piece string) bool {
	t.Helper()
	want := idsFromBounds(e.v, piece, refMergeHeap(e.v, piece))
	got := e.encodePiece(nil, piece, sc)
	n := e.countPiece(piece, sc)
	if !slices.Equal(got, want) || n != len(want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: %d-byte piece %.40q...: cut merge differs at token %d (got %d tokens, count %d, want %d)",
			e.Name(), len(piece), piece, i, len(got), n, len(want))
		return false
	}
	return true
}

// Long pieces merged segment by segment equal the whole-piece merge (the
// heap reference, which never cuts), on random pieces over alphabets with
// many cuts (mixed-case letters, arbitrary bytes), few (lower case, base64,
// multi-byte letters) and none (runs), up to 256 KB (16 KB with -short or
// -race), for all encodings.
func TestCutMatchesWholeMerge(t *testing.T) {
	big := 256 << 10
	if testing.Short() || raceEnabled {
		big = 16 << 10
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var bytes256 []string
	for b := 0; b < 256; b++ {
		bytes256 = append(bytes256, string([]byte{byte(b)}))
	}
	alphabets := [][]string{
		strings.Split(letters, ""), strings.Split(letters[:26], ""), strings.Split(letters[26:], ""),
		strings.Split(letters+"0123456789+/", ""), strings.Split("aeiou", ""), bytes256,
		{"é", "Я", "中", "a", "ß", "ก", "Z"}, {" ", "\n", "a", "{", "}"}, fuzzAtoms,
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := mustGet(t, name)
			sc := new(scratch)
			r := rand.New(rand.NewPCG(29, uint64(len(name))))
			for _, al := range alphabets {
				for _, n := range []int{65, 100, 129, 300, 1000, 5000, big} {
					if !checkCutPiece(t, e, sc, randomOver(r, al, n)) {
						break
					}
				}
			}
		})
	}
}

// Long random letters through the whole pipeline against tiktoken (the
// reference): mixed case is one pre-token for cl100k_base, p50k_base and
// r50k_base (o200k_base splits it by case), lower case for all four. The
// lengths cross every limit of the fast paths: the count cache (48 bytes),
// tiktoken's loop (64), the longest token (128), and lengths where the
// whole-piece merge rounds ran out of budget and the heap finished.
func TestDifferentialLongLetters(t *testing.T) {
	lengths := []int{2, 5, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129, 200, 500, 1000, 3000, 10000}
	if testing.Short() || raceEnabled {
		lengths = []int{2, 47, 49, 64, 65, 129, 500, 1500}
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	alphabets := []string{letters, letters[:26], letters[26:], letters + "éßЯжкл"}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := mustGet(t, name)
			r := rand.New(rand.NewPCG(31, uint64(len(name))))
			for _, al := range alphabets {
				atoms := strings.Split(al, "")
				for _, n := range lengths {
					for k := 0; k < 2; k++ {
						if !checkAgainstReference(t, e, randomOver(r, atoms, n)) {
							return
						}
					}
				}
			}
		})
	}
}
