package tokenizer

import (
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Character classes used by the split patterns. Whitespace is Unicode
// White_Space (what \s means in the regex crate used by tiktoken); letters,
// numbers and marks are the Unicode general categories \p{L}, \p{N} and
// \p{M} (Go's unicode tables, Unicode 15.0).
const (
	cLetter  uint8 = 1 << iota // \p{L}
	cNumber                    // \p{N}
	cSpace                     // \s
	cNewline                   // \r or \n
	cUpper                     // o200k [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cLower                     // o200k [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

func computeClass(r rune) uint8 {
	var c uint8
	switch {
	case unicode.IsLetter(r):
		c |= cLetter
		if unicode.Is(unicode.Lu, r) || unicode.Is(unicode.Lt, r) {
			c |= cUpper
		} else if unicode.Is(unicode.Ll, r) {
			c |= cLower
		} else { // Lm, Lo
			c |= cUpper | cLower
		}
	case unicode.IsMark(r):
		c |= cUpper | cLower
	case unicode.IsNumber(r):
		c |= cNumber
	case unicode.Is(unicode.White_Space, r):
		c |= cSpace
		if r == '\r' || r == '\n' {
			c |= cNewline
		}
	}
	return c
}

var asciiClass = func() (t [128]uint8) {
	for r := rune(0); r < 128; r++ {
		t[r] = computeClass(r)
	}
	return
}()

// Class tables for the BMP are filled lazily, one 256-rune page at a time,
// so that start-up does not pay for the whole table and hot non-ASCII
// scripts hit a plain array load.
var bmpPages [256]atomic.Pointer[[256]uint8]

func classOfRune(r rune) uint8 {
	if r < 0x10000 {
		p := bmpPages[r>>8].Load()
		if p == nil {
			var t [256]uint8
			base := r &^ 0xff
			for i := range t {
				t[i] = computeClass(base + rune(i))
			}
			p = &t
			bmpPages[r>>8].Store(p)
		}
		return p[r&0xff]
	}
	return computeClass(r)
}

// classAt returns the class of the rune starting at s[i] and its size.
// s must be valid UTF-8 and i < len(s).
func classAt(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	return classOfRune(r), size
}

// foldEq reports whether r matches the ASCII lower-case letter l under the
// regex crate's Unicode simple case folding ((?i) in the split patterns):
// besides upper case, 's' also matches U+017F LATIN SMALL LETTER LONG S.
func foldEq(r rune, l byte) bool {
	if r < utf8.RuneSelf {
		return byte(r)|0x20 == l
	}
	return l == 's' && r == 0x17F
}

// contraction returns the byte length of a contraction ('s 't 're 've 'm
// 'll 'd) starting at s[i] (which must be an apostrophe), or 0. ci selects the case
// insensitive form (cl100k, o200k).
func contraction(s string, i int, ci bool) int {
	j := i + 1
	if j >= len(s) {
		return 0
	}
	var r1 rune
	var w1 int
	if s[j] < utf8.RuneSelf {
		r1, w1 = rune(s[j]), 1
	} else if ci {
		r1, w1 = utf8.DecodeRuneInString(s[j:])
	} else {
		return 0
	}
	eq := func(r rune, l byte) bool {
		if ci {
			return foldEq(r, l)
		}
		return r == rune(l)
	}
	if eq(r1, 's') || eq(r1, 't') || eq(r1, 'm') || eq(r1, 'd') {
		return 1 + w1
	}
	k := j + w1
	if k >= len(s) || s[k] >= utf8.RuneSelf {
		return 0
	}
	r2 := rune(s[k])
	switch {
	case eq(r1, 'r') && eq(r2, 'e'), eq(r1, 'v') && eq(r2, 'e'), eq(r1, 'l') && eq(r2, 'l'):
		return 3
	}
	return 0
}

// splitFunc returns the end of the pre-token (regex match) starting at i
// (i < len(s); end > i) and the end of the bytes it examined to decide
// (far >= end, not counting the one rune at which a run stops): the next
// call starts at end, so far-end bytes are scanned again. The callers add
// far-i to work.pretok; tests bound that sum by a small multiple of the
// input length, which no backtracking that rescans a run per pre-token
// could meet.
type splitFunc func(s string, i int) (end, far int)

// at is the result of a split that examined nothing beyond its end.
func at(end int) (int, int) { return end, end }

// runEnd returns the end of the run of runes starting at i whose class
// intersects mask.
func runEnd(s string, i int, mask uint8) int {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiClass[c]&mask == 0 {
				return i
			}
			i++
			continue
		}
		cl, w := classAt(s, i)
		if cl&mask == 0 {
			return i
		}
		i += w
	}
	return i
}

// punctRunEnd returns the end of the run of [^\s\p{L}\p{N}] starting at i.
func punctRunEnd(s string, i int) int {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiClass[c]&(cSpace|cLetter|cNumber) != 0 {
				return i
			}
			i++
			continue
		}
		cl, w := classAt(s, i)
		if cl&(cSpace|cLetter|cNumber) != 0 {
			return i
		}
		i += w
	}
	return i
}

func newlineRunEnd(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func newlineSlashRunEnd(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n' || s[i] == '/') {
		i++
	}
	return i
}

// spaceTail handles the whitespace alternatives shared by cl100k and o200k:
//
//	\s*[\r\n]+ | \s+(?!\S) | \s+
//
// s[i] is whitespace. It returns the end and how far it scanned (the
// whole whitespace run).
func spaceTail(s string, i int) (end, far int) {
	// Scan the whitespace run, remembering the last newline and the
	// start of the last rune.
	j := i
	lastNL := -1
	lastStart := i
	for j < len(s) {
		c := s[j]
		if c < utf8.RuneSelf {
			if asciiClass[c]&cSpace == 0 {
				break
			}
			if c == '\n' || c == '\r' {
				lastNL = j
			}
			lastStart = j
			j++
			continue
		}
		cl, w := classAt(s, j)
		if cl&cSpace == 0 {
			break
		}
		lastStart = j
		j += w
	}
	if lastNL >= 0 {
		return lastNL + 1, j // \s*[\r\n]+ backtracks to the last newline
	}
	if j == len(s) {
		return j, j // \s+(?!\S) at the end of the text
	}
	if lastStart > i {
		return lastStart, j // \s+(?!\S): leave the last space for the next word
	}
	return j, j // \s+ (a single whitespace rune)
}

// splitCL100K implements
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// (tiktoken >= 0.8 writes it with possessive quantifiers and
// `\s++$|\s*[\r\n]|\s+(?!\S)|\s`; the only difference is that a trailing
// whitespace run at the very end of the text that contains a newline is one
// piece instead of being cut after its last newline. No cl100k token made
// of whitespace contains a newline without ending in one (checked over the
// whole vocabulary while writing this), so no token can span the cut and
// the two produce the same tokens.)
func splitCL100K(s string, i int) (end, far int) {
	c0 := s[i]
	var cl uint8
	w0 := 1
	if c0 < utf8.RuneSelf {
		cl = asciiClass[c0]
		if c0 == '\'' {
			if n := contraction(s, i, true); n > 0 {
				return at(i + n)
			}
		}
	} else {
		cl, w0 = classAt(s, i)
	}
	if cl&cLetter != 0 {
		return at(runEnd(s, i+w0, cLetter))
	}
	if cl&(cNewline|cNumber) == 0 && i+w0 < len(s) {
		if c1, w1 := classAt(s, i+w0); c1&cLetter != 0 {
			return at(runEnd(s, i+w0+w1, cLetter))
		}
	}
	if cl&cNumber != 0 {
		return at(digitGroupEnd(s, i+w0))
	}
	if cl&(cSpace|cLetter|cNumber) == 0 {
		return at(newlineRunEnd(s, punctRunEnd(s, i+w0)))
	}
	if c0 == ' ' && i+1 < len(s) {
		if c1, w1 := classAt(s, i+1); c1&(cSpace|cLetter|cNumber) == 0 {
			return at(newlineRunEnd(s, punctRunEnd(s, i+1+w1)))
		}
	}
	return spaceTail(s, i)
}

// o200kWord tries, at start position p, the two case-aware word
// alternatives' core (without the optional leading char and contraction):
//
//	alt 1: [U]*[Lw]+     alt 2: [U]+[Lw]*
//
// It returns the match end or -1, and how far it scanned.
func o200kWord(s string, p int, alt2 bool) (end, far int) {
	q := p
	lastBothEnd := -1
	for q < len(s) {
		c, w := classAt(s, q)
		if c&cUpper == 0 {
			break
		}
		if c&cLower != 0 {
			lastBothEnd = q + w
		}
		q += w
	}
	if !alt2 {
		if q < len(s) {
			if c, w := classAt(s, q); c&cLower != 0 {
				return at(runEnd(s, q+w, cLower))
			}
		}
		// Backtrack [U]* to the last rune that is also in [Lw].
		return lastBothEnd, q
	}
	if q == p {
		return -1, q
	}
	return at(runEnd(s, q, cLower))
}

// splitO200K implements
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// with the backtracking order of a Perl-style engine.
func splitO200K(s string, i int) (end, far int) {
	cl, w0 := classAt(s, i)
	// Candidate starts of the letter part: after the optional leading
	// character first (greedy ?), then without it.
	var ps [2]int
	np := 0
	if cl&(cLetter|cNumber|cNewline) == 0 {
		if i+w0 < len(s) {
			ps[np] = i + w0
			np++
		}
		if cl&cUpper != 0 { // a mark can also start the letter part
			ps[np] = i
			np++
		}
	} else if cl&cLetter != 0 {
		ps[np] = i
		np++
	}
	far = i
	for alt := 0; alt < 2; alt++ {
		for k := 0; k < np; k++ {
			e, f := o200kWord(s, ps[k], alt == 1)
			far = max(far, f)
			if e >= 0 {
				if e < len(s) && s[e] == '\'' {
					e += contraction(s, e, true)
				}
				return e, max(far, e)
			}
		}
	}
	// (The failed attempts above scanned no further than i+w0.)
	if cl&cNumber != 0 {
		return at(digitGroupEnd(s, i+w0))
	}
	// [\r\n/]* after the punctuation run: after newlines, more slashes
	// can follow ("///\n\n/x" -> "///\n\n/", "x").
	if cl&(cSpace|cLetter|cNumber) == 0 {
		return at(newlineSlashRunEnd(s, punctRunEnd(s, i+w0)))
	}
	if s[i] == ' ' && i+1 < len(s) {
		if c1, w1 := classAt(s, i+1); c1&(cSpace|cLetter|cNumber) == 0 {
			return at(newlineSlashRunEnd(s, punctRunEnd(s, i+1+w1)))
		}
	}
	return spaceTail(s, i)
}

// splitR50K implements the GPT-2 pattern shared by r50k_base and p50k_base:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitR50K(s string, i int) (end, far int) {
	c0 := s[i]
	if c0 == '\'' {
		if n := contraction(s, i, false); n > 0 {
			return at(i + n)
		}
	}
	cl, w0 := classAt(s, i)
	j := i
	if c0 == ' ' && i+1 < len(s) {
		c1, w1 := classAt(s, i+1)
		cl, w0, j = c1, w1, i+1
	}
	switch {
	case cl&cLetter != 0:
		return at(runEnd(s, j+w0, cLetter))
	case cl&cNumber != 0:
		return at(runEnd(s, j+w0, cNumber))
	case cl&cSpace == 0:
		return at(punctRunEnd(s, j+w0))
	}
	// Whitespace: \s+(?!\S) | \s+
	k := i
	lastStart := i
	for k < len(s) {
		c, w := classAt(s, k)
		if c&cSpace == 0 {
			break
		}
		lastStart = k
		k += w
	}
	if k == len(s) {
		return k, k
	}
	if lastStart > i {
		return lastStart, k
	}
	return k, k
}

// digitGroupEnd ends \p{N}{1,3} whose first digit ends at j: up to two
// more digits.
func digitGroupEnd(s string, j int) int {
	for k := 0; k < 2 && j < len(s); k++ {
		c, w := classAt(s, j)
		if c&cNumber == 0 {
			break
		}
		j += w
	}
	return j
}
