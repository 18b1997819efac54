package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"
)

// vocab is the mergeable-rank table of one encoding: token bytes -> rank.
//
// It is an open-addressing hash table (linear probing) whose slots hold a
// 32-bit fingerprint of the token's hash and rank+1, with the token bytes
// stored once in a single blob. Building it from the ~200k lines of
// o200k_base allocates five objects instead of 200k map strings.
type vocab struct {
	blob  []byte   // token bytes, concatenated in rank order
	off   []uint32 // token r is blob[off[r]:off[r+1]] (len = maxRank+2)
	slots []uint64 // fingerprint<<32 | rank+1; 0 = empty
	mask  uint64
	n     int // number of tokens
}

// hashStr is a fast, deterministic, non-cryptographic hash for short byte
// strings (tokens are at most 128 bytes).
func hashStr(s string) uint64 {
	const m1 = 0x9E3779B97F4A7C15
	const m2 = 0xC2B2AE3D27D4EB4F
	n := len(s)
	h := uint64(n) * m1
	p := unsafe.Slice(unsafe.StringData(s), n)
	for len(p) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(p)) * m2
		h ^= h >> 29
		p = p[8:]
	}
	switch {
	case len(p) >= 4:
		v := uint64(binary.LittleEndian.Uint32(p)) | uint64(binary.LittleEndian.Uint32(p[len(p)-4:]))<<32
		h = (h ^ v) * m2
	case len(p) > 0:
		v := uint64(p[0]) | uint64(p[len(p)>>1])<<8 | uint64(p[len(p)-1])<<16
		h = (h ^ v) * m2
	}
	h ^= h >> 32
	h *= m1
	h ^= h >> 29
	return h
}

// rank returns the rank of token s, or -1.
func (v *vocab) rank(s string) int {
	h := hashStr(s)
	fp := h >> 32
	i := h & v.mask
	for {
		e := v.slots[i]
		if e == 0 {
			return -1
		}
		if e>>32 == fp {
			r := uint32(e) - 1
			a, b := v.off[r], v.off[r+1]
			if int(b-a) == len(s) && string(v.blob[a:b]) == s {
				return int(r)
			}
		}
		i = (i + 1) & v.mask
	}
}

// token returns the bytes of token r (r must be a valid rank).
func (v *vocab) token(r int) []byte { return v.blob[v.off[r]:v.off[r+1]] }

var b64dec = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return
}()

// parseTiktoken parses a .tiktoken file ("<base64 token> <rank>\n" lines)
// into a vocab. It is a hand-written single pass: no per-line allocation.
func parseTiktoken(data []byte) (*vocab, error) {
	// Pass 1: count lines and find the largest rank.
	lines := 0
	for _, c := range data {
		if c == '\n' {
			lines++
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		lines++
	}
	type ent struct {
		start, end uint32 // base64 text span
		rank       uint32
	}
	ents := make([]ent, 0, lines)
	maxRank := -1
	total := 0
	for i := 0; i < len(data); {
		j := i
		for j < len(data) && data[j] != ' ' && data[j] != '\n' {
			j++
		}
		if j == i {
			if j < len(data) && data[j] == '\n' {
				i = j + 1
				continue
			}
			return nil, fmt.Errorf("tokenizer: malformed rank file at byte %d", i)
		}
		if j >= len(data) || data[j] != ' ' {
			return nil, fmt.Errorf("tokenizer: malformed rank file at byte %d", i)
		}
		k := j + 1
		r := 0
		for k < len(data) && data[k] >= '0' && data[k] <= '9' {
			r = r*10 + int(data[k]-'0')
			k++
		}
		if k == j+1 || r >= 1<<24 {
			return nil, fmt.Errorf("tokenizer: malformed rank at byte %d", j)
		}
		if r > maxRank {
			maxRank = r
		}
		ents = append(ents, ent{uint32(i), uint32(j), uint32(r)})
		total += (j - i) / 4 * 3
		for k < len(data) && data[k] != '\n' {
			k++
		}
		i = k + 1
	}
	v := &vocab{n: len(ents)}
	lens := make([]uint32, maxRank+2)
	blob := make([]byte, 0, total)
	starts := make([]uint32, maxRank+1)
	seen := make([]bool, maxRank+1)
	for _, e := range ents {
		if seen[e.rank] {
			return nil, fmt.Errorf("tokenizer: duplicate rank %d", e.rank)
		}
		seen[e.rank] = true
		src := data[e.start:e.end]
		st := len(blob)
		var err error
		blob, err = appendB64(blob, src)
		if err != nil {
			return nil, err
		}
		starts[e.rank] = uint32(st)
		lens[e.rank] = uint32(len(blob) - st)
	}
	// Lay the tokens out in rank order so off[] is monotone. The ranks
	// in the shipped files are already in file order, so this is usually
	// the identity; handle the general case anyway.
	inOrder := true
	prev := uint32(0)
	for r := 0; r <= maxRank; r++ {
		if !seen[r] {
			continue
		}
		if starts[r] != prev {
			inOrder = false
			break
		}
		prev += lens[r]
	}
	if !inOrder {
		nb := make([]byte, 0, len(blob))
		for r := 0; r <= maxRank; r++ {
			if seen[r] {
				st := starts[r]
				starts[r] = uint32(len(nb))
				nb = append(nb, blob[st:st+lens[r]]...)
			}
		}
		blob = nb
	}
	off := lens // reuse: off[r] = start, off[r+1] = end
	acc := uint32(0)
	for r := 0; r <= maxRank; r++ {
		l := off[r]
		off[r] = acc
		acc += l
	}
	off[maxRank+1] = acc
	v.blob, v.off = blob, off

	size := 1 << bits.Len(uint(len(ents)*2))
	v.slots = make([]uint64, size)
	v.mask = uint64(size - 1)
	for r := 0; r <= maxRank; r++ {
		if !seen[r] {
			continue
		}
		tok := unsafe.String(unsafe.SliceData(blob[off[r]:]), int(off[r+1]-off[r]))
		h := hashStr(tok)
		i := h & v.mask
		for v.slots[i] != 0 {
			i = (i + 1) & v.mask
		}
		v.slots[i] = (h>>32)<<32 | uint64(r+1)
	}
	return v, nil
}

func appendB64(dst, src []byte) ([]byte, error) {
	for len(src) > 0 && src[len(src)-1] == '=' {
		src = src[:len(src)-1]
	}
	var acc uint32
	nbits := 0
	for _, c := range src {
		d := b64dec[c]
		if d == 0xff {
			return dst, fmt.Errorf("tokenizer: bad base64 byte %q in rank file", c)
		}
		acc = acc<<6 | uint32(d)
		nbits += 6
		if nbits >= 8 {
			nbits -= 8
			dst = append(dst, byte(acc>>uint(nbits)))
		}
	}
	return dst, nil
}
