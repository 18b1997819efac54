// Package tokenizer counts and encodes text with OpenAI's tiktoken BPE
// encodings (cl100k_base, o200k_base, p50k_base, r50k_base), producing the
// same token ids as tiktoken's encode_ordinary.
//
// It uses a hand-written pre-tokenizer that reproduces the backtracking
// semantics of each encoding's split regex, a BPE merge that makes exactly
// tiktoken's choices (lowest rank first, leftmost among equal ranks) —
// tiktoken's own loop on short pieces; long pieces cut between byte pairs
// that are adjacent in no token (no merge can cross such a cut, so random
// text merges as short independent segments), and long segments merged by
// linear merge rounds (runs of one character halve per round) with an
// O(n log n) heap as the exact fallback — and a compact hash table of the
// mergeable ranks parsed directly from the embedded .tiktoken files.
//
// No test times anything: tests count the work done (see type work) and
// bound it linearly; speed is measured by the benchmarks.
package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Encoding is one tiktoken encoding. It is safe for concurrent use.
type Encoding struct {
	name  string
	v     *vocab
	split splitFunc
	pool  sync.Pool // *scratch
}

type encodingSpec struct {
	name  string
	base  string // encoding whose ranks this one extends
	split splitFunc
}

var specs = []encodingSpec{
	{"cl100k_base", "", splitCL100K},
	{"o200k_base", "", splitO200K},
	{"p50k_base", "r50k_base", splitR50K},
	{"r50k_base", "", splitR50K},
}

type lazyEncoding struct {
	once sync.Once
	enc  *Encoding
	err  error
}

var encodings = func() map[string]*lazyEncoding {
	m := make(map[string]*lazyEncoding, len(specs))
	for _, s := range specs {
		m[s.name] = &lazyEncoding{}
	}
	return m
}()

// Names returns the supported encoding names.
func Names() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.name
	}
	return out
}

// Get returns the process-wide encoding with the given name, building it
// on first use. It is safe for concurrent use.
func Get(name string) (*Encoding, error) {
	le, ok := encodings[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unknown encoding %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	le.once.Do(func() {
		for _, s := range specs {
			if s.name == name {
				le.enc, le.err = build(s)
			}
		}
	})
	return le.enc, le.err
}

func build(s encodingSpec) (*Encoding, error) {
	v, err := loadVocab(s.name, s.base)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", s.name, err)
	}
	e := &Encoding{name: s.name, v: v, split: s.split}
	e.pool.New = func() any { return new(scratch) }
	return e, nil
}

// Name returns the encoding's name, e.g. "cl100k_base".
func (e *Encoding) Name() string { return e.name }

// Encode returns the token ids of s exactly as tiktoken's encode_ordinary
// would: special-token text such as "<|endoftext|>" is ordinary text.
// Invalid UTF-8 in s is first replaced as by ReplaceInvalidUTF8.
func (e *Encoding) Encode(s string) []int {
	s = validString(s)
	sc := e.pool.Get().(*scratch)
	out := make([]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		j, far := e.split(s, i)
		sc.work.pretok += int64(far - i)
		out = e.encodePiece(out, s[i:j], sc)
		i = j
	}
	e.pool.Put(sc)
	return out
}

// Count returns len(Encode(s)) without building the slice.
func (e *Encoding) Count(s string) int {
	s = validString(s)
	sc := e.pool.Get().(*scratch)
	n := e.countValid(s, sc)
	e.pool.Put(sc)
	return n
}

// countValid counts valid UTF-8 text.
func (e *Encoding) countValid(s string, sc *scratch) int {
	n := 0
	split := e.split
	scanned := 0 // bytes the pre-tokenizer examined (see splitFunc)
	for i := 0; i < len(s); {
		j, far := split(s, i)
		scanned += far - i
		if j-i == 1 {
			n++
		} else {
			n += e.countPiece(s[i:j], sc)
		}
		i = j
	}
	sc.work.pretok += int64(scanned)
	return n
}

// CountBytes counts b after replacing invalid UTF-8 exactly as Python's
// bytes.decode("utf-8", errors="replace") does. invalid reports whether
// any replacement happened.
func (e *Encoding) CountBytes(b []byte) (n int, invalid bool) {
	sc := e.pool.Get().(*scratch)
	defer e.pool.Put(sc)
	return e.countBytes(b, sc)
}

func (e *Encoding) countBytes(b []byte, sc *scratch) (int, bool) {
	if utf8.Valid(b) {
		// countValid does not retain s.
		return e.countValid(unsafe.String(unsafe.SliceData(b), len(b)), sc), false
	}
	r := appendReplaced(make([]byte, 0, len(b)+16), b)
	return e.countValid(unsafe.String(unsafe.SliceData(r), len(r)), sc), true
}
