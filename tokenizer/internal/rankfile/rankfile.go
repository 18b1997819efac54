// Package rankfile converts tiktoken .tiktoken rank files into the compact
// binary form embedded by package tokenizer (see tokenizer/ranks).
//
// Format (all integers little endian):
//
//	"TKR1" | uint32 n | uint32 base | (n-base) x uint8 token length | token bytes
//
// Ranks 0..n-1; a length of 0 marks an unused rank. The first base ranks
// are those of another file (p50k_base extends r50k_base).
package rankfile

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
)

// Parse decodes a .tiktoken file into tokens indexed by rank (nil = gap).
func Parse(data []byte) ([][]byte, error) {
	var toks [][]byte
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		f := bytes.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("rankfile: bad line %q", line)
		}
		tok, err := base64.StdEncoding.DecodeString(string(f[0]))
		if err != nil {
			return nil, err
		}
		r, err := strconv.Atoi(string(f[1]))
		if err != nil {
			return nil, err
		}
		for len(toks) <= r {
			toks = append(toks, nil)
		}
		if toks[r] != nil || len(tok) == 0 || len(tok) > 255 {
			return nil, fmt.Errorf("rankfile: bad token for rank %d", r)
		}
		toks[r] = tok
	}
	return toks, nil
}

// Encode writes toks in the compact format, sharing the first len(base)
// ranks with base when they are identical (base may be nil).
func Encode(toks, base [][]byte) ([]byte, error) {
	nb := 0
	if base != nil {
		if len(base) > len(toks) {
			return nil, fmt.Errorf("rankfile: base longer than vocabulary")
		}
		for i, t := range base {
			if !bytes.Equal(t, toks[i]) {
				return nil, fmt.Errorf("rankfile: rank %d differs from base", i)
			}
		}
		nb = len(base)
	}
	var out bytes.Buffer
	out.WriteString("TKR1")
	binary.Write(&out, binary.LittleEndian, uint32(len(toks))) // a uint32 into a bytes.Buffer cannot fail
	binary.Write(&out, binary.LittleEndian, uint32(nb))        // likewise
	for _, t := range toks[nb:] {
		out.WriteByte(byte(len(t)))
	}
	for _, t := range toks[nb:] {
		out.Write(t)
	}
	return out.Bytes(), nil
}

// Files lists the generated files: name, source .tiktoken file and the
// encoding whose ranks it extends ("" for none).
var Files = []struct{ Name, Source, Base string }{
	{"cl100k_base", "cl100k_base.tiktoken", ""},
	{"o200k_base", "o200k_base.tiktoken", ""},
	{"r50k_base", "r50k_base.tiktoken", ""},
	{"p50k_base", "p50k_base.tiktoken", "r50k_base"},
}
