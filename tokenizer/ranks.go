package tokenizer

import (
	"embed"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"
)

//go:generate go run ./internal/rankgen ranks

// ranksFS holds the mergeable ranks in a compact binary form generated from
// the .tiktoken files of github.com/pkoukk/tiktoken-go-loader (see package
// internal/rankfile for the format; TestRanksUpToDate checks them).
//
//go:embed ranks/*.bin
var ranksFS embed.FS

type rankFile struct {
	n, base int
	lens    []byte
	blob    []byte
}

func readRankFile(name string) (rankFile, error) {
	data, err := ranksFS.ReadFile("ranks/" + name + ".bin")
	if err != nil {
		return rankFile{}, err
	}
	if len(data) < 12 || string(data[:4]) != "TKR1" {
		return rankFile{}, fmt.Errorf("tokenizer: %s: bad rank file", name)
	}
	n := int(binary.LittleEndian.Uint32(data[4:]))
	base := int(binary.LittleEndian.Uint32(data[8:]))
	if base > n || n >= rankMask || len(data) < 12+n-base {
		return rankFile{}, fmt.Errorf("tokenizer: %s: bad rank file header", name)
	}
	return rankFile{n: n, base: base, lens: data[12 : 12+n-base], blob: data[12+n-base:]}, nil
}

// loadVocab builds the rank table of an encoding from its embedded file
// (and the file it extends). The token bytes are used in place (embedded
// data is read-only and lives for the whole process).
func loadVocab(name, baseName string) (*vocab, error) {
	f, err := readRankFile(name)
	if err != nil {
		return nil, err
	}
	var lens [][]byte
	var blobs [][]byte
	if f.base > 0 {
		b, err := readRankFile(baseName)
		if err != nil {
			return nil, err
		}
		if b.n != f.base || b.base != 0 {
			return nil, fmt.Errorf("tokenizer: %s: base %s mismatch", name, baseName)
		}
		lens, blobs = append(lens, b.lens), append(blobs, b.blob)
	}
	lens, blobs = append(lens, f.lens), append(blobs, f.blob)
	// One contiguous blob keeps off[] a single array.
	var blob []byte
	if len(blobs) == 1 {
		blob = blobs[0]
	} else {
		for _, b := range blobs {
			blob = append(blob, b...)
		}
	}
	off := make([]uint32, 0, f.n+1)
	acc := uint32(0)
	for _, ls := range lens {
		for _, l := range ls {
			off = append(off, acc)
			acc += uint32(l)
		}
	}
	off = append(off, acc)
	if int(acc) != len(blob) || len(off) != f.n+1 {
		return nil, fmt.Errorf("tokenizer: %s: corrupt rank file", name)
	}
	return newVocab(blob, off), nil
}

// newVocab indexes the tokens blob[off[r]:off[r+1]] (empty = unused rank).
func newVocab(blob []byte, off []uint32) *vocab {
	v := &vocab{blob: blob, off: off, pair: make([]uint32, 1<<16)}
	for i := range v.pair {
		v.pair[i] = noRank
	}
	ntok := len(off) - 1
	size := 1 << bits.Len(uint(ntok*2))
	v.slots = make([]uint32, size)
	v.mask = uint64(size - 1)
	slots := v.slots
	for r := 0; r < ntok; r++ {
		a, b := off[r], off[r+1]
		if a == b {
			continue
		}
		v.n++
		v.maxLen = max(v.maxLen, int(b-a))
		if b-a == 2 {
			v.pair[uint16(blob[a])<<8|uint16(blob[a+1])] = uint32(r)
		}
		h := hashStr(unsafe.String(&blob[a], int(b-a)))
		i := h & v.mask
		for slots[i] != 0 {
			i = (i + 1) & v.mask
		}
		slots[i] = uint32(h>>fpShift)<<rankBits | uint32(r+1)
	}
	return v
}
