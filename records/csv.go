package records

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

type csvState struct {
	r      *csv.Reader
	guard  *recordGuard
	header []string
	col    map[string]int // canonical field → column index
}

// recordGuard bounds the bytes one CSV record may span: a quoted field may
// hold newlines, so an unbalanced quote would otherwise read the rest of a
// huge file into memory.
type recordGuard struct {
	r     io.Reader
	n     int64 // bytes read since the current record started
	limit int64
}

var errRecordTooLong = errors.New("CSV record too long")

func (g *recordGuard) Read(p []byte) (int, error) {
	if g.n > g.limit {
		return 0, errRecordTooLong
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

func (r *Reader) initCSV() error {
	guard := &recordGuard{r: r.br, limit: int64(r.maxLine)}
	cr := csv.NewReader(guard)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = 0 // the header sets the count
	header, err := cr.Read()
	if err == io.EOF {
		r.csv = &csvState{r: cr}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s:1: bad CSV header: %s", r.name, csvReason(err))
	}
	st := &csvState{r: cr, guard: guard, header: append([]string(nil), header...), col: map[string]int{}}
	byName := map[string]int{}
	for i, h := range st.header {
		h = strings.TrimSpace(validUTF8(h))
		st.header[i] = h
		if _, dup := byName[h]; !dup {
			byName[h] = i
		}
	}
	for _, f := range Fields {
		if i, ok := byName[r.names[f]]; ok {
			st.col[f] = i
		}
	}
	if _, ok := st.col[FieldOutput]; !ok && !r.opts.OptionalOutput {
		return fmt.Errorf("%s:1: no output column %s in the CSV header (columns: %s); use --map output=NAME",
			r.name, r.fieldLabel(FieldOutput), strings.Join(st.header, ", "))
	}
	r.csv = st
	r.line = 1
	return nil
}

func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (r *Reader) nextCSV() (Record, error) {
	st := r.csv
	if st.header == nil {
		return Record{}, io.EOF
	}
	st.guard.n = 0
	row, err := st.r.Read()
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if errors.Is(err, errRecordTooLong) {
		line, _ := st.r.FieldPos(0)
		return Record{}, fmt.Errorf("%s:%d: a CSV record runs past %d bytes (an unbalanced quote?); fix the file or raise the limit", r.name, line, r.maxLine)
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			r.line = int64(pe.StartLine)
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				return Record{}, r.lineErr("CSV row has %d fields, the header has %d", len(row), len(st.header))
			}
			return Record{}, r.lineErr("bad CSV: %s", pe.Err)
		}
		return Record{}, fmt.Errorf("%s: %w", r.name, err)
	}
	line, _ := st.r.FieldPos(0)
	r.line = int64(line)
	cell := func(f string) (string, bool) {
		i, ok := st.col[f]
		if !ok || i >= len(row) {
			return "", false
		}
		return validUTF8(row[i]), true
	}
	var rec Record
	rec.File, rec.Line = r.name, r.line
	rec.Output, _ = cell(FieldOutput)
	if s, ok := cell(FieldInput); ok && s != "" {
		rec.Input = s
		if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
			if json.Valid([]byte(t)) {
				if msgs, text, reason := parseInput(json.RawMessage(t)); reason == "" && msgs != nil {
					rec.Messages, rec.Input = msgs, text
				}
			}
		}
	}
	rec.Expected, _ = cell(FieldExpected)
	if s, ok := cell(FieldContext); ok && s != "" {
		if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") && json.Valid([]byte(t)) {
			rec.Context = parseContext(json.RawMessage(t))
		} else {
			rec.Context = []string{s}
		}
	}
	if s, ok := cell(FieldMetadata); ok && strings.TrimSpace(s) != "" {
		if err := json.Unmarshal([]byte(s), &rec.Metadata); err != nil {
			return Record{}, r.lineErr("column %s: want a JSON object", r.fieldLabel(FieldMetadata))
		}
	}
	if s, ok := cell(FieldTenant); ok && s != "" {
		rec.Tenant = s
	} else if t, ok := rec.Metadata["tenant"].(string); ok {
		rec.Tenant = t
	}
	rec.ID, _ = cell(FieldID)
	if rec.ID == "" {
		rec.ID = ContentID(rec)
	}
	return rec, nil
}
