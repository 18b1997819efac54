package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// semResp is a Responses API request at temperature 0: input is raw JSON
// (a string or a list of items), extra fields go before it.
func semResp(instructions, input, extra string) string {
	ins, _ := json.Marshal(instructions)
	return fmt.Sprintf(`{"model":"gpt-4o-mini","temperature":0,"instructions":%s,%s"input":%s,"max_output_tokens":100}`, ins, extra, input)
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// userItems is s as an item list: one message of one input_text part.
func userItems(s string) string {
	return `[{"type":"message","role":"user","content":[{"type":"input_text","text":` + jsonString(s) + `}]}]`
}

// sseEvent is one event of a stream: its event: name and its data.
type sseEvent struct{ name, data string }

// sseEvents splits a stream into its events; ok is false when an event
// lacks its name or its data, or has either twice.
func sseEvents(body string) (evs []sseEvent, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	var cur sseEvent
	var names, datas int
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if names != 1 || datas != 1 {
				return evs, false
			}
			evs = append(evs, cur)
			cur, names, datas = sseEvent{}, 0, 0
		case strings.HasPrefix(line, "event: "):
			cur.name, names = strings.TrimPrefix(line, "event: "), names+1
		case strings.HasPrefix(line, "data: "):
			cur.data, datas = strings.TrimPrefix(line, "data: "), datas+1
		default:
			return evs, false
		}
	}
	return evs, names == 0 && datas == 0 && strings.HasSuffix(body, "\n\n")
}

// TestProxySemanticResponses: the Responses API gets the semantic cache:
// a miss is stored (non-streamed and streamed), a paraphrase is served
// (non-streamed, and streamed as a well-formed Responses event stream),
// a changed number, another tenant and ineligible requests go upstream, and
// the ledger rows are those of chat hits.
func TestProxySemanticResponses(t *testing.T) {
	se := newSemEnv(t, nil)
	ctx := context.Background()
	k := se.key("acme", "alice", "acme-k")
	kg := se.key("globex", "", "globex-k")
	for _, tn := range []string{"acme", "globex"} {
		se.setPolicy(ledger.Policy{Tenant: tn, SemanticCache: true, Similarity: 9500, SemanticTTL: time.Hour})
	}
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	se.waitPolicy("globex", func(p ledger.Policy) bool { return p.SemanticCache })
	post := func(key, body string, hdr ...string) resp {
		t.Helper()
		r := se.do("POST", "/v1/responses", key, false, body, hdr...)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		return r
	}
	partition := func(body string) string {
		t.Helper()
		r, err := semcache.ParseResponses([]byte(body), "acme", false)
		if err != nil {
			t.Fatal(err)
		}
		return semcache.Partition(r)
	}

	// A miss, stored.
	stored := semResp(semSys, jsonString(semStored), "")
	r1 := post(k, stored)
	if r1.Header.Get("X-Costctl-Cache") == "semantic" || se.up.calls.Load() != 1 || !strings.Contains(r1.Body, `"text":"hi there"`) {
		t.Fatalf("first call: %q, %d upstream calls\n%s", r1.Header.Get("X-Costctl-Cache"), se.up.calls.Load(), r1.Body)
	}
	eventually(t, "entry stored", func() bool { return se.store.Len(partition(stored)) == 1 })
	calls := se.up.calls.Load()

	// A paraphrase, as an item list: served from the stored answer.
	para := semResp(semSys, userItems(semPara), "")
	if partition(para) != partition(stored) {
		t.Fatal("string input and item list: another partition")
	}
	r2 := post(k, para)
	wantSim := similarity(semPara, semStored)
	if r2.Header.Get("X-Costctl-Cache") != "semantic" || r2.Header.Get("X-Costctl-Similarity") != wantSim || wantSim == "1.0000" ||
		r2.Body != r1.Body || se.up.calls.Load() != calls {
		t.Fatalf("paraphrase: %q %q (want %s), upstream %d→%d\n%s", r2.Header.Get("X-Costctl-Cache"), r2.Header.Get("X-Costctl-Similarity"),
			wantSim, calls, se.up.calls.Load(), r2.Body)
	}

	// The paraphrase streamed: a Responses event stream built from the
	// stored answer.
	r3 := post(k, semResp(semSys, userItems(semPara), `"stream":true,`))
	if r3.Header.Get("X-Costctl-Cache") != "semantic" || !strings.HasPrefix(r3.Header.Get("Content-Type"), "text/event-stream") ||
		se.up.calls.Load() != calls {
		t.Fatalf("streamed hit: %q %q, upstream %d→%d\n%s", r3.Header.Get("X-Costctl-Cache"), r3.Header.Get("Content-Type"), calls, se.up.calls.Load(), r3.Body)
	}
	evs, ok := sseEvents(r3.Body)
	if !ok {
		t.Fatalf("malformed stream:\n%s", r3.Body)
	}
	var names []string
	var deltas strings.Builder
	for i, ev := range evs {
		var d struct {
			Type     string `json:"type"`
			Seq      *int   `json:"sequence_number"`
			Delta    string `json:"delta"`
			Text     string `json:"text"`
			Response *struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Output []struct {
					Content []struct {
						Type string `json:"type"`
						Text string `json:"text"`
					} `json:"content"`
				} `json:"output"`
				Usage *struct {
					InputTokens  int64 `json:"input_tokens"`
					OutputTokens int64 `json:"output_tokens"`
				} `json:"usage"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil || d.Type != ev.name || d.Seq == nil || *d.Seq != i {
			t.Fatalf("event %d %q: %s (%v)", i, ev.name, ev.data, err)
		}
		names = append(names, d.Type)
		switch d.Type {
		case "response.created", "response.in_progress":
			if d.Response == nil || d.Response.ID != "resp_1" || d.Response.Status != "in_progress" || len(d.Response.Output) != 0 || d.Response.Usage != nil {
				t.Fatalf("%s: %s", d.Type, ev.data)
			}
		case "response.output_text.delta":
			deltas.WriteString(d.Delta)
		case "response.output_text.done":
			if d.Text != "hi there" {
				t.Fatalf("text done: %s", ev.data)
			}
		case "response.completed":
			if d.Response == nil || d.Response.ID != "resp_1" || d.Response.Usage == nil || d.Response.Usage.InputTokens != 300 ||
				d.Response.Usage.OutputTokens != 20 || len(d.Response.Output) != 1 || len(d.Response.Output[0].Content) != 1 ||
				d.Response.Output[0].Content[0].Type != "output_text" || d.Response.Output[0].Content[0].Text != "hi there" {
				t.Fatalf("completed: %s", ev.data)
			}
		}
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if strings.Join(names, " ") != want || deltas.String() != "hi there" {
		t.Fatalf("events %v, text %q", names, deltas.String())
	}
	// The proxy's own stream reader takes it for a complete stream.
	st := &streamState{kind: kindResponses}
	if cerr, uerr := st.relay(io.Discard, func() error { return nil }, strings.NewReader(r3.Body)); cerr != nil || uerr != nil {
		t.Fatal(cerr, uerr)
	}
	if u, complete := st.final(); !complete || !st.done || u.Input != 300 || u.Output != 20 || u.Reasoning != 5 || st.text.String() != "hi there" {
		t.Fatalf("read back: %+v complete %v done %v text %q", u, complete, st.done, st.text.String())
	}

	// Misses: each goes upstream.
	for _, tc := range []struct {
		name, key, body string
		hdr             []string
	}{
		{"changed number", k, semResp(semSys, userItems(strings.Replace(semPara, "May 2", "May 3", 1)), ""), nil},
		{"another tenant", kg, stored, nil},
		{"another previous_response_id", k, semResp(semSys, userItems(semPara), `"previous_response_id":"resp_9",`), nil},
	} {
		before := se.up.calls.Load()
		r := post(tc.key, tc.body, tc.hdr...)
		if r.Header.Get("X-Costctl-Cache") == "semantic" || se.up.calls.Load() != before+1 {
			t.Errorf("%s: %q, upstream %d→%d", tc.name, r.Header.Get("X-Costctl-Cache"), before, se.up.calls.Load())
		}
	}
	embedded := 1 + 2 + 3 // stored, two hits, three misses

	// A streamed miss is stored as its stream, and a streamed paraphrase
	// gets that stream.
	museum := semResp(semSys, jsonString(semMuseum), `"stream":true,`)
	// The partition holds the stored answer and the changed number's.
	eventually(t, "changed number stored", func() bool { return se.store.Len(partition(museum)) == 2 })
	r4 := post(k, museum)
	if r4.Header.Get("X-Costctl-Cache") == "semantic" || !strings.Contains(r4.Body, "event: response.completed") {
		t.Fatalf("streamed miss: %q\n%s", r4.Header.Get("X-Costctl-Cache"), r4.Body)
	}
	eventually(t, "streamed entry stored", func() bool { return se.store.Len(partition(museum)) == 3 })
	calls = se.up.calls.Load()
	r5 := post(k, semResp(semSys, userItems("Hi, "+semMuseum+" thanks"), `"stream":true,`))
	if r5.Header.Get("X-Costctl-Cache") != "semantic" || r5.Body != r4.Body || se.up.calls.Load() != calls {
		t.Fatalf("streamed hit of a streamed entry: %q, upstream %d→%d\n%s", r5.Header.Get("X-Costctl-Cache"), calls, se.up.calls.Load(), r5.Body)
	}
	embedded += 2

	// Never eligible, forced or not: no embedding, forwarded.
	se.settle()
	for _, tc := range []struct{ name, body string }{
		{"background", semResp(semSys, jsonString(semStored), `"background":true,`)},
		{"image", semResp(semSys, `[{"role":"user","content":[{"type":"input_text","text":`+jsonString(semStored)+`},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]`, "")},
	} {
		before := se.up.calls.Load()
		r := post(k, tc.body, "X-Costctl-Cache", "force")
		if r.Header.Get("X-Costctl-Cache") == "semantic" || se.up.calls.Load() != before+1 || se.fe.Calls() != embedded {
			t.Errorf("%s: %q, upstream %d→%d, %d embedding calls (want %d)", tc.name, r.Header.Get("X-Costctl-Cache"), before, se.up.calls.Load(), se.fe.Calls(), embedded)
		}
	}
	se.settle()
	if se.fe.Calls() != embedded {
		t.Fatalf("%d embedding calls, want %d", se.fe.Calls(), embedded)
	}

	// The ledger: one embedding row per embedded request, each semantic
	// hit a cache hit at cost 0 avoiding the stored call's cost.
	forwarded := 1 + 3 + 1 + 2 // stored, misses, streamed miss, ineligible
	hits := 3
	rows := se.waitRows(embedded + forwarded + hits)
	fullCost, _ := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 300, OutputTokens: 20, ReasoningTokens: 5}).Money()
	streamCost, _ := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 300, CachedTokens: 100, OutputTokens: 20, ReasoningTokens: 5}).Money()
	if fullCost <= 0 || streamCost <= 0 || fullCost == streamCost {
		t.Fatalf("costs %d %d", fullCost, streamCost)
	}
	var nEmbed, nCall int
	var hitRows []row
	var embedCost pricing.Amount
	for _, rw := range rows {
		switch {
		case rw.Metric == ledger.MetricEmbed:
			nEmbed++
			want := priceOf(t, "text-embedding-3-small", ledger.Event{InputTokens: rw.In})
			if rw.Model != "text-embedding-3-small" || rw.In <= 0 || rw.Cost != want || rw.Hit || rw.Endpoint != "/v1/embeddings" {
				t.Fatalf("embedding row %+v, want cost %s", rw, want)
			}
			embedCost = embedCost.Add(rw.Cost)
		case rw.Hit:
			hitRows = append(hitRows, rw)
		default:
			nCall++
			if rw.Endpoint != "/v1/responses" || rw.Cost.IsZero() {
				t.Fatalf("call row %+v", rw)
			}
		}
	}
	if nEmbed != embedded || nCall != forwarded || len(hitRows) != hits {
		t.Fatalf("%d embedding rows (want %d), %d call rows (want %d), %d hit rows (want %d)", nEmbed, embedded, nCall, forwarded, len(hitRows), hits)
	}
	// Two hits of the non-streamed entry, one of the streamed one (its
	// usage has cached tokens), in whatever order the writer got them.
	var fromFull, fromStream int
	for i, rw := range hitRows {
		switch {
		case rw.Avoided == int64(fullCost) && rw.Cached == 0:
			fromFull++
		case rw.Avoided == int64(streamCost) && rw.Cached == 100:
			fromStream++
		default:
			t.Fatalf("hit row %d %+v, want avoided %d (cached 0) or %d (cached 100)", i, rw, fullCost, streamCost)
		}
		if !rw.Cost.IsZero() || rw.Tenant != "acme" || rw.User != "alice" || rw.Model != "gpt-4o-mini" ||
			rw.Endpoint != "/v1/responses" || rw.Status != 200 || rw.In != 300 || rw.Out != 20 || rw.Reasoning != 5 {
			t.Fatalf("hit row %d %+v", i, rw)
		}
	}
	if fromFull != 2 || fromStream != 1 {
		t.Fatalf("%d hits of the non-streamed entry (want 2), %d of the streamed one (want 1)", fromFull, fromStream)
	}
	var nSem int
	if err := se.db.SQL().QueryRow(`SELECT COUNT(*) FROM events WHERE semantic = 1 AND cache_hit = 1 AND tenant = 'acme' AND endpoint = '/v1/responses'`).Scan(&nSem); err != nil {
		t.Fatal(err)
	}
	if nSem != hits {
		t.Fatalf("%d semantic hit rows, want %d", nSem, hits)
	}
	avoided := 2*fullCost + streamCost
	tot, err := se.db.Totals(ctx, se.clock.now().Add(-48*time.Hour), se.clock.now().Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if tot.SemanticHits != int64(hits) || tot.SemanticAvoided != avoided || tot.EmbedCalls != int64(embedded) || tot.EmbedCost != embedCost {
		t.Fatalf("totals: %d semantic hits avoiding %s, %d embeddings costing %s; want %d, %s, %d, %s",
			tot.SemanticHits, tot.SemanticAvoided, tot.EmbedCalls, tot.EmbedCost, hits, avoided, embedded, embedCost)
	}
	if tot.NetSemantic() != pricing.AmountFromMoney(avoided).Sub(embedCost) {
		t.Fatalf("net %s", tot.NetSemantic())
	}
}

// TestSynthesizeResponses: what a non-streamed response may be streamed
// from, and what not.
func TestSynthesizeResponses(t *testing.T) {
	types := func(b []byte) string {
		evs, ok := sseEvents(string(b))
		if !ok {
			t.Fatalf("malformed stream:\n%s", b)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.name)
		}
		return strings.Join(out, " ")
	}
	b, ok := synthesizeStream(kindResponses, []byte(`{"id":"r","object":"response","status":"incomplete","created_at":1741476542,`+
		`"output":[{"id":"rs_1","type":"reasoning","summary":[]},{"id":"m1","type":"message","status":"incomplete","role":"assistant",`+
		`"content":[{"type":"refusal","refusal":"no"},{"type":"output_text","text":"a<b","annotations":[]}]}],"usage":{"input_tokens":1,"output_tokens":2}}`), false)
	want := "response.created response.in_progress response.output_item.added response.output_item.done response.output_item.added " +
		"response.content_part.added response.refusal.delta response.refusal.done response.content_part.done " +
		"response.content_part.added response.output_text.delta response.output_text.done response.content_part.done response.output_item.done response.incomplete"
	if !ok || types(b) != want {
		t.Fatalf("%v\n%s", ok, b)
	}
	evs, _ := sseEvents(string(b))
	var last struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal([]byte(evs[len(evs)-1].data), &last); err != nil || !strings.Contains(string(last.Response), `"created_at":1741476542`) {
		t.Fatalf("last event %s", evs[len(evs)-1].data)
	}
	var delta struct {
		ItemID       string `json:"item_id"`
		OutputIndex  int    `json:"output_index"`
		ContentIndex int    `json:"content_index"`
		Delta        string `json:"delta"`
	}
	if err := json.Unmarshal([]byte(evs[10].data), &delta); err != nil || delta.ItemID != "m1" || delta.OutputIndex != 1 || delta.ContentIndex != 1 || delta.Delta != "a<b" {
		t.Fatalf("delta %s", evs[10].data)
	}
	for name, full := range map[string]string{
		"function call":     `{"id":"r","status":"completed","output":[{"type":"function_call","name":"f","arguments":"{}","call_id":"c"}],"usage":{}}`,
		"reasoning summary": `{"id":"r","status":"completed","output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"x"}]}],"usage":{}}`,
		"failed":            `{"id":"r","status":"failed","output":[],"usage":{}}`,
		"in progress":       `{"id":"r","status":"in_progress","output":[],"usage":{}}`,
		"audio part":        `{"id":"r","status":"completed","output":[{"type":"message","content":[{"type":"output_audio"}]}],"usage":{}}`,
		"not JSON":          `{"id":`,
	} {
		if b, ok := synthesizeStream(kindResponses, []byte(full), false); ok || b != nil {
			t.Errorf("%s: streamed\n%s", name, b)
		}
	}
}
