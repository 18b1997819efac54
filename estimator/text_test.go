package estimator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"
)

func utf16Bytes(s string, order binary.AppendByteOrder, bom bool) []byte {
	var b []byte
	if bom {
		b = order.AppendUint16(b, 0xFEFF)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return b
}

func TestTextReader(t *testing.T) {
	text := "héllo wörld 😀 — 日本語\r\nline two 𝄞"
	cases := []struct {
		name        string
		in          []byte
		want        string
		enc         string
		invalid     bool
		byteAtATime bool
	}{
		{"utf-8 passes through", []byte(text), text, EncodingUTF8, false, false},
		{"utf-8 BOM is kept", append([]byte{0xEF, 0xBB, 0xBF}, "hi"...), "\uFEFFhi", EncodingUTF8, false, false},
		{"invalid utf-8 untouched", []byte("a\xffb"), "a\xffb", EncodingUTF8, false, false},
		{"empty", nil, "", EncodingUTF8, false, false},
		{"one byte", []byte{0xFF}, "\xff", EncodingUTF8, false, false},
		{"utf-16le", utf16Bytes(text, binary.LittleEndian, true), text, EncodingUTF16LE, false, false},
		{"utf-16be", utf16Bytes(text, binary.BigEndian, true), text, EncodingUTF16BE, false, false},
		{"utf-16le byte at a time", utf16Bytes(text, binary.LittleEndian, true), text, EncodingUTF16LE, false, true},
		{"utf-16be byte at a time", utf16Bytes(text, binary.BigEndian, true), text, EncodingUTF16BE, false, true},
		{"BOM only", []byte{0xFF, 0xFE}, "", EncodingUTF16LE, false, false},
		{"second BOM is text", utf16Bytes("\uFEFFa", binary.LittleEndian, true), "\uFEFFa", EncodingUTF16LE, false, false},
		{"odd trailing byte", append(utf16Bytes("ab", binary.LittleEndian, true), 'c'), "ab\uFFFD", EncodingUTF16LE, true, false},
		{"lone high surrogate at the end", binary.LittleEndian.AppendUint16(utf16Bytes("a", binary.LittleEndian, true), 0xD83D), "a\uFFFD", EncodingUTF16LE, true, true},
		{"high surrogate then a letter", binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{0xFE, 0xFF}, 0xD83D), 'x'), "\uFFFDx", EncodingUTF16BE, true, false},
		{"lone low surrogate", binary.LittleEndian.AppendUint16([]byte{0xFF, 0xFE}, 0xDE00), "\uFFFD", EncodingUTF16LE, true, false},
	}
	for _, c := range cases {
		var src io.Reader = bytes.NewReader(c.in)
		if c.byteAtATime {
			src = iotest.OneByteReader(src)
		}
		tr, err := NewTextReader(src)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want || tr.Encoding() != c.enc || tr.InvalidUTF16() != c.invalid {
			t.Errorf("%s: got %q %s invalid=%v, want %q %s invalid=%v", c.name, got, tr.Encoding(), tr.InvalidUTF16(), c.want, c.enc, c.invalid)
		}
	}
}

// A surrogate pair split across the decoder's 32 KiB buffer is still one
// character, and the reader passes iotest's checks.
func TestTextReaderLongUTF16(t *testing.T) {
	text := strings.Repeat("a😀", 50_000) // pairs straddle every buffer boundary sooner or later
	in := utf16Bytes(text, binary.LittleEndian, true)
	tr, err := NewTextReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(tr, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if tr.InvalidUTF16() {
		t.Error("valid input reported invalid")
	}
}

func TestTextReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := NewTextReader(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("sniff error = %v", err)
	}
	tr, err := NewTextReader(io.MultiReader(bytes.NewReader(utf16Bytes("abc", binary.LittleEndian, true)), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(tr)
	if !errors.Is(err, boom) || string(got) != "abc" {
		t.Errorf("got %q, %v; want abc, boom", got, err)
	}
}
