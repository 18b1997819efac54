//go:build unix

package tokenizer

import (
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// genReader produces n bytes of mixed prose/code/emoji text without
// holding it in memory.
type genReader struct {
	left int64
	pos  int
	unit []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.left > 0 {
		k := copy(p[n:], g.unit[g.pos:])
		if int64(k) > g.left {
			k = int(g.left)
		}
		n += k
		g.left -= int64(k)
		g.pos = (g.pos + k) % len(g.unit)
	}
	return n, nil
}

// TestStreamRSS streams TOKENIZER_STREAM_MB megabytes (default: skipped)
// through CountReader and reports the peak RSS of the process:
//
//	TOKENIZER_STREAM_MB=1024 go test ./tokenizer/ -run TestStreamRSS -v
//
// It times nothing: BenchmarkCountReaderParallel measures the speed.
func TestStreamRSS(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("TOKENIZER_STREAM_MB"))
	if mb <= 0 {
		t.Skip("set TOKENIZER_STREAM_MB")
	}
	e := mustGet(t, "o200k_base")
	unit := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 50) +
		"func main() {\n\tfmt.Println(\"héllo, 世界 😀\", 12345)\n}\n" + adversarialInputs(1 << 20)["base64"][:5000] + "\n")
	n, inv, err := e.CountReader(&genReader{left: int64(mb) << 20, unit: unit})
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("%d MB: %d tokens (invalid=%v); peak RSS %d MB", mb, n, inv, ru.Maxrss>>10)
}
