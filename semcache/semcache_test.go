package semcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func zero() *float64 { z := 0.0; return &z }

func req(tenant, model, system, user string) *Request {
	r := &Request{Tenant: tenant, Model: model, Temperature: zero(), Rest: []byte(`{"temperature":0}`)}
	if system != "" {
		r.Messages = append(r.Messages, Message{Role: "system", Text: system})
	}
	r.Messages = append(r.Messages, Message{Role: "user", Text: user})
	return r
}

func TestSemPartitionIsolation(t *testing.T) {
	base := req("acme", "gpt-4o", "You are terse.", "What is the capital of France?")
	p := Partition(base)
	same := req("acme", "gpt-4o", "You are terse.", "Capital of France, please?")
	if Partition(same) != p {
		t.Fatalf("changing only the last user message changed the partition")
	}
	earlier := req("acme", "gpt-4o", "You are terse.", "What is the capital of France?")
	earlier.Messages = append([]Message{{Role: "user", Text: "hi"}, {Role: "assistant", Text: "hello"}}, earlier.Messages...)
	tools := req("acme", "gpt-4o", "You are terse.", "What is the capital of France?")
	tools.Rest = []byte(`{"temperature":0,"tools":[{"type":"function","function":{"name":"f"}}]}`)
	temp := req("acme", "gpt-4o", "You are terse.", "What is the capital of France?")
	temp.Rest = []byte(`{"temperature":0.2}`)
	image := req("acme", "gpt-4o", "You are terse.", "What is the capital of France?")
	image.Messages[1].Extra = []byte(`{"content_parts":[{"type":"text"},{"type":"image_url","image_url":{"url":"x"}}]}`)
	for name, r := range map[string]*Request{
		"tenant":        req("globex", "gpt-4o", "You are terse.", "What is the capital of France?"),
		"model":         req("acme", "gpt-4o-mini", "You are terse.", "What is the capital of France?"),
		"system prompt": req("acme", "gpt-4o", "You are verbose.", "What is the capital of France?"),
		"no system":     req("acme", "gpt-4o", "", "What is the capital of France?"),
		"earlier turn":  earlier,
		"tools":         tools,
		"temperature":   temp,
		"image part":    image,
	} {
		if Partition(r) == p {
			t.Errorf("%s: same partition", name)
		}
	}
}

func TestSemEligible(t *testing.T) {
	r := req("a", "m", "", "hello there")
	if ok, why := Eligible(r); !ok {
		t.Fatalf("temperature 0: not eligible: %s", why)
	}
	hot := 0.7
	r.Temperature = &hot
	if ok, _ := Eligible(r); ok {
		t.Fatal("temperature 0.7 eligible")
	}
	r.Force = true
	if ok, _ := Eligible(r); !ok {
		t.Fatal("forced: not eligible")
	}
	r.Temperature, r.Force = nil, false
	if ok, why := Eligible(r); ok || why != "no temperature given (only temperature 0 or x-costctl-cache: force is eligible)" {
		t.Fatalf("no temperature: %v %q", ok, why)
	}
	r = req("a", "m", "", "hello")
	r.Messages = append(r.Messages, Message{Role: "assistant", Text: "hi"})
	if ok, why := Eligible(r); ok || why != "the last message is not a user message" {
		t.Fatalf("assistant last: %v %q", ok, why)
	}
	if _, ok := LastUser(r); ok {
		t.Fatal("LastUser ok with an assistant last")
	}
}

func TestSemLexical(t *testing.T) {
	for _, c := range []struct {
		a, b string
		ok   bool
		why  string
	}{
		{"What is the capital of France?", "what's the capital of france", true, ""},
		{"Please list the cheapest flights from Paris to Rome", "list cheapest flight from Paris to Rome", true, ""},
		{"I do not like it", "I don't like it", true, ""},
		{"Is 2.0 bigger than two?", "is 2 bigger than 2", true, ""},
		{"Revenue grew 1,000 dollars", "revenue grew 1000 dollars", true, ""},
		{"Book 2 tickets", "Book 3 tickets", false, "numbers differ: 2 vs 3"},
		{"What is 2+2?", "What is 2+3?", false, "numbers differ: 2 + 2 vs 2 + 3"},
		{"What is 2+2?", "What is 2*2?", false, "numbers differ: 2 + 2 vs 2 * 2"},
		{"Book two tickets", "Book three tickets", false, "numbers differ: 2 vs 3"},
		{"Discount of 10%", "Discount of 10", false, "numbers differ: 10% vs 10"},
		{"Meeting on 2024-05-01", "Meeting on 2024-05-02", false, "numbers differ: 2024-05-01 vs 2024-05-02"},
		{"Is the store open on Sunday?", "Is the store not open on Sunday?", false, "negations differ: (none) vs not"},
		{"Is it safe?", "Isn't it safe?", false, "negations differ: (none) vs not"},
		{"Coffee with sugar", "Coffee without sugar", false, "negations differ: (none) vs without"},
		{"flights from Paris to Rome", "flights from Rome to Paris", false, "content words differ: flight from paris to rome vs flight from rome to paris"},
		{"Does the dog chase the cat?", "Does the cat chase the dog?", false, "content words differ: dog chase cat vs cat chase dog"},
		{"Where is the station?", "When is the station?", false, "content words differ: where station vs when station"},
	} {
		ok, why := Lexical(c.a, c.b)
		if ok != c.ok || why != c.why {
			t.Errorf("Lexical(%q, %q) = %v, %q; want %v, %q", c.a, c.b, ok, why, c.ok, c.why)
		}
		if same := LexicalKey(c.a) == LexicalKey(c.b); same != c.ok {
			t.Errorf("LexicalKey(%q) == LexicalKey(%q) is %v, want %v (as Lexical)", c.a, c.b, same, c.ok)
		}
	}
}

func TestSemStoreLRUAndTTL(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vec := func(i int) []float32 { v := make([]float32, 4); v[i%4] = 1; v[(i+1)%4] = 0.1 * float32(i); return v }
	for i := 0; i < 3; i++ {
		e := Entry{Partition: "p", Text: fmt.Sprint("q", i), Vector: vec(i), Created: t0.Add(time.Duration(i) * time.Second), Response: []byte{byte(i)}}
		if err := s.Put(ctx, e, 3, 0); err != nil {
			t.Fatal(err)
		}
	}
	// q0 is touched (a hit), so q1 is the least recently used.
	if err := s.Touch(ctx, "p", EntryID("p", "q0")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Entry{Partition: "p", Text: "q3", Vector: vec(3), Created: t0.Add(3 * time.Second)}, 3, 0); err != nil {
		t.Fatal(err)
	}
	if n := s.Len("p"); n != 3 {
		t.Fatalf("len %d, want 3", n)
	}
	got, err := s.Lookup(ctx, "p", vec(1), 0.999, t0)
	if err != nil || len(got) != 0 {
		t.Fatalf("q1 should be gone: %v %v", got, err)
	}
	got, err = s.Lookup(ctx, "p", vec(0), 0.999, t0)
	if err != nil || len(got) != 1 || got[0].Text != "q0" || string(got[0].Response) != "\x00" {
		t.Fatalf("q0 should stay: %+v %v", got, err)
	}
	// TTL: an entry expires ttl after its creation.
	s2 := NewMemStore()
	if err := s2.Put(ctx, Entry{Partition: "p", Text: "x", Vector: vec(0), Created: t0}, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.Lookup(ctx, "p", vec(0), 0.9, t0.Add(59*time.Minute)); len(got) != 1 {
		t.Fatalf("before expiry: %d candidates", len(got))
	}
	if got, _ := s2.Lookup(ctx, "p", vec(0), 0.9, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("at expiry: %d candidates", len(got))
	}
	if n := s2.Sweep(t0.Add(time.Hour)); n != 1 || s2.Len("p") != 0 {
		t.Fatalf("sweep dropped %d, %d left", n, s2.Len("p"))
	}
	// Best first, other partitions invisible.
	s3 := NewMemStore()
	for i, v := range [][]float32{{1, 0}, {1, 1}, {1, 0.2}} {
		if err := s3.Put(ctx, Entry{Partition: "p", Text: fmt.Sprint(i), Vector: v, Created: t0}, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = s3.Lookup(ctx, "p", []float32{1, 0}, 0.5, t0)
	if len(got) != 3 || got[0].Text != "0" || got[1].Text != "2" || got[2].Text != "1" {
		t.Fatalf("order: %+v", got)
	}
	if got, _ := s3.Lookup(ctx, "q", []float32{1, 0}, 0.5, t0); len(got) != 0 {
		t.Fatalf("other partition: %+v", got)
	}
}

func TestSemStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				v := []float32{float32(g + 1), float32(i + 1), 1}
				part := fmt.Sprint("p", i%3)
				if err := s.Put(ctx, Entry{Partition: part, Text: fmt.Sprint(g, i), Vector: v, Created: t0}, 50, time.Hour); err != nil {
					t.Error(err)
					return
				}
				got, err := s.Lookup(ctx, part, v, 0.5, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) > 0 {
					if err := s.Touch(ctx, part, got[0].ID); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	for i := 0; i < 3; i++ {
		if n := s.Len(fmt.Sprint("p", i)); n != 50 {
			t.Errorf("partition p%d holds %d, want 50", i, n)
		}
	}
}

func TestSemParseOpenAI(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","temperature":0,"stream":true,"max_tokens":50,
	 "messages":[{"role":"system","content":"Be terse."},
	  {"role":"user","content":[{"type":"text","text":"What is in"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"this picture?"}]}]}`)
	r, err := ParseOpenAI(body, "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "gpt-4o" || len(r.Messages) != 2 || r.Messages[0].Text != "Be terse." {
		t.Fatalf("%+v", r)
	}
	if text, ok := LastUser(r); !ok || text != "What is in\nthis picture?" {
		t.Fatalf("last user %q %v", text, ok)
	}
	if got, want := string(r.Messages[1].Extra), `{"content_parts":[{"type":"text"},{"image_url":{"url":"data:x"},"type":"image_url"},{"type":"text"}]}`; got != want {
		t.Fatalf("extra %s, want %s", got, want)
	}
	if got, want := string(r.Rest), `{"max_tokens":50,"temperature":0}`; got != want {
		t.Fatalf("rest %s, want %s", got, want)
	}
	if ok, _ := Eligible(r); !ok {
		t.Fatal("not eligible")
	}
	// Another image: another partition. Streaming or not: the same.
	other, _ := ParseOpenAI([]byte(`{"model":"gpt-4o","temperature":0,"max_tokens":50,
	 "messages":[{"role":"system","content":"Be terse."},
	  {"role":"user","content":[{"type":"text","text":"What is in"},{"type":"image_url","image_url":{"url":"data:y"}},{"type":"text","text":"this picture?"}]}]}`), "acme", false)
	noStream, _ := ParseOpenAI([]byte(`{"model":"gpt-4o","temperature":0,"max_tokens":50,
	 "messages":[{"role":"system","content":"Be terse."},
	  {"role":"user","content":[{"type":"text","text":"What is in"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"this picture?"}]}]}`), "acme", false)
	if Partition(other) == Partition(r) || Partition(noStream) != Partition(r) {
		t.Fatal("image or stream partitioning wrong")
	}
	for _, bad := range []string{`[]`, `{"model":"m"}`, `{"messages":[{"content":"x"}]}`, `{"messages":[],"temperature":"0"}`, `{} {}`} {
		if _, err := ParseOpenAI([]byte(bad), "t", false); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestSemParseAnthropic(t *testing.T) {
	str, err := ParseAnthropic([]byte(`{"model":"claude-sonnet-4-5","max_tokens":100,"temperature":0,"system":"Be terse.","messages":[{"role":"user","content":"Hi there"}]}`), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseAnthropic([]byte(`{"model":"claude-sonnet-4-5","max_tokens":100,"temperature":0,"system":[{"type":"text","text":"Be terse."}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi there"}]}]}`), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Request{str, blocks} {
		if len(r.Messages) != 2 || r.Messages[0].Role != "system" || r.Messages[0].Text != "Be terse." {
			t.Fatalf("%+v", r.Messages)
		}
		if text, ok := LastUser(r); !ok || text != "Hi there" {
			t.Fatalf("last user %q", text)
		}
		if string(r.Rest) != `{"max_tokens":100,"temperature":0}` {
			t.Fatalf("rest %s", r.Rest)
		}
	}
	other, _ := ParseAnthropic([]byte(`{"model":"claude-sonnet-4-5","max_tokens":100,"temperature":0,"system":"Be verbose.","messages":[{"role":"user","content":"Hi there"}]}`), "acme", false)
	if Partition(other) == Partition(str) {
		t.Fatal("system prompt not in the partition")
	}
	if _, err := ParseAnthropic([]byte(`{"model":"m","messages":[{"role":"system","content":"x"}]}`), "t", false); err == nil {
		t.Fatal("system role accepted")
	}
}

func TestSemStoreDelete(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewMemStore()
	vecs := [][]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	for i, v := range vecs {
		if err := s.Put(ctx, Entry{ID: fmt.Sprint(i), Partition: "p", Vector: v, Created: t0}, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Delete("p", "0", "9", "2"); n != 2 || s.Len("p") != 1 {
		t.Fatalf("deleted %d, %d left", n, s.Len("p"))
	}
	if n := s.Delete("q", "1"); n != 0 {
		t.Fatalf("deleted %d from a partition that does not exist", n)
	}
	for i, v := range vecs {
		got, err := s.Lookup(ctx, "p", v, 0.99, t0)
		if err != nil || (len(got) == 1) != (i == 1) || len(got) == 1 && got[0].ID != "1" {
			t.Fatalf("lookup %d after delete: %+v %v", i, got, err)
		}
	}
}

// TestSemLexicalKeyAgrees: on many random pairs of texts from a small
// vocabulary (stopwords, numbers spelled and not, negations, plurals,
// operators), equal keys exactly when Lexical passes.
func TestSemLexicalKeyAgrees(t *testing.T) {
	vocab := strings.Fields("the a is it not no don't two 2 2.0 + * flights flight from to Paris Rome what's what capital never without 10% 10 please")
	rng := rand.New(rand.NewPCG(12, 13))
	text := func() string {
		n := 1 + rng.IntN(5)
		w := make([]string, n)
		for i := range w {
			w[i] = vocab[rng.IntN(len(vocab))]
		}
		return strings.Join(w, " ")
	}
	passed := 0
	for range 20_000 {
		a, b := text(), text()
		ok, _ := Lexical(a, b)
		if same := LexicalKey(a) == LexicalKey(b); same != ok {
			t.Fatalf("%q / %q: Lexical %v, keys equal %v", a, b, ok, same)
		}
		if ok {
			passed++
		}
	}
	if passed < 100 {
		t.Fatalf("only %d of 20,000 random pairs passed Lexical: the test checks too little", passed)
	}
}

// TestSemStoreMaxEntries: beyond MaxEntries the least recently used
// partitions (by Put or hit) are dropped whole, never the one written to;
// one partition alone loses its own least recently used entries; Sweep
// drops expired entries and the partitions they leave empty.
func TestSemStoreMaxEntries(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewMemStore()
	s.MaxEntries = 5
	put := func(part, id string, ttl time.Duration) {
		t.Helper()
		if err := s.Put(ctx, Entry{ID: id, Partition: part, Text: id, Vector: []float32{1, float32(len(id)), 0}, Created: t0}, 0, ttl); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "a1", 0)
	put("a", "a2", 0)
	put("b", "b1", 0)
	put("c", "c1", time.Minute)
	put("c", "c2", time.Minute)
	if err := s.Touch(ctx, "a", "a1"); err != nil { // a is now the most recently used
		t.Fatal(err)
	}
	put("d", "d1", 0) // 6 > 5: b (least recently used) goes whole
	if s.Entries() != 5 || s.Partitions() != 3 || s.Len("b") != 0 || s.Len("a") != 2 || s.Len("c") != 2 || s.Len("d") != 1 {
		t.Fatalf("entries %d, partitions %d: a %d b %d c %d d %d", s.Entries(), s.Partitions(), s.Len("a"), s.Len("b"), s.Len("c"), s.Len("d"))
	}
	// One partition alone over the bound keeps its newest entries.
	for i := range 7 {
		put("e", fmt.Sprintf("e%d", i), 0)
	}
	if s.Entries() != 5 || s.Partitions() != 1 || s.Len("e") != 5 {
		t.Fatalf("entries %d, partitions %d, e %d", s.Entries(), s.Partitions(), s.Len("e"))
	}
	got, _ := s.Lookup(ctx, "e", []float32{1, 2, 0}, -1, t0)
	ids := map[string]bool{}
	for _, c := range got {
		ids[c.ID] = true
	}
	if len(ids) != 5 || ids["e0"] || ids["e1"] || !ids["e6"] {
		t.Fatalf("e keeps %v, want e2…e6", ids)
	}
	// Sweep: c's entries expired and c goes with them; e stays.
	s.MaxEntries = 0
	put("c", "c3", time.Minute)
	if n := s.Sweep(t0.Add(time.Minute)); n != 1 || s.Partitions() != 1 || s.Entries() != 5 {
		t.Fatalf("swept %d: partitions %d, entries %d", n, s.Partitions(), s.Entries())
	}
	put("c", "c4", 0) // a dropped partition comes back on its next Put
	if s.Len("c") != 1 || s.Entries() != 6 {
		t.Fatalf("c after the sweep: %d entries, %d in all", s.Len("c"), s.Entries())
	}
}

// TestSemStoreMaxEntriesConcurrent: Puts, hits and sweeps from many
// goroutines into many partitions keep the count exact and the bound held.
func TestSemStoreMaxEntriesConcurrent(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewMemStore()
	s.MaxEntries = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				part := fmt.Sprintf("p%d", (g*7+i)%23)
				id := fmt.Sprintf("g%d-%d", g, i)
				if err := s.Put(ctx, Entry{ID: id, Partition: part, Text: id, Vector: []float32{1, float32(i), float32(g)}, Created: t0}, 4, time.Duration(i%3)*time.Minute); err != nil {
					t.Error(err)
					return
				}
				_ = s.Touch(ctx, part, id)
				if i%50 == 0 {
					s.Sweep(t0.Add(time.Minute))
				}
			}
		}()
	}
	wg.Wait()
	sum := 0
	for i := range 23 {
		sum += s.Len(fmt.Sprintf("p%d", i))
	}
	if s.Entries() != sum || sum > 50 || sum == 0 {
		t.Fatalf("Entries %d, partitions hold %d, bound 50", s.Entries(), sum)
	}
}
