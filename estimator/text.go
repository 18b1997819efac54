package estimator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// Text encodings a TextReader reports.
const (
	EncodingUTF8    = "utf-8"
	EncodingUTF16LE = "utf-16le"
	EncodingUTF16BE = "utf-16be"
)

// TextReader streams a file's text as UTF-8. A file that starts with a
// UTF-16 byte-order mark (FF FE little-endian, FE FF big-endian) is decoded
// from UTF-16 and its BOM dropped, as Python's "utf-16" codec does; anything
// else is passed through unchanged, a UTF-8 BOM included (tiktoken counts
// the U+FEFF of a string read with Python's "utf-8" codec as text).
// Memory stays constant whatever the input's size.
type TextReader struct {
	r   io.Reader
	u   *utf16Reader
	enc string
}

// NewTextReader sniffs r's first bytes for a UTF-16 BOM. The error is a
// read error of r (an empty r is not an error).
func NewTextReader(r io.Reader) (*TextReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	bom, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	t := &TextReader{r: br, enc: EncodingUTF8}
	var order binary.ByteOrder
	switch {
	case len(bom) == 2 && bom[0] == 0xFF && bom[1] == 0xFE:
		order, t.enc = binary.LittleEndian, EncodingUTF16LE
	case len(bom) == 2 && bom[0] == 0xFE && bom[1] == 0xFF:
		order, t.enc = binary.BigEndian, EncodingUTF16BE
	default:
		return t, nil
	}
	if _, err := br.Discard(2); err != nil {
		return nil, err
	}
	t.u = &utf16Reader{src: br, order: order, raw: make([]byte, 32<<10)}
	t.r = t.u
	return t, nil
}

// Read reads UTF-8 text.
func (t *TextReader) Read(p []byte) (int, error) { return t.r.Read(p) }

// Encoding is the input's encoding: EncodingUTF8, EncodingUTF16LE or
// EncodingUTF16BE.
func (t *TextReader) Encoding() string { return t.enc }

// InvalidUTF16 reports whether a UTF-16 input had code units that are not
// text (an unpaired surrogate, an odd trailing byte); each was replaced by
// U+FFFD. The answer is final once Read has returned io.EOF.
func (t *TextReader) InvalidUTF16() bool { return t.u != nil && t.u.invalid }

// utf16Reader decodes UTF-16 code units from src to UTF-8, a surrogate pair
// split across two reads included.
type utf16Reader struct {
	src     io.Reader
	order   binary.ByteOrder
	raw     []byte // undecoded bytes: raw[:n]
	n       int
	out     []byte // decoded, not yet returned
	obuf    []byte
	err     error // src's error, returned once raw is drained
	invalid bool
}

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil && u.n == 0 {
			return 0, u.err
		}
		if u.err == nil {
			m, err := u.src.Read(u.raw[u.n:])
			u.n += m
			if err != nil {
				u.err = err
			}
		}
		u.decode(u.err != nil)
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// decode turns the whole code units in raw into UTF-8, keeping back a
// trailing odd byte or high surrogate until more input (or the end, final)
// says what it is.
func (u *utf16Reader) decode(final bool) {
	b := u.raw[:u.n]
	o := u.obuf[:0]
	i := 0
loop:
	for ; i+1 < len(b); i += 2 {
		c := rune(u.order.Uint16(b[i:]))
		switch {
		case 0xD800 <= c && c < 0xDC00: // high surrogate: needs a low one next
			if i+3 >= len(b) {
				if !final {
					break loop
				}
				o = utf8.AppendRune(o, utf8.RuneError)
				u.invalid = true
				continue
			}
			c2 := rune(u.order.Uint16(b[i+2:]))
			if 0xDC00 <= c2 && c2 < 0xE000 {
				o = utf8.AppendRune(o, utf16.DecodeRune(c, c2))
				i += 2
				continue
			}
			o = utf8.AppendRune(o, utf8.RuneError)
			u.invalid = true
		case 0xDC00 <= c && c < 0xE000: // a low surrogate on its own
			o = utf8.AppendRune(o, utf8.RuneError)
			u.invalid = true
		default:
			o = utf8.AppendRune(o, c)
		}
	}
	if final && i < len(b) { // an odd byte at the end
		o = utf8.AppendRune(o, utf8.RuneError)
		u.invalid = true
		i = len(b)
	}
	u.n = copy(u.raw, b[i:])
	u.out, u.obuf = o, o
}
