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
// ranks/*.idx are the hash tables of newVocab, precomputed (see
// TestIndexUpToDate): loading one is a page mapping, not 200k hashes, so a
// small count starts in a few milliseconds and touches only the pages of
// the tokens it looks up.
//
//go:embed ranks/*.bin ranks/*.idx
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
	blob, off, err := loadTokens(name, baseName)
	if err != nil {
		return nil, err
	}
	if idx, err := ranksFS.ReadFile("ranks/" + name + ".idx"); err == nil {
		if slots, ok := slotsFromIndex(idx, len(off)-1); ok {
			return finishVocab(blob, off, slots), nil
		}
	}
	return newVocab(blob, off), nil
}

// loadTokens returns the token bytes of an encoding in rank order (blob)
// and where each starts (off).
func loadTokens(name, baseName string) (blob []byte, off []uint32, err error) {
	f, err := readRankFile(name)
	if err != nil {
		return nil, nil, err
	}
	var lens [][]byte
	var blobs [][]byte
	if f.base > 0 {
		b, err := readRankFile(baseName)
		if err != nil {
			return nil, nil, err
		}
		if b.n != f.base || b.base != 0 {
			return nil, nil, fmt.Errorf("tokenizer: %s: base %s mismatch", name, baseName)
		}
		lens, blobs = append(lens, b.lens), append(blobs, b.blob)
	}
	lens, blobs = append(lens, f.lens), append(blobs, f.blob)
	// One contiguous blob keeps off[] a single array.
	if len(blobs) == 1 {
		blob = blobs[0]
	} else {
		for _, b := range blobs {
			blob = append(blob, b...)
		}
	}
	off = make([]uint32, 0, f.n+1)
	acc := uint32(0)
	for _, ls := range lens {
		for _, l := range ls {
			off = append(off, acc)
			acc += uint32(l)
		}
	}
	off = append(off, acc)
	if int(acc) != len(blob) || len(off) != f.n+1 {
		return nil, nil, fmt.Errorf("tokenizer: %s: corrupt rank file", name)
	}
	return blob, off, nil
}

const indexMagic = "TKI1"

// encodeIndex writes a slot table as an index file: magic, slot count, then
// the slots as little-endian uint32.
func encodeIndex(slots []uint32) []byte {
	out := make([]byte, 8+4*len(slots))
	copy(out, indexMagic)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(slots)))
	for i, e := range slots {
		binary.LittleEndian.PutUint32(out[8+4*i:], e)
	}
	return out
}

// slotsFromIndex returns the slot table of an index file for ntok tokens,
// in place when the host is little-endian and the data 4-byte aligned (a
// copy otherwise); ok=false when the file does not fit ntok.
func slotsFromIndex(idx []byte, ntok int) ([]uint32, bool) {
	size := slotCount(ntok)
	if len(idx) != 8+4*size || string(idx[:4]) != indexMagic || int(binary.LittleEndian.Uint32(idx[4:])) != size {
		return nil, false
	}
	data := idx[8:]
	p := unsafe.Pointer(unsafe.SliceData(data))
	if littleEndian && uintptr(p)%4 == 0 {
		return unsafe.Slice((*uint32)(p), size), true
	}
	slots := make([]uint32, size)
	for i := range slots {
		slots[i] = binary.LittleEndian.Uint32(data[4*i:])
	}
	return slots, true
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// slotCount is the size of the hash table for ntok tokens (load ≤ 1/2).
func slotCount(ntok int) int { return 1 << bits.Len(uint(ntok*2)) }

// finishVocab completes a vocab around a ready slot table: the token count,
// the longest token and the two-byte pair table, from the offsets alone.
func finishVocab(blob []byte, off []uint32, slots []uint32) *vocab {
	v := &vocab{blob: blob, off: off, slots: slots, mask: uint64(len(slots) - 1), pair: make([]uint32, 1<<16)}
	for i := range v.pair {
		v.pair[i] = noRank
	}
	for r := 0; r+1 < len(off); r++ {
		a, b := off[r], off[r+1]
		if a == b {
			continue
		}
		v.n++
		v.maxLen = max(v.maxLen, int(b-a))
		if b-a == 2 {
			v.pair[uint16(blob[a])<<8|uint16(blob[a+1])] = uint32(r)
		}
	}
	return v
}

// newVocab indexes the tokens blob[off[r]:off[r+1]] (empty = unused rank).
func newVocab(blob []byte, off []uint32) *vocab {
	return finishVocab(blob, off, buildSlots(blob, off))
}

// buildSlots hashes every token into an open-addressing table.
func buildSlots(blob []byte, off []uint32) []uint32 {
	ntok := len(off) - 1
	slots := make([]uint32, slotCount(ntok))
	mask := uint64(len(slots) - 1)
	for r := 0; r < ntok; r++ {
		a, b := off[r], off[r+1]
		if a == b {
			continue
		}
		h := hashStr(unsafe.String(&blob[a], int(b-a)))
		i := h & mask
		for slots[i] != 0 {
			i = (i + 1) & mask
		}
		slots[i] = uint32(h>>fpShift)<<rankBits | uint32(r+1)
	}
	return slots
}
