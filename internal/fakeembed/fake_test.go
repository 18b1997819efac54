package fakeembed

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestSemFakeEmbed(t *testing.T) {
	s := New()
	defer s.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(s.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/v1/embeddings", `{"model":"m","input":["Hello, world!","x"]}`)
	if code != 200 || !strings.Contains(body, `"usage":{"prompt_tokens":3,"total_tokens":3}`) || strings.Count(body, `"object":"embedding"`) != 2 {
		t.Fatalf("%d %s", code, body)
	}
	if code, body = post("/embeddings", `{"model":"m","input":"one string"}`); code != 200 || !strings.Contains(body, `"prompt_tokens":2`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ = post("/v1/embeddings", `{"input":["no model"]}`); code != 400 {
		t.Fatalf("no model: %d", code)
	}
	if s.Calls() != 2 || s.Inputs() != 3 || s.Tokens() != 5 {
		t.Fatalf("counters %d %d %d", s.Calls(), s.Inputs(), s.Tokens())
	}
	// Same words in another order: the same vector; one word changed: high, below 1.
	dot := func(a, b []float32) float64 {
		var d float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
		}
		return d
	}
	if d := dot(Vector("Paris to Rome"), Vector("rome TO paris")); d < 0.9999 {
		t.Fatalf("reordered: %v", d)
	}
	if d := dot(Vector("a b c d e f g h i j"), Vector("a b c d e f g h i k")); d < 0.8 || d > 0.95 {
		t.Fatalf("one word of ten changed: %v", d)
	}
}
