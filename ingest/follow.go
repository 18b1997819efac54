package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Follow ingests path and keeps reading as it grows, like tail -F: every
// PollInterval it reads what was appended, writes it to the ledger, and
// checks whether the file was truncated (read again from the start) or
// rotated (the old file is drained, then the new one read from its start).
// A half-written last line waits for its newline. It returns when ctx is
// done, after writing everything read; the error is then ctx's.
func (in *Ingester) Follow(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	t := &tail{in: in, path: path, f: f}
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	if t.fi, err = f.Stat(); err != nil {
		return err
	}
	poll := time.NewTicker(in.cfg.PollInterval)
	defer poll.Stop()
	for {
		if err := t.drain(ctx); err != nil {
			return err
		}
		if err := in.Flush(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(in.Flush(ctx), ctx.Err())
		case <-poll.C:
		}
		if err := t.check(ctx); err != nil {
			return err
		}
	}
}

type tail struct {
	in      *Ingester
	path    string
	f       *os.File // nil while a rotated file has not reappeared
	fi      fs.FileInfo
	offset  int64
	lineNo  int64
	partial []byte
	buf     []byte
}

// drain reads the open file to its current end, handling complete lines.
func (t *tail) drain(ctx context.Context) error {
	if t.f == nil {
		return nil
	}
	if t.buf == nil {
		t.buf = make([]byte, 1<<20)
	}
	for {
		n, err := t.f.Read(t.buf)
		if n > 0 {
			t.offset += int64(n)
			data := t.buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					if len(t.partial) <= MaxLineBytes {
						t.partial = append(t.partial, data...)
					}
					break
				}
				line := data[:i]
				if len(t.partial) > 0 {
					line = append(t.partial, line...)
				}
				t.lineNo++
				if herr := t.in.handle(ctx, t.path, t.lineNo, line); herr != nil {
					return herr
				}
				t.partial = t.partial[:0]
				data = data[i+1:]
			}
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", t.path, err)
		}
	}
}

// finishFile handles a rotated file's unterminated last line and closes it.
func (t *tail) finishFile(ctx context.Context) error {
	if len(t.partial) > 0 {
		t.lineNo++
		if err := t.in.handle(ctx, t.path, t.lineNo, t.partial); err != nil {
			return err
		}
	}
	t.partial, t.lineNo, t.offset = t.partial[:0], 0, 0
	t.f.Close()
	t.f = nil
	return nil
}

// check notices truncation and rotation.
func (t *tail) check(ctx context.Context) error {
	st, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Rotated away and not yet recreated: drain the old file and wait.
		if t.f != nil {
			if err := t.drain(ctx); err != nil {
				return err
			}
			return t.finishFile(ctx)
		}
		return nil
	case err != nil:
		return err
	}
	if t.f != nil && !os.SameFile(st, t.fi) {
		// Rotated: whatever was appended to the old file before the
		// rename is still ours.
		if err := t.drain(ctx); err != nil {
			return err
		}
		if err := t.finishFile(ctx); err != nil {
			return err
		}
	}
	if t.f == nil {
		f, err := os.Open(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		t.f, t.fi = f, fi
		return nil
	}
	if st.Size() < t.offset {
		// Truncated (copytruncate rotation, or "> file"): start over.
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		t.offset, t.lineNo, t.partial = 0, 0, t.partial[:0]
	}
	return nil
}
