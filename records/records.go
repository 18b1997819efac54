// Package records streams evaluation records from JSON Lines and CSV files.
//
// A record is one recorded model interaction: an input (text or chat
// messages), the output to be judged, and optionally an expected answer,
// context passages, metadata and a tenant. Files are read one line (one CSV
// row) at a time, so a file of millions of records is read in bounded memory.
//
// A line that cannot be used (invalid JSON, a missing output, a CSV row with
// the wrong number of fields) is returned by Next as a *LineError naming the
// file and line; the next call to Next continues with the following line.
package records

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Canonical field names. Options.Map maps these to the names used in a file.
const (
	FieldID       = "id"
	FieldInput    = "input"
	FieldOutput   = "output"
	FieldExpected = "expected"
	FieldContext  = "context"
	FieldMetadata = "metadata"
	FieldTenant   = "tenant"
)

// Fields lists the canonical field names in a fixed order.
var Fields = []string{FieldID, FieldInput, FieldOutput, FieldExpected, FieldContext, FieldMetadata, FieldTenant}

// DefaultMaxLineBytes bounds one line (one record); a longer line is a LineError.
const DefaultMaxLineBytes = 64 << 20

// Message is one chat message of a record's input.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
}

// Record is one evaluation record.
type Record struct {
	ID       string
	File     string
	Line     int64
	Input    string    // the input text; for chat input, a readable rendering of Messages
	Messages []Message // non-nil when the input was given as chat messages
	Output   string
	Expected string
	Context  []string
	Metadata map[string]any
	Tenant   string
}

// Options control how records are read.
type Options struct {
	// Map maps canonical field names (id, input, output, expected, context,
	// metadata, tenant) to the names used in the file, e.g. output→response.
	Map map[string]string
	// MaxLineBytes bounds one line; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// OptionalOutput accepts records without an output (estimate --from
	// with --output-tokens measures prompts only); eval requires one.
	OptionalOutput bool
	// Stdin is what the path "-" reads (the command's injected input, never
	// os.Stdin behind its back).
	Stdin io.Reader
}

// LineError is a line of input that could not be used.
type LineError struct {
	File   string
	Line   int64
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ParseMap parses "output=response,input=question" into a field map. Keys
// must be canonical field names; each may appear once.
func ParseMap(s string) (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--map: %q is not FIELD=NAME (e.g. output=response)", part)
		}
		if !isField(k) {
			return nil, fmt.Errorf("--map: unknown field %q (want one of %s)", k, strings.Join(Fields, ", "))
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--map: field %q given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

func isField(k string) bool {
	for _, f := range Fields {
		if f == k {
			return true
		}
	}
	return false
}

// Format is a file format.
type Format int

const (
	JSONL Format = iota
	CSV
)

func (f Format) String() string {
	if f == CSV {
		return "csv"
	}
	return "jsonl"
}

// Reader streams records from one file.
type Reader struct {
	name    string
	format  Format
	opts    Options
	br      *bufio.Reader
	closer  io.Closer
	line    int64 // JSONL: last physical line read
	csv     *csvState
	maxLine int
	names   map[string]string // canonical → file name
	counted *countingReader
	size    int64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Progress reports how many bytes have been read so far and the file's size
// (0 when unknown, e.g. standard input). For progress bars and ETAs.
func (r *Reader) Progress() (read, size int64) { return r.counted.n, r.size }

// Open opens path ("-" is standard input) and detects its format from the
// extension (.jsonl/.ndjson/.json → JSON Lines, .csv → CSV), else from the
// first byte ('{' → JSON Lines, anything else → CSV).
func Open(path string, opts Options) (*Reader, error) {
	if path == "-" {
		if opts.Stdin == nil {
			return nil, errors.New("-: no standard input was given to read (records.Options.Stdin)")
		}
		return NewReader(opts.Stdin, "<stdin>", opts)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		f.Close() // only read; an error is being returned
		return nil, fmt.Errorf("%s: is a directory, not a records file", path)
	}
	r, err := newReader(f, path, opts, formatFromExt(path))
	if err != nil {
		f.Close() // only read; an error is being returned
		return nil, err
	}
	r.closer = f
	if st != nil {
		r.size = st.Size()
	}
	return r, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func formatFromExt(path string) int {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return int(JSONL)
	case ".csv":
		return int(CSV)
	}
	return -1
}

// NewReader reads records from r; name is used in errors and Record.File.
// The format is sniffed from the first byte.
func NewReader(r io.Reader, name string, opts Options) (*Reader, error) {
	return newReader(r, name, opts, -1)
}

func newReader(r io.Reader, name string, opts Options, format int) (*Reader, error) {
	max := opts.MaxLineBytes
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	cr := &countingReader{r: r}
	rd := &Reader{name: name, opts: opts, br: bufio.NewReaderSize(cr, 256<<10), maxLine: max, counted: cr}
	rd.names = map[string]string{}
	for _, f := range Fields {
		rd.names[f] = f
	}
	for k, v := range opts.Map {
		rd.names[k] = v
	}
	// Skip a UTF-8 byte order mark.
	if b, err := rd.br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		rd.br.Discard(3) // cannot fail: Peek(3) just returned 3 bytes
	}
	first := rd.firstByte()
	if format < 0 {
		if first == '{' || first == '[' {
			format = int(JSONL)
		} else {
			format = int(CSV)
		}
	}
	rd.format = Format(format)
	if rd.format == JSONL && first == '[' {
		return nil, fmt.Errorf("%s:1: a JSON array; costctl reads JSON Lines (one object per line) — convert it with: jq -c '.[]' %s", name, name)
	}
	if rd.format == CSV {
		if err := rd.initCSV(); err != nil {
			return nil, err
		}
	}
	return rd, nil
}

// firstByte returns the first non-space byte without consuming it (0 if none).
func (r *Reader) firstByte() byte {
	for n := 64; n <= 64<<10; n *= 4 {
		b, err := r.br.Peek(n)
		for _, c := range b {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				return c
			}
		}
		if err != nil {
			return 0
		}
	}
	return 0
}

// Name is the file name used in errors.
func (r *Reader) Name() string { return r.name }

// Format is the detected format.
func (r *Reader) Format() Format { return r.format }

// Close closes the underlying file (if Open opened it).
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Next returns the next record, io.EOF at the end, a *LineError for a line
// that cannot be used (call Next again to continue), or another error for a
// failed read.
func (r *Reader) Next() (Record, error) {
	if r.format == CSV {
		return r.nextCSV()
	}
	return r.nextJSONL()
}

// readLine returns the next physical line without its newline. A line longer
// than the limit is consumed and reported as tooLong.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, e := r.br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > r.maxLine+2 {
				tooLong, buf = true, nil
			} else if e == bufio.ErrBufferFull || buf != nil {
				buf = append(buf, chunk...)
			}
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if buf == nil && !tooLong {
			buf = chunk
		}
		if e != nil && e != io.EOF {
			return nil, false, e
		}
		if e == io.EOF && len(buf) == 0 && !tooLong {
			return nil, false, io.EOF
		}
		buf = bytes.TrimRight(buf, "\r\n")
		return buf, tooLong, nil
	}
}

func (r *Reader) nextJSONL() (Record, error) {
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			if err == io.EOF {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("%s: %w", r.name, err)
		}
		r.line++
		if tooLong {
			return Record{}, r.lineErr("line longer than %d bytes", r.maxLine)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) {
				return Record{}, r.lineErr("not a JSON object (got %s)", ute.Value)
			}
			return Record{}, r.lineErr("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		if obj == nil {
			return Record{}, r.lineErr("not a JSON object (got null)")
		}
		rec, reason := r.fromJSON(obj)
		if reason != "" {
			return Record{}, r.lineErr("%s", reason)
		}
		rec.File, rec.Line = r.name, r.line
		return rec, nil
	}
}

func (r *Reader) lineErr(format string, a ...any) *LineError {
	return &LineError{File: r.name, Line: r.line, Reason: fmt.Sprintf(format, a...)}
}

// fieldLabel names a canonical field as the file spells it, for errors.
func (r *Reader) fieldLabel(f string) string {
	if n := r.names[f]; n != f {
		return fmt.Sprintf("%q (mapped to %s)", n, f)
	}
	return fmt.Sprintf("%q", f)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func (r *Reader) fromJSON(obj map[string]json.RawMessage) (Record, string) {
	var rec Record
	get := func(f string) json.RawMessage { return obj[r.names[f]] }

	out := get(FieldOutput)
	if isNull(out) && !r.opts.OptionalOutput {
		return rec, "missing output field " + r.fieldLabel(FieldOutput) + r.mapHint(obj)
	}
	if !isNull(out) {
		rec.Output = textOf(out)
	}

	if raw := get(FieldInput); !isNull(raw) {
		msgs, text, err := parseInput(raw)
		if err != "" {
			return rec, "field " + r.fieldLabel(FieldInput) + ": " + err
		}
		rec.Messages, rec.Input = msgs, text
	}
	if raw := get(FieldExpected); !isNull(raw) {
		rec.Expected = textOf(raw)
	}
	if raw := get(FieldContext); !isNull(raw) {
		rec.Context = parseContext(raw)
	}
	if raw := get(FieldMetadata); !isNull(raw) {
		if err := json.Unmarshal(raw, &rec.Metadata); err != nil {
			return rec, "field " + r.fieldLabel(FieldMetadata) + ": want a JSON object"
		}
	}
	if raw := get(FieldTenant); !isNull(raw) {
		rec.Tenant = textOf(raw)
	} else if t, ok := rec.Metadata["tenant"].(string); ok {
		rec.Tenant = t
	}
	if raw := get(FieldID); !isNull(raw) {
		rec.ID = textOf(raw)
	}
	if rec.ID == "" {
		rec.ID = ContentID(rec)
	}
	return rec, ""
}

// mapHint suggests --map when the object has fields that look like an output.
func (r *Reader) mapHint(obj map[string]json.RawMessage) string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 8 {
		keys = append(keys[:8], "…")
	}
	return fmt.Sprintf(" (fields here: %s; use --map output=NAME)", strings.Join(keys, ", "))
}

// textOf renders a JSON value as text: strings as themselves, anything else
// as compact JSON.
func textOf(raw json.RawMessage) string { return validUTF8(textOfRaw(raw)) }

func textOfRaw(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

// parseInput accepts a string, a list of chat messages, or an object with a
// "messages" list (an OpenAI request body).
func parseInput(raw json.RawMessage) ([]Message, string, string) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		return nil, textOf(raw), ""
	case '[':
		msgs, err := parseMessages(raw)
		if err != "" {
			return nil, "", err
		}
		return msgs, RenderMessages(msgs), ""
	case '{':
		var body struct {
			Messages json.RawMessage `json:"messages"`
		}
		if json.Unmarshal(raw, &body) == nil && !isNull(body.Messages) {
			msgs, err := parseMessages(body.Messages)
			if err != "" {
				return nil, "", err
			}
			return msgs, RenderMessages(msgs), ""
		}
	}
	return nil, textOf(raw), ""
}

func parseMessages(raw json.RawMessage) ([]Message, string) {
	var items []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
		Name    string          `json:"name"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, "want text or a list of chat messages {role, content}"
	}
	msgs := make([]Message, 0, len(items))
	for i, it := range items {
		if it.Role == "" {
			return nil, fmt.Sprintf("message %d has no role", i+1)
		}
		content, err := contentText(it.Content)
		if err != "" {
			return nil, fmt.Sprintf("message %d: %s", i+1, err)
		}
		msgs = append(msgs, Message{Role: it.Role, Content: content, Name: it.Name})
	}
	return msgs, ""
}

// contentText accepts a string or a list of parts ({"type":"text","text":...});
// non-text parts are rendered as "[type]".
func contentText(raw json.RawMessage) (string, string) {
	if isNull(raw) {
		return "", ""
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		return textOf(raw), ""
	}
	if raw[0] != '[' {
		return "", "content must be text or a list of parts"
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", "content must be text or a list of parts"
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString("\n")
		}
		if p.Text != nil {
			b.WriteString(*p.Text)
		} else {
			b.WriteString("[" + p.Type + "]")
		}
	}
	return b.String(), ""
}

// RenderMessages renders chat messages as readable text, one message per
// block: "role: content" (or "role (name): content"), separated by blank lines.
func RenderMessages(msgs []Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(m.Role)
		if m.Name != "" {
			b.WriteString(" (" + m.Name + ")")
		}
		b.WriteString(": ")
		b.WriteString(m.Content)
	}
	return b.String()
}

// parseContext accepts text or a list (of texts, or of anything, rendered as JSON).
func parseContext(raw json.RawMessage) []string {
	raw = bytes.TrimSpace(raw)
	if raw[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) == nil {
			out := make([]string, 0, len(items))
			for _, it := range items {
				if !isNull(it) {
					out = append(out, textOf(it))
				}
			}
			return out
		}
	}
	return []string{textOf(raw)}
}

// ContentID is the default record id: a stable hash of the record's content
// (input or messages, output, expected, context), independent of its file,
// line, field order or formatting. 16 hex digits.
func ContentID(r Record) string {
	h := sha256.New()
	w := func(tag string, s string) {
		fmt.Fprintf(h, "%s:%d:", tag, len(s))
		io.WriteString(h, s) // a hash's Write never fails
	}
	if r.Messages != nil {
		for _, m := range r.Messages {
			w("role", m.Role)
			w("name", m.Name)
			w("content", m.Content)
		}
	} else {
		w("input", r.Input)
	}
	w("output", r.Output)
	w("expected", r.Expected)
	for _, c := range r.Context {
		w("context", c)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// validUTF8 replaces invalid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
