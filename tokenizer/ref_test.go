package tokenizer

import (
	"sync"
	"testing"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// The reference implementation (pkoukk/tiktoken-go, a line-by-line port
// of tiktoken with a backtracking regex engine) is used only by tests and
// benchmarks. The offline loader keeps it off the network.
var refOnce sync.Once

func reference(tb testing.TB, name string) *tiktoken.Tiktoken {
	tb.Helper()
	refOnce.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	refMu.Lock()
	defer refMu.Unlock()
	if r, ok := refs[name]; ok {
		return r
	}
	r, err := tiktoken.GetEncoding(name)
	if err != nil {
		tb.Fatalf("reference %s: %v", name, err)
	}
	refs[name] = r
	return r
}

var (
	refMu sync.Mutex
	refs  = map[string]*tiktoken.Tiktoken{}
)

func mustGet(tb testing.TB, name string) *Encoding {
	tb.Helper()
	e, err := Get(name)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
