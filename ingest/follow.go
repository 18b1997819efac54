package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Follow ingests path and keeps reading as it grows, like tail -F. Every
// PollInterval it reads what was appended and writes it to the
// ledger, and checks whether the file was rotated or truncated:
//
//   - Rotated (renamed away, a new file at path): the old file is read to
//     its end first, then any file that was at path in between and has
//     already been rotated away too (a sibling named NAME.* or NAME-*,
//     not compressed, that was not there when Follow started), then the
//     new file from its start. While a backlog is read, path is looked at
//     after every MiB, and a new file there is opened at once, so it is
//     read even if it is rotated and deleted before its turn.
//   - Truncated (copytruncate, or "> file"), even when refilled past the
//     read position between two polls: noticed because the bytes read
//     first and last are no longer there. Lines appended before the
//     truncation that were not read yet are taken from logrotate's copy
//     (a new sibling whose start is what was read), then the file is read
//     again from its start.
//
// A half-written last line waits for its newline. It returns when ctx is
// done, after writing everything read; the error is then ctx's.
func (in *Ingester) Follow(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close() // only read: a close error cannot lose data
		return err
	}
	t := &tail{in: in, path: path, dir: filepath.Dir(path), base: filepath.Base(path),
		cur: &stream{f: f, fi: fi, name: path}}
	defer t.close()
	// Rotated files already there were read (or not) by someone else.
	if t.seen, err = t.siblings(); err != nil {
		return err
	}
	t.seen = append(t.seen, fi)
	wait := in.cfg.Poll
	if wait == nil {
		poll := time.NewTicker(in.cfg.PollInterval)
		defer poll.Stop()
		wait = func(ctx context.Context) {
			select {
			case <-ctx.Done():
			case <-poll.C:
			}
		}
	}
	for {
		if err := t.drainAll(ctx); err != nil {
			return errors.Join(in.Flush(ctx), err)
		}
		if err := in.Flush(ctx); err != nil {
			return err
		}
		if wait(ctx); ctx.Err() != nil {
			return errors.Join(in.Flush(ctx), ctx.Err())
		}
		if err := t.check(ctx); err != nil {
			return errors.Join(in.Flush(ctx), err)
		}
	}
}

// fingerprint is how many bytes at the start and just before the read
// position are kept to recognise the file read so far (and its copy).
const fingerprint = 4096

// stream is one open file being read.
type stream struct {
	f       *os.File
	fi      fs.FileInfo
	name    string // in reports
	offset  int64
	lineNo  int64
	partial []byte
	head    []byte // the first bytes read (up to fingerprint)
	last    []byte // the last bytes read (up to fingerprint), ending at offset
}

type tail struct {
	in        *Ingester
	path      string
	dir, base string
	cur       *stream   // the file at path (nil while path is missing)
	queue     []*stream // newer files seen at path while cur was read, oldest first
	seen      []fs.FileInfo
	buf       []byte
}

func (t *tail) close() {
	if t.cur != nil {
		t.cur.f.Close() // only read: a close error cannot lose data
	}
	for _, s := range t.queue {
		s.f.Close() // only read: a close error cannot lose data
	}
}

// drainAll reads cur to its end; while a newer file is waiting, cur was
// rotated away: it is finished and the next one read.
func (t *tail) drainAll(ctx context.Context) error {
	for {
		if t.cur != nil {
			if err := t.drain(ctx, t.cur, true); err != nil {
				return err
			}
		}
		if len(t.queue) == 0 {
			return nil
		}
		if err := t.next(ctx); err != nil {
			return err
		}
	}
}

// next finishes cur (read to its end by the caller), reads the rotated
// files that were never seen at path, and moves on to the oldest queued
// file (nil when none: path is missing).
func (t *tail) next(ctx context.Context) error {
	if t.cur != nil {
		if err := t.finish(ctx, t.cur); err != nil {
			return err
		}
		t.cur = nil
	}
	if err := t.readMissed(ctx); err != nil {
		return err
	}
	if len(t.queue) > 0 {
		t.cur, t.queue = t.queue[0], t.queue[1:]
	}
	return nil
}

// drain reads s to its current end, handling complete lines. watch: s is
// the file at path; after each chunk, a new file at path is opened and
// queued (a backlog can take a while; a writer may rotate meanwhile).
func (t *tail) drain(ctx context.Context, s *stream, watch bool) error {
	if t.buf == nil {
		t.buf = make([]byte, 1<<20)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := s.f.Read(t.buf)
		if n > 0 {
			data := t.buf[:n]
			s.remember(data)
			s.offset += int64(n)
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					if len(s.partial) <= MaxLineBytes {
						s.partial = append(s.partial, data...)
					}
					break
				}
				line := data[:i]
				if len(s.partial) > 0 {
					line = append(s.partial, line...)
				}
				s.lineNo++
				if herr := t.in.handle(ctx, s.name, s.lineNo, line); herr != nil {
					return herr
				}
				s.partial = s.partial[:0]
				data = data[i+1:]
			}
			if watch {
				if st, err := os.Stat(t.path); err == nil && !os.SameFile(st, s.fi) {
					if err := t.enqueue(st); err != nil {
						return err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", s.name, err)
		}
	}
}

// remember keeps the first and the last bytes read.
func (s *stream) remember(data []byte) {
	if len(s.head) < fingerprint {
		s.head = append(s.head, data[:min(len(data), fingerprint-len(s.head))]...)
	}
	if len(data) >= fingerprint {
		s.last = append(s.last[:0], data[len(data)-fingerprint:]...)
		return
	}
	s.last = append(s.last, data...)
	if over := len(s.last) - fingerprint; over > 0 {
		copy(s.last, s.last[over:])
		s.last = s.last[:fingerprint]
	}
}

// holds reports whether f still holds what s read: the same first bytes,
// and the same bytes just before s's offset.
func (s *stream) holds(f *os.File) (bool, error) {
	for _, want := range []struct {
		b  []byte
		at int64
	}{{s.head, 0}, {s.last, s.offset - int64(len(s.last))}} {
		got := make([]byte, len(want.b))
		n, err := f.ReadAt(got, want.at)
		if n < len(got) {
			if err != nil && !errors.Is(err, io.EOF) {
				return false, err
			}
			return false, nil
		}
		if !bytes.Equal(got, want.b) {
			return false, nil
		}
	}
	return true, nil
}

// finish handles a finished file's unterminated last line and closes it.
func (t *tail) finish(ctx context.Context, s *stream) error {
	if len(s.partial) > 0 {
		s.lineNo++
		if err := t.in.handle(ctx, s.name, s.lineNo, s.partial); err != nil {
			return err
		}
		s.partial = s.partial[:0]
	}
	return s.f.Close()
}

// check notices rotation and truncation.
func (t *tail) check(ctx context.Context) error {
	st, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if t.cur == nil {
			return nil
		}
		// Rotated away and not recreated yet: read the old file to its
		// end, and whatever else was rotated, and wait.
		if err := t.drain(ctx, t.cur, false); err != nil {
			return err
		}
		return t.next(ctx)
	case err != nil:
		return err
	case t.cur != nil && os.SameFile(st, t.cur.fi):
		return t.checkTruncated(ctx, st)
	}
	// Rotated: drainAll reads the old file to its end, then this one.
	return t.enqueue(st)
}

// enqueue opens the file at path (st) unless it is already open.
func (t *tail) enqueue(st fs.FileInfo) error {
	if t.cur != nil && os.SameFile(st, t.cur.fi) {
		return nil
	}
	for _, s := range t.queue {
		if os.SameFile(st, s.fi) {
			return nil
		}
	}
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // rotated away again; readMissed finds it
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close() // only read: a close error cannot lose data
		return err
	}
	t.queue = append(t.queue, &stream{f: f, fi: fi, name: t.path})
	t.seen = append(t.seen, fi)
	return nil
}

// checkTruncated restarts cur from its start when the file no longer holds
// what was read: it is shorter than the read position, or was truncated
// and refilled past it since the last poll.
func (t *tail) checkTruncated(ctx context.Context, st fs.FileInfo) error {
	s := t.cur
	if s.offset == 0 {
		return nil
	}
	if st.Size() >= s.offset {
		ok, err := s.holds(s.f)
		if err != nil || ok {
			return err
		}
	}
	// The lines appended before the truncation and not read yet are in
	// logrotate's copy, if there is one: read it from where s stopped.
	copied, err := t.readCopy(ctx, s)
	if err != nil {
		return err
	}
	if !copied && len(s.partial) > 0 {
		s.lineNo++
		if err := t.in.handle(ctx, s.name, s.lineNo, s.partial); err != nil {
			return err
		}
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	*s = stream{f: s.f, fi: s.fi, name: s.name, partial: s.partial[:0], head: s.head[:0], last: s.last[:0]}
	// Another copy (truncated twice between polls) is a missed file.
	return t.readMissed(ctx)
}

// readCopy finds a new sibling that starts with what s read and reads it
// from s's position, as the continuation of s.
func (t *tail) readCopy(ctx context.Context, s *stream) (bool, error) {
	cands, err := t.unseen()
	if err != nil {
		return false, err
	}
	for _, c := range cands {
		if c.fi.Size() < s.offset {
			continue
		}
		f, err := os.Open(c.path)
		if err != nil {
			continue // gone meanwhile
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close() // only read: a close error cannot lose data
			continue
		}
		ok, err := s.holds(f)
		if err != nil || !ok {
			f.Close() // only read: a close error cannot lose data
			continue
		}
		if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
			f.Close() // only read: a close error cannot lose data
			return false, err
		}
		t.seen = append(t.seen, fi)
		cp := &stream{f: f, fi: fi, name: c.path, offset: s.offset, lineNo: s.lineNo, partial: s.partial}
		if err := t.drain(ctx, cp, false); err != nil {
			f.Close() // only read: a close error cannot lose data
			return false, err
		}
		return true, t.finish(ctx, cp)
	}
	return false, nil
}

// readMissed reads, oldest first, the rotated files that were never seen:
// files that were at path between two looks and were rotated away again.
func (t *tail) readMissed(ctx context.Context) error {
	cands, err := t.unseen()
	if err != nil {
		return err
	}
	for _, c := range cands {
		f, err := os.Open(c.path)
		if err != nil {
			continue // gone meanwhile
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close() // only read: a close error cannot lose data
			continue
		}
		t.seen = append(t.seen, fi)
		s := &stream{f: f, fi: fi, name: c.path}
		if err := t.drain(ctx, s, false); err != nil {
			f.Close() // only read: a close error cannot lose data
			return err
		}
		if err := t.finish(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

type sibling struct {
	path string
	fi   fs.FileInfo
}

// compressed are the suffixes of rotated files that are not read.
var compressed = []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".Z", ".zip", ".br"}

// siblings lists the rotated-looking files next to path: NAME.*, NAME-*,
// NAME_*, regular, not compressed.
func (t *tail) siblings() ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		return nil, err
	}
	var out []fs.FileInfo
	for _, d := range ents {
		name := d.Name()
		if len(name) <= len(t.base) || !strings.HasPrefix(name, t.base) || !strings.ContainsRune(".-_", rune(name[len(t.base)])) {
			continue
		}
		skip := false
		for _, suf := range compressed {
			skip = skip || strings.HasSuffix(name, suf)
		}
		if skip || !d.Type().IsRegular() {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, fi)
	}
	return out, nil
}

// unseen lists the siblings not seen before, oldest first, and forgets
// seen files that are gone (their inode may be reused).
func (t *tail) unseen() ([]sibling, error) {
	sibs, err := t.siblings()
	if err != nil {
		return nil, err
	}
	present := sibs
	if st, err := os.Stat(t.path); err == nil {
		present = append(present[:len(present):len(present)], st)
	}
	if t.cur != nil {
		present = append(present, t.cur.fi)
	}
	for _, s := range t.queue {
		present = append(present, s.fi)
	}
	kept := t.seen[:0]
	for _, fi := range t.seen {
		for _, p := range present {
			if os.SameFile(fi, p) {
				kept = append(kept, fi)
				break
			}
		}
	}
	t.seen = kept
	var out []sibling
	for _, fi := range sibs {
		known := false
		for _, s := range t.seen {
			known = known || os.SameFile(fi, s)
		}
		if !known {
			out = append(out, sibling{filepath.Join(t.dir, fi.Name()), fi})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].fi.ModTime(), out[j].fi.ModTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].path < out[j].path
	})
	return out, nil
}
