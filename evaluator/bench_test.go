package evaluator

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// BenchmarkCachedRerun measures a rerun whose every verdict is cached:
// go test ./evaluator -run '^$' -bench CachedRerun
func BenchmarkCachedRerun(b *testing.B) {
	e := newEnv(b, nil)
	const n = 2000
	f := e.fileB(b, "r.jsonl", nRecords(n))
	cfg, err := ParseConfig("b", []byte(oneJudge), e.table)
	if err != nil {
		b.Fatal(err)
	}
	o := e.opts(cfg, f)
	if _, err := Run(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	sent := e.fake.requests.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := e.opts(cfg, f)
		res, err := Run(context.Background(), o)
		if err != nil || res.CacheHits != n {
			b.Fatalf("%v hits=%d", err, res.CacheHits)
		}
	}
	b.StopTimer()
	if e.fake.requests.Load() != sent {
		b.Fatal("a cached rerun sent requests")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkLatencyBound runs 64 uncached judge calls against a server that
// takes 20ms per call, at several concurrencies:
// go test ./evaluator -run '^$' -bench LatencyBound
func BenchmarkLatencyBound(b *testing.B) {
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			e := newEnv(b, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
				time.Sleep(20 * time.Millisecond)
				return false
			})
			const n = 64
			f := e.fileB(b, "r.jsonl", nRecords(n))
			cfg, _ := ParseConfig("b", []byte(oneJudge), e.table)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o := e.opts(cfg, f)
				o.NoCache = true
				o.Concurrency = conc
				res, err := Run(context.Background(), o)
				if err != nil || res.Calls != n {
					b.Fatalf("%v calls=%d", err, res.Calls)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

func (e *env) fileB(b *testing.B, name, content string) string {
	p := e.dir + "/" + name
	if err := writeFileB(p, content); err != nil {
		b.Fatal(err)
	}
	return p
}
