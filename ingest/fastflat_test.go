package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastFlatSeeds are lines the fast path takes, and lines it must leave to
// encoding/json (escapes, nesting, folded keys, wrong types, bad JSON).
var fastFlatSeeds = []string{
	`{"id":"ev-1","ts":1795255200,"tenant":"acme","user":"u1","endpoint":"/v1/chat/completions","model":"gpt-4o","input_tokens":1000,"cached_input_tokens":400,"output_tokens":100,"latency_ms":812}`,
	`{"id":7,"ts":"2026-11-20T14:30:00Z","model":"claude-sonnet-4.5","input_tokens":5000,"cache_write_5m_tokens":10,"cache_write_1h_tokens":0,"output_tokens":1,"reasoning_tokens":null,"batch":true,"service_tier":"flex"}`,
	` { "tenant" : "t" , "latency_ms" : 1.5e2 , "batch" : false , "service_tier" : null , "extra" : [1] } `,
	`{"tenant":null,"user":"ü","model":"m","input_tokens":-0,"output_tokens":2,"unknown":"x","also":3.25,"n":null,"b":true}`,
	`{"Tenant":"folded","model":"m"}`,
	`{"tſ":1795255200,"model":"m"}`,
	`{"model":"a\"b","input_tokens":1}`,
	`{"model":"m","input_tokens":1.0}`,
	`{"model":"m","input_tokens":01}`,
	`{"model":5}`,
	`{"usage":{"prompt_tokens":1,"completion_tokens":2},"model":"gpt-4o"}`,
	`{"usage":null,"usageMetadata":null,"model":"m"}`,
	`{"model":"m",}`,
	`{"model":"m"} x`,
	`{}`,
	`[]`,
	`{"id":null,"ts":null,"object":"chat.completion","type":"message","created":1,"created_at":2,"createTime":"x","custom_id":"c","response":"r","error":null}`,
	"{\"model\":\"\xff\"}",
	`{"latency_ms":1e400,"model":"m"}`,
	`{"input_tokens":9223372036854775808}`,
	`{"model":"m","model":"n","input_tokens":1,"input_tokens":null}`,
}

// The fast path decodes exactly what encoding/json does, or declines.
func FuzzFastFlat(f *testing.F) {
	for _, s := range fastFlatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastFlat(t, b)
	})
}

func TestFastFlatMatchesEncodingJSON(t *testing.T) {
	taken := 0
	for _, s := range fastFlatSeeds {
		if checkFastFlat(t, []byte(s)) {
			taken++
		}
	}
	// The flat lines above (the first six kinds) must take the fast path.
	if taken < 6 {
		t.Fatalf("fast path took %d of the seeds, want at least 6", taken)
	}
	if !fastFlat([]byte(fastFlatSeeds[0]), &line{}) {
		t.Fatal("a plain flat event did not take the fast path")
	}
}

func checkFastFlat(t *testing.T, b []byte) bool {
	t.Helper()
	def := line{Tenant: "dt", User: "du", Endpoint: "de"}
	fast := def
	if !fastFlat(b, &fast) {
		return false
	}
	slow := def
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("%q: fast path accepted what encoding/json refuses: %v", b, err)
	}
	if !reflect.DeepEqual(normRaw(fast), normRaw(slow)) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", b, fast, slow)
	}
	return true
}

// normRaw makes empty and nil raw values compare equal (the two decoders
// may leave either for an absent field).
func normRaw(l line) line {
	for _, r := range []*json.RawMessage{&l.ID, &l.Object, &l.Type, &l.TS, &l.Created, &l.CreatedAt, &l.CreateTime, &l.CustomID, &l.Response, &l.Error} {
		if len(*r) == 0 {
			*r = nil
		}
	}
	return l
}
