package tokenizer

import (
	"io"
	"runtime"
	"sync"
)

// Stream chunking parameters (variables so tests can shrink them).
var (
	readSize  = 1 << 20 // bytes per Read call
	chunkSize = 1 << 20 // target size of a chunk handed to a worker
)

func isAlnum(c byte) bool {
	return c-'0' < 10 || (c|0x20)-'a' < 26
}

func isDigit(c byte) bool { return c-'0' < 10 }

// safeSplit reports whether b can be cut between b[j-1] and b[j] without
// changing the token count, for every supported encoding: j must be a
// pre-token boundary in the whole text, and the pre-tokens before j must be
// the same whether or not the text continues after j. All rules look at
// ASCII bytes only, which are never part of a multi-byte or invalid UTF-8
// sequence, so the cut also commutes with ReplaceInvalidUTF8.
//
//   - x|' '     with x printable non-space ASCII: every pre-token that can
//     contain x ends where x's class run ends, and a space is in none of
//     those classes nor can it extend a contraction.
//   - x\n|y     with x printable non-space ASCII and y in [A-Za-z0-9]: the
//     newline is a pre-token of its own or ends a punctuation run, in all
//     four patterns, with or without text after it.
//   - letter|digit, digit|letter, punct|digit (ASCII): letter runs, digit
//     runs and punctuation runs end there, and a punctuation char only
//     attaches to a following letter, never to a digit.
func safeSplit(b []byte, j int) bool {
	if j <= 0 || j >= len(b) {
		return false
	}
	x, y := b[j-1], b[j]
	if x <= ' ' || x >= 0x7f || y >= 0x7f {
		if x == '\n' && j >= 2 && isAlnum(y) {
			w := b[j-2]
			return w > ' ' && w < 0x7f
		}
		return false
	}
	if y == ' ' {
		return true
	}
	if isDigit(y) {
		return !isDigit(x) && x != '\'' // x letter or punctuation
	}
	if isDigit(x) {
		return (y|0x20)-'a' < 26
	}
	return false
}

// findSplit returns the largest j in (lo, hi] with safeSplit(b, j), or -1.
func findSplit(b []byte, lo, hi int) int {
	if hi > len(b)-1 {
		hi = len(b) - 1
	}
	for j := hi; j > lo; j-- {
		if safeSplit(b, j) {
			return j
		}
	}
	return -1
}

// findSplitForward returns the smallest j in [lo, hi] with safeSplit(b, j),
// or -1.
func findSplitForward(b []byte, lo, hi int) int {
	if lo < 1 {
		lo = 1
	}
	for j := lo; j <= hi && j < len(b); j++ {
		if safeSplit(b, j) {
			return j
		}
	}
	return -1
}

type chunkResult struct {
	n       int64
	invalid bool
}

// CountReader counts the tokens of everything read from r. It streams in
// bounded memory: the input is cut only at positions where every split
// pattern guarantees a pre-token boundary (see safeSplit), and chunks are
// counted on GOMAXPROCS goroutines. Invalid UTF-8 is replaced as by
// CountBytes (a sequence split across reads is handled as a whole).
// It returns the total count, whether any replacement happened, and the
// first read error other than io.EOF (the count then covers the bytes read
// before the error).
//
// A single pre-token (e.g. a run of one letter without any space) must be
// held in memory as a whole; memory is bounded by a few chunks plus the
// longest such run.
func (e *Encoding) CountReader(r io.Reader) (n int64, invalid bool, err error) {
	workers := runtime.GOMAXPROCS(0)
	var (
		jobs    chan []byte
		results chan chunkResult
		wg      sync.WaitGroup
		free    chan []byte
	)
	started := false
	start := func() {
		started = true
		jobs = make(chan []byte, workers)
		results = make(chan chunkResult, 2*workers+2)
		free = make(chan []byte, 2*workers+2)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := e.pool.Get().(*scratch)
				defer e.pool.Put(sc)
				for c := range jobs {
					cn, inv := e.countBytes(c, sc)
					results <- chunkResult{int64(cn), inv}
					select {
					case free <- c[:0]:
					default:
					}
				}
			}()
		}
	}
	// collect drains finished results without blocking.
	inflight := 0
	collect := func(block bool) {
		for inflight > 0 {
			if block {
				res := <-results
				n += res.n
				invalid = invalid || res.invalid
				inflight--
				continue
			}
			select {
			case res := <-results:
				n += res.n
				invalid = invalid || res.invalid
				inflight--
			default:
				return
			}
		}
	}
	newBuf := func(capacity int) []byte {
		if started {
			select {
			case b := <-free:
				if cap(b) >= capacity {
					return b
				}
			default:
			}
		}
		return make([]byte, 0, capacity)
	}
	submit := func(c []byte) {
		if !started {
			start()
		}
		// Keep the number of chunks in flight bounded.
		for inflight >= 2*workers {
			res := <-results
			n += res.n
			invalid = invalid || res.invalid
			inflight--
		}
		inflight++
		jobs <- c
		collect(false)
	}

	buf := make([]byte, 0, chunkSize+readSize)
	scanned := 0 // buf[:scanned] is known to hold no safe cut
	for {
		if cap(buf)-len(buf) < readSize {
			nb := newBuf(2*len(buf) + readSize)
			buf = append(nb, buf...)
		}
		m, rerr := r.Read(buf[len(buf):cap(buf)][:readSize])
		buf = buf[:len(buf)+m]
		if rerr != nil && rerr != io.EOF {
			err = rerr
		}
		if rerr != nil {
			break
		}
		// Hand out full chunks cut at safe boundaries.
		for len(buf) >= chunkSize {
			lo := 0
			if scanned > 3 {
				lo = scanned - 3
			}
			j := -1
			if lo < chunkSize {
				j = findSplit(buf, lo, chunkSize) // largest cut <= chunkSize
			}
			if j < 0 {
				j = findSplitForward(buf, max(lo, chunkSize), len(buf)-1)
			}
			if j < 0 {
				// No safe cut yet (one long pre-token): keep reading.
				scanned = len(buf)
				break
			}
			scanned = 0
			rest := buf[j:]
			nb := newBuf(chunkSize + readSize)
			if cap(nb) < len(rest)+readSize {
				nb = make([]byte, 0, len(rest)+readSize+chunkSize)
			}
			nb = append(nb, rest...)
			submit(buf[:j])
			buf = nb
		}
	}
	if len(buf) > 0 {
		if !started {
			// Small input: count inline.
			sc := e.pool.Get().(*scratch)
			cn, inv := e.countBytes(buf, sc)
			e.pool.Put(sc)
			return int64(cn), inv, err
		}
		submit(buf)
	}
	if started {
		close(jobs)
		collect(true)
		wg.Wait()
	}
	return n, invalid, err
}
