package records

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readAll returns the records and the line errors (as strings) of r.
func readAll(t *testing.T, r *Reader) ([]Record, []string) {
	t.Helper()
	var recs []Record
	var bad []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, bad
		}
		var le *LineError
		if errors.As(err, &le) {
			bad = append(bad, le.Error())
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		recs = append(recs, rec)
	}
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJSONL(t *testing.T) {
	p := write(t, "a.jsonl", `{"id":"r1","input":"What is 2+2?","output":"4","expected":"4","context":["math","arith"],"metadata":{"k":1},"tenant":"acme"}

{"id": 7, "input": [{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"x"}}],"name":"bob"}], "output": {"a": 1}, "context": "one passage"}
not json
{"input":"q"}
[1,2]
{"output":"ok","metadata":{"tenant":"globex"}}
`)
	r, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != JSONL {
		t.Fatalf("format %v", r.Format())
	}
	recs, bad := readAll(t, r)
	wantBad := []string{
		p + `:4: invalid JSON: invalid character 'o' in literal null (expecting 'u')`,
		p + `:5: missing output field "output" (fields here: input; use --map output=NAME)`,
		p + `:6: not a JSON object (got array)`,
	}
	if !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad lines:\n%q\nwant\n%q", bad, wantBad)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records", len(recs))
	}
	want0 := Record{ID: "r1", File: p, Line: 1, Input: "What is 2+2?", Output: "4", Expected: "4",
		Context: []string{"math", "arith"}, Metadata: map[string]any{"k": float64(1)}, Tenant: "acme"}
	if !reflect.DeepEqual(recs[0], want0) {
		t.Errorf("rec0 = %+v\nwant %+v", recs[0], want0)
	}
	r1 := recs[1]
	if r1.ID != "7" || r1.Line != 3 || r1.Output != `{"a":1}` || !reflect.DeepEqual(r1.Context, []string{"one passage"}) {
		t.Errorf("rec1 = %+v", r1)
	}
	wantMsgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi\n[image_url]", Name: "bob"}}
	if !reflect.DeepEqual(r1.Messages, wantMsgs) {
		t.Errorf("messages = %+v", r1.Messages)
	}
	if r1.Input != "system: Be brief.\n\nuser (bob): Hi\n[image_url]" {
		t.Errorf("input rendering = %q", r1.Input)
	}
	r2 := recs[2]
	if r2.Tenant != "globex" || r2.Line != 7 || len(r2.ID) != 16 {
		t.Errorf("rec2 = %+v", r2)
	}
}

func TestContentIDStable(t *testing.T) {
	a, _ := NewReader(strings.NewReader(`{"input":"q","output":"a","expected":"e"}`+"\n"), "a", Options{})
	b, _ := NewReader(strings.NewReader("\n\n"+`{ "expected" : "e", "output":"a",  "input":"q", "metadata": {"x":2}}`+"\r\n"), "b", Options{})
	c, _ := NewReader(strings.NewReader(`{"input":"q","output":"b","expected":"e"}`), "c", Options{})
	ra, _ := readAll(t, a)
	rb, _ := readAll(t, b)
	rc, _ := readAll(t, c)
	if ra[0].ID != rb[0].ID {
		t.Errorf("same content, different ids: %s %s", ra[0].ID, rb[0].ID)
	}
	if ra[0].ID == rc[0].ID {
		t.Errorf("different output, same id %s", ra[0].ID)
	}
	if rb[0].Line != 3 {
		t.Errorf("line = %d, want 3", rb[0].Line)
	}
}

func TestMap(t *testing.T) {
	m, err := ParseMap("output=response, input=question,id=uid")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, map[string]string{"output": "response", "input": "question", "id": "uid"}) {
		t.Fatalf("map = %v", m)
	}
	r, _ := NewReader(strings.NewReader(`{"uid":"u1","question":"q","response":"a","output":"ignored"}`+"\n"+`{"output":"x"}`+"\n"), "m.jsonl", Options{Map: m})
	recs, bad := readAll(t, r)
	if len(recs) != 1 || recs[0].ID != "u1" || recs[0].Input != "q" || recs[0].Output != "a" {
		t.Errorf("recs = %+v", recs)
	}
	if want := []string{`m.jsonl:2: missing output field "response" (mapped to output) (fields here: output; use --map output=NAME)`}; !reflect.DeepEqual(bad, want) {
		t.Errorf("bad = %q", bad)
	}
	for _, tc := range []struct{ in, err string }{
		{"output", `--map: "output" is not FIELD=NAME (e.g. output=response)`},
		{"answer=x", `--map: unknown field "answer" (want one of id, input, output, expected, context, metadata, tenant)`},
		{"output=a,output=b", `--map: field "output" given twice`},
		{"output=", `--map: "output=" is not FIELD=NAME (e.g. output=response)`},
	} {
		if _, err := ParseMap(tc.in); err == nil || err.Error() != tc.err {
			t.Errorf("ParseMap(%q) = %v, want %s", tc.in, err, tc.err)
		}
	}
}

func TestCSV(t *testing.T) {
	p := write(t, "b.csv", "\xEF\xBB\xBFid,question,response,context,metadata\n"+
		"c1,\"multi\nline\",ok,\"[\"\"p1\"\",\"\"p2\"\"]\",\"{\"\"tenant\"\":\"\"t1\"\"}\"\n"+
		"c2,q2,too,many,fields,here\n"+
		"c3,\"[{\"\"role\"\":\"\"user\"\",\"\"content\"\":\"\"hi\"\"}]\",bad\xffutf8,plain ctx,\n"+
		"c4,q,a,,not json\n")
	m, _ := ParseMap("input=question,output=response")
	r, err := Open(p, Options{Map: m})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, bad := readAll(t, r)
	wantBad := []string{
		p + ":4: CSV row has 6 fields, the header has 5",
		p + `:6: column "metadata": want a JSON object`,
	}
	if !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad = %q\nwant %q", bad, wantBad)
	}
	if len(recs) != 2 {
		t.Fatalf("recs = %+v", recs)
	}
	if r0 := recs[0]; r0.ID != "c1" || r0.Line != 2 || r0.Input != "multi\nline" || r0.Output != "ok" ||
		!reflect.DeepEqual(r0.Context, []string{"p1", "p2"}) || r0.Tenant != "t1" {
		t.Errorf("rec0 = %+v", r0)
	}
	if r1 := recs[1]; r1.Line != 5 || r1.Output != "bad\uFFFDutf8" || r1.Input != "user: hi" || len(r1.Messages) != 1 ||
		!reflect.DeepEqual(r1.Context, []string{"plain ctx"}) {
		t.Errorf("rec1 = %+v", r1)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "nope.jsonl"), Options{}); err == nil || err.Error() != filepath.Join(dir, "nope.jsonl")+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	p := write(t, "arr.json", `[{"output":"x"}]`)
	if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), p+":1: a JSON array; costctl reads JSON Lines") {
		t.Errorf("array: %v", err)
	}
	p = write(t, "h.csv", "a,b\n1,2\n")
	if _, err := Open(p, Options{}); err == nil || err.Error() != p+`:1: no output column "output" in the CSV header (columns: a, b); use --map output=NAME` {
		t.Errorf("csv header: %v", err)
	}
}

func TestSniffAndLongLine(t *testing.T) {
	r, err := NewReader(strings.NewReader("  {\"output\":\"a\"}\n{\"output\":\""+strings.Repeat("x", 300)+"\"}\n{\"output\":\"b\"}"), "s", Options{MaxLineBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != JSONL {
		t.Fatal("not sniffed as JSONL")
	}
	recs, bad := readAll(t, r)
	if len(recs) != 2 || recs[1].Output != "b" || recs[1].Line != 3 {
		t.Errorf("recs = %+v", recs)
	}
	if !reflect.DeepEqual(bad, []string{"s:2: line longer than 100 bytes"}) {
		t.Errorf("bad = %q", bad)
	}
	r, _ = NewReader(strings.NewReader("output\nhello\n"), "x", Options{})
	if r.Format() != CSV {
		t.Fatal("not sniffed as CSV")
	}
	recs, _ = readAll(t, r)
	if len(recs) != 1 || recs[0].Output != "hello" {
		t.Errorf("csv sniff recs = %+v", recs)
	}
	// Invalid UTF-8 inside JSON strings becomes U+FFFD.
	r, _ = NewReader(strings.NewReader("{\"output\":\"a\xffb\",\"expected\":{\"k\":\"\xfe\"}}\n"), "u", Options{})
	recs, _ = readAll(t, r)
	if recs[0].Output != "a\uFFFDb" || recs[0].Expected != "{\"k\":\"\uFFFD\"}" {
		t.Errorf("utf8: %q %q", recs[0].Output, recs[0].Expected)
	}
}

// genReader produces n JSONL records on the fly, so the benchmark measures
// the reader, not a file in memory.
type genReader struct {
	n, i int
	buf  []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.i >= g.n {
			return 0, io.EOF
		}
		g.buf = fmt.Appendf(g.buf[:0], `{"id":"r%d","input":"What is the capital of country %d?","output":"The capital is city %d.","context":["passage one","passage two"]}`+"\n", g.i, g.i, g.i)
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// BenchmarkJSONL streams records through the reader in constant memory:
// go test ./records -bench JSONL -benchmem
func BenchmarkJSONL(b *testing.B) {
	const perIter = 10000
	line := len(`{"id":"r1000","input":"What is the capital of country 1000?","output":"The capital is city 1000.","context":["passage one","passage two"]}` + "\n")
	b.SetBytes(int64(line * perIter))
	for i := 0; i < b.N; i++ {
		r, _ := NewReader(&genReader{n: perIter}, "gen", Options{})
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != perIter {
			b.Fatalf("read %d", n)
		}
	}
	b.ReportMetric(float64(perIter*b.N)/b.Elapsed().Seconds(), "records/s")
}

func TestOptionalOutput(t *testing.T) {
	jl := write(t, "p.jsonl", `{"input":"a prompt"}`+"\n"+`{"input":"b","output":"x"}`+"\n")
	r, err := Open(jl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, bad := readAll(t, r)
	r.Close()
	if len(bad) != 1 || !strings.Contains(bad[0], "p.jsonl:1: missing output field") {
		t.Fatalf("required output: bad = %v", bad)
	}
	r, _ = Open(jl, Options{OptionalOutput: true})
	recs, bad := readAll(t, r)
	r.Close()
	if len(bad) != 0 || len(recs) != 2 || recs[0].Output != "" || recs[0].Input != "a prompt" || recs[1].Output != "x" {
		t.Fatalf("optional output: %+v %v", recs, bad)
	}
	csvPath := write(t, "p.csv", "id,input\n1,hello\n")
	if _, err := Open(csvPath, Options{}); err == nil || !strings.Contains(err.Error(), "no output column") {
		t.Fatalf("CSV without output column: %v", err)
	}
	r, err = Open(csvPath, Options{OptionalOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	recs, bad = readAll(t, r)
	r.Close()
	if len(bad) != 0 || len(recs) != 1 || recs[0].Input != "hello" {
		t.Fatalf("CSV optional output: %+v %v", recs, bad)
	}
}

func TestCSVUnbalancedQuoteIsBounded(t *testing.T) {
	// A quote that never closes must not read the rest of the file into memory.
	body := "id,input,output\n1,hi,\"never closed\n" + strings.Repeat("x,y,z\n", 20000)
	p := write(t, "q.csv", body)
	r, err := Open(p, Options{MaxLineBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Next()
	if err == nil || !strings.Contains(err.Error(), "a CSV record runs past 4096 bytes (an unbalanced quote?)") {
		t.Fatalf("err = %v", err)
	}
	var le *LineError
	if errors.As(err, &le) {
		t.Fatal("an unbounded record is fatal, not a skippable line")
	}
}
