package tokenizer

import (
	"unicode/utf8"
)

// invalidPrefix returns the length of the maximal invalid subpart of a
// UTF-8 sequence starting at b[0], where b does not start with a valid
// encoded rune. It follows the Unicode "substitution of maximal subparts"
// practice implemented by Python's bytes.decode("utf-8", "replace"): a
// lead byte together with the continuation bytes that could still begin a
// valid sequence is replaced by a single U+FFFD.
func invalidPrefix(b []byte) int {
	c := b[0]
	var lo, hi byte = 0x80, 0xBF
	need := 0
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1 // 0x80..0xC1, 0xF5..0xFF: never a lead byte
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		x := b[i]
		if x < lo || x > hi {
			return i
		}
		lo, hi = 0x80, 0xBF
	}
	// Either truncated by the end of b, or (impossible for an invalid
	// input) complete.
	return i
}

// ReplaceInvalidUTF8 converts b to a valid UTF-8 string, replacing every
// maximal invalid subpart with one U+FFFD exactly like Python's
// bytes.decode("utf-8", errors="replace"). replaced reports whether any
// replacement happened.
func ReplaceInvalidUTF8(b []byte) (s string, replaced bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return string(appendReplaced(make([]byte, 0, len(b)+8), b)), true
}

// appendReplaced appends the Python-replaced form of b to dst.
func appendReplaced(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			j := i + 1
			for j < len(b) && b[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, b[i:j]...)
			i = j
			continue
		}
		_, size := utf8.DecodeRune(b[i:])
		if size > 1 {
			dst = append(dst, b[i:i+size]...)
			i += size
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += invalidPrefix(b[i:])
	}
	return dst
}

// validString returns s unchanged when it is valid UTF-8, else the
// Python-replaced form.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendReplaced(nil, []byte(s)))
}
