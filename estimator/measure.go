package estimator

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/costctl/costctl/records"
)

// RecordReader yields records until io.EOF; a *records.LineError is a
// line that could not be used (it is skipped). *records.Reader is one.
type RecordReader interface {
	Next() (records.Record, error)
}

// Measured is a sample of records measured with one tokenizer (--from).
type Measured struct {
	Sample
	Encoding string // the tokenizer's encoding
	Exact    bool   // false: an approximate tokenizer for the model
	Skipped  int64  // lines and records that were not counted
}

// Measure counts every record of r with c: the prompt as the API bills it
// (the chat formula over the messages, or one user message holding a text
// input) and the output. A bad line, or a record without an input, is
// skipped and reported to skip as one line ("FILE:LINE: reason"). It
// returns ctx.Err() when ctx is done, and any other read error as it is;
// a sample with no usable record is not an error (Records is 0).
func Measure(ctx context.Context, r RecordReader, c *Counter, skip func(line string)) (*Measured, error) {
	s := &Measured{Encoding: c.Encoding(), Exact: c.Exact()}
	var msgs []Message
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *records.LineError
		if errors.As(err, &le) {
			skip(le.Error())
			s.Skipped++
			continue
		}
		if err != nil {
			return nil, err
		}
		if rec.Messages == nil && rec.Input == "" {
			skip(fmt.Sprintf("%s:%d: no input; skipped", rec.File, rec.Line))
			s.Skipped++
			continue
		}
		msgs = msgs[:0]
		if rec.Messages != nil {
			if msgs == nil {
				msgs = []Message{}
			}
			for _, m := range rec.Messages {
				msgs = append(msgs, Message{Role: m.Role, Content: m.Content, Name: m.Name})
			}
			s.Add(c, "", msgs, rec.Output)
		} else {
			s.Add(c, rec.Input, nil, rec.Output)
		}
	}
	return s, nil
}
