package ingest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// flatLines are the lines BenchmarkIngest writes: flat events over three
// models.
func flatLines(n int) [][]byte {
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli"}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4"}
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"id":"ev-%d","ts":%d,"tenant":%q,"user":"user-%d","endpoint":"/v1/chat/completions","model":%q,"input_tokens":%d,"cached_input_tokens":%d,"output_tokens":%d,"latency_ms":%d}`,
			i, 1795255200+i/100, tenants[i%5], i%200, models[i%3], 1000+i%977, i%500, 100+i%300, 200+i%3000)
	}
	return out
}

func benchParse(b *testing.B, lines [][]byte) {
	in := New(nil, Config{Table: pricing.MustDefault()})
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			e, err := parseLine(l, Defaults{}, now)
			if err != nil {
				b.Fatalf("%s: %v", l, err)
			}
			in.price(&e)
			sinkEvent = e
		}
	}
	b.ReportMetric(float64(len(lines)*b.N)/b.Elapsed().Seconds(), "lines/s")
}

var sinkEvent ledger.Event

// BenchmarkParseFlat is parsing and pricing alone (no ledger write) over
// BenchmarkIngest's flat lines.
func BenchmarkParseFlat(b *testing.B) { benchParse(b, flatLines(10000)) }

// BenchmarkParseShapes is parsing and pricing over the six shapes' example
// lines (testdata/shapes), in turn.
func BenchmarkParseShapes(b *testing.B) {
	var examples [][]byte
	for _, shape := range Shapes {
		l, err := os.ReadFile(filepath.Join("testdata", "shapes", string(shape)+".jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		examples = append(examples, bytes.TrimSpace(l))
	}
	lines := make([][]byte, 10000)
	for i := range lines {
		lines[i] = examples[i%len(examples)]
	}
	benchParse(b, lines)
}
