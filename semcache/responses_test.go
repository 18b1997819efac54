package semcache

import (
	"strings"
	"testing"
)

func parseResp(t *testing.T, body string, force bool) *Request {
	t.Helper()
	r, err := ParseResponses([]byte(body), "acme", force)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return r
}

// respBody is a Responses request at temperature 0 with input as given
// (raw JSON) and extra fields before it.
func respBody(extra, input string) string {
	return `{"model":"gpt-4o-mini","temperature":0,"instructions":"Be terse.",` + extra + `"input":` + input + `,"max_output_tokens":50}`
}

// TestSemResponsesSameMeaning: a string input and the item lists that mean
// the same one user message share a partition; item lists that mean
// something else do not.
func TestSemResponsesSameMeaning(t *testing.T) {
	base := parseResp(t, respBody("", `"What is the capital of France?"`), false)
	p := Partition(base)
	if got, want := string(base.Rest), `{"max_output_tokens":50,"temperature":0}`; got != want {
		t.Fatalf("rest %s, want %s", got, want)
	}
	if len(base.Messages) != 2 || base.Messages[0].Role != "instructions" || base.Messages[0].Text != "Be terse." ||
		base.Messages[1].Role != "user" || base.Messages[1].Extra != nil {
		t.Fatalf("messages %+v", base.Messages)
	}
	for name, body := range map[string]string{
		"message item":             respBody("", `[{"role":"user","content":"What is the capital of France?"}]`),
		"typed message item":       respBody("", `[{"type":"message","role":"user","content":"What is the capital of France?"}]`),
		"one input_text part":      respBody("", `[{"type":"message","role":"user","content":[{"type":"input_text","text":"What is the capital of France?"}]}]`),
		"another last user text":   respBody("", `[{"role":"user","content":[{"text":"Capital of France, please?","type":"input_text"}]}]`),
		"streamed, keys reordered": `{"stream":true,"stream_options":{"include_obfuscation":false},"input":"What is the capital of France?","max_output_tokens":50,"instructions":"Be terse.","temperature":0,"model":"gpt-4o-mini"}`,
	} {
		if got := Partition(parseResp(t, body, false)); got != p {
			t.Errorf("%s: another partition", name)
		}
	}
	for name, body := range map[string]string{
		"two input_text parts":          respBody("", `[{"role":"user","content":[{"type":"input_text","text":"What is the capital"},{"type":"input_text","text":"of France?"}]}]`),
		"a developer message":           respBody("", `[{"role":"developer","content":"What is the capital of France?"}]`),
		"instructions as a system item": `{"model":"gpt-4o-mini","temperature":0,"input":[{"role":"system","content":"Be terse."},{"role":"user","content":"What is the capital of France?"}],"max_output_tokens":50}`,
		"a message id":                  respBody("", `[{"id":"msg_1","role":"user","content":"What is the capital of France?"}]`),
	} {
		if Partition(parseResp(t, body, false)) == p {
			t.Errorf("%s: same partition", name)
		}
	}
	// The same conversation in chat completions is another partition.
	chat, err := ParseOpenAI([]byte(`{"model":"gpt-4o-mini","temperature":0,"max_output_tokens":50,"messages":[{"role":"instructions","content":"Be terse."},{"role":"user","content":"What is the capital of France?"}]}`), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if string(chat.Rest) != string(base.Rest) || Partition(chat) == p {
		t.Fatalf("chat and responses share a partition (rest %s / %s)", chat.Rest, base.Rest)
	}
}

// TestSemResponsesPartition: everything but the last user message's text
// is in the partition.
func TestSemResponsesPartition(t *testing.T) {
	const q = `{"role":"user","content":"What is the capital of France?"}`
	p := Partition(parseResp(t, respBody("", `[`+q+`]`), false))
	for name, body := range map[string]string{
		"instructions":             strings.Replace(respBody("", `[`+q+`]`), "Be terse.", "Be verbose.", 1),
		"no instructions":          `{"model":"gpt-4o-mini","temperature":0,"input":[` + q + `],"max_output_tokens":50}`,
		"empty instructions":       `{"model":"gpt-4o-mini","temperature":0,"instructions":"","input":[` + q + `],"max_output_tokens":50}`,
		"model":                    strings.Replace(respBody("", `[`+q+`]`), "gpt-4o-mini", "gpt-4o", 1),
		"earlier message":          respBody("", `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},`+q+`]`),
		"earlier assistant output": respBody("", `[{"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"hello","annotations":[]}]},`+q+`]`),
		"earlier function call": respBody("", `[{"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Paris\"}"},`+
			`{"type":"function_call_output","call_id":"c1","output":"sunny"},`+q+`]`),
		"another function output": respBody("", `[{"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Paris\"}"},`+
			`{"type":"function_call_output","call_id":"c1","output":"rainy"},`+q+`]`),
		"earlier image":                respBody("", `[{"role":"user","content":[{"type":"input_image","image_url":"data:x"}]},`+q+`]`),
		"tools":                        respBody(`"tools":[{"type":"function","name":"weather","parameters":{}}],`, `[`+q+`]`),
		"tool_choice":                  respBody(`"tool_choice":"none",`, `[`+q+`]`),
		"temperature":                  strings.Replace(respBody("", `[`+q+`]`), `"temperature":0`, `"temperature":0.2`, 1),
		"top_p":                        respBody(`"top_p":0.5,`, `[`+q+`]`),
		"text format":                  respBody(`"text":{"format":{"type":"json_object"}},`, `[`+q+`]`),
		"reasoning":                    respBody(`"reasoning":{"effort":"high"},`, `[`+q+`]`),
		"max_output_tokens":            strings.Replace(respBody("", `[`+q+`]`), `"max_output_tokens":50`, `"max_output_tokens":51`, 1),
		"previous_response_id":         respBody(`"previous_response_id":"resp_1",`, `[`+q+`]`),
		"another previous_response_id": respBody(`"previous_response_id":"resp_2",`, `[`+q+`]`),
		"store":                        respBody(`"store":false,`, `[`+q+`]`),
		"metadata":                     respBody(`"metadata":{"k":"v"},`, `[`+q+`]`),
		"unknown field":                respBody(`"truncation":"auto",`, `[`+q+`]`),
	} {
		if Partition(parseResp(t, body, false)) == p {
			t.Errorf("%s: same partition", name)
		}
	}
	a := parseResp(t, respBody(`"previous_response_id":"resp_1",`, `[`+q+`]`), false)
	b := parseResp(t, respBody(`"previous_response_id":"resp_2",`, `[`+q+`]`), false)
	if Partition(a) == Partition(b) {
		t.Error("previous_response_id resp_1 and resp_2: same partition")
	}
	other, _ := ParseResponses([]byte(respBody("", `[`+q+`]`)), "globex", false)
	if Partition(other) == p {
		t.Error("tenant: same partition")
	}
}

func TestSemResponsesEligible(t *testing.T) {
	for _, c := range []struct {
		name, body string
		force      bool
		ok         bool
		why        string
	}{
		{"temperature 0", respBody("", `"hi there"`), false, true, ""},
		{"an earlier image", respBody("", `[{"role":"user","content":[{"type":"input_image","image_url":"data:x"}]},{"role":"assistant","content":"a cat"},{"role":"user","content":"and its colour?"}]`), false, true, ""},
		{"no temperature", `{"model":"m","input":"hi there"}`, false, false, "no temperature given (only temperature 0 or x-costctl-cache: force is eligible)"},
		{"temperature 0.7", `{"model":"m","input":"hi there","temperature":0.7}`, false, false, "temperature 0.7 is not 0"},
		{"forced", `{"model":"m","input":"hi there","temperature":0.7}`, true, true, ""},
		{"background", respBody(`"background":true,`, `"hi there"`), true, false, "background is true: the answer is fetched later, not returned"},
		{"background false", respBody(`"background":false,`, `"hi there"`), false, true, ""},
		{"conversation", respBody(`"conversation":"conv_1",`, `"hi there"`), true, false,
			"the request names a conversation: the upstream adds each turn to it, an answer from the cache would not"},
		{"image in the last user message", respBody("", `[{"role":"user","content":[{"type":"input_text","text":"What is in this picture?"},{"type":"input_image","image_url":"data:x"}]}]`), true, false,
			"the last user message is not plain text (it has a part other than input_text)"},
		{"file in the last user message", respBody("", `[{"role":"user","content":[{"type":"input_file","file_id":"file_1"},{"type":"input_text","text":"Summarise it"}]}]`), true, false,
			"the last user message is not plain text (it has a part other than input_text)"},
		{"a function output last", respBody("", `[{"role":"user","content":"weather?"},{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"sunny"}]`), true, false,
			"the last message is not a user message"},
		{"no input", respBody(`"previous_response_id":"resp_1",`, `null`), true, false, "the last message is not a user message"},
		{"empty text", respBody("", `[{"role":"user","content":[]}]`), true, false, "the last user message has no text"},
	} {
		r := parseResp(t, c.body, c.force)
		if ok, why := Eligible(r); ok != c.ok || why != c.why {
			t.Errorf("%s: Eligible = %v, %q; want %v, %q", c.name, ok, why, c.ok, c.why)
		}
	}
}

func TestSemResponsesLastUser(t *testing.T) {
	for _, c := range []struct {
		body, text string
		ok         bool
	}{
		{respBody("", `"What is the capital of France?"`), "What is the capital of France?", true},
		{respBody("", `[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"second"}]`), "second", true},
		{respBody("", `[{"role":"user","content":[{"type":"input_text","text":"What is in"},{"type":"input_image","image_url":"data:x"},{"type":"input_text","text":"this picture?"}]}]`), "What is in\nthis picture?", true},
		{respBody("", `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`), "", false},
		{respBody("", `[{"role":"user","content":"hi"},{"type":"item_reference","id":"msg_1"}]`), "", false},
	} {
		text, ok := LastUser(parseResp(t, c.body, false))
		if text != c.text || ok != c.ok {
			t.Errorf("%s: LastUser = %q, %v; want %q, %v", c.body, text, ok, c.text, c.ok)
		}
	}
	r := parseResp(t, respBody("", `[{"role":"user","content":[{"type":"input_text","text":"What is in"},{"type":"input_image","image_url":"data:x"},{"type":"input_text","text":"this picture?"}]}]`), false)
	if got, want := string(r.Messages[1].Extra), `{"content_parts":[{"type":"input_text"},{"image_url":"data:x","type":"input_image"},{"type":"input_text"}]}`; got != want {
		t.Fatalf("extra %s, want %s", got, want)
	}
	fc := parseResp(t, respBody("", `[{"type":"function_call","name":"f","call_id":"c1","arguments":"{}"},{"role":"user","content":"hi"}]`), false)
	if m := fc.Messages[1]; m.Role != "item" || string(m.Extra) != `{"arguments":"{}","call_id":"c1","name":"f","type":"function_call"}` {
		t.Fatalf("item %+v (%s)", m, m.Extra)
	}
}

func TestSemResponsesErrors(t *testing.T) {
	for _, bad := range []string{
		`[]`,
		`{"model":"m","input":3}`,
		`{"model":"m","input":[3]}`,
		`{"model":"m","input":[{"content":"x"}]}`,
		`{"model":"m","input":[{"role":"tool","content":"x"}]}`,
		`{"model":"m","input":[{"role":"instructions","content":"x"},{"role":"user","content":"y"}]}`,
		`{"model":"m","input":[{"role":"user"}]}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":3},{"type":"input_text","text":"x"}]}]}`,
		`{"model":"m","input":[{"role":"user","content":["x"]}]}`,
		`{"model":"m","input":[{"type":3}]}`,
		`{"model":"m","input":"x","temperature":"0"}`,
		`{"model":"m","input":"x"} {}`,
	} {
		if _, err := ParseResponses([]byte(bad), "t", false); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestSemPartitionGolden: the partitions of chat completions and messages
// requests are what they were before the Responses API had one (entries
// already stored keep being found).
func TestSemPartitionGolden(t *testing.T) {
	r, err := ParseOpenAI([]byte(`{"model":"gpt-4o","temperature":0,"messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi"}]}`), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAnthropic([]byte(`{"model":"claude-sonnet-4-5","max_tokens":10,"temperature":0,"system":"Be terse.","messages":[{"role":"user","content":"Hi"}]}`), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := Partition(r); got != "ddd0dda7cbe676cb0b37c30bd9ab63b10955f4f536cb4d9a4439bba5b7168af7" {
		t.Errorf("chat partition %s", got)
	}
	if got := Partition(a); got != "08ea96b1e8ec624fc7d49e2930ef0dd88892ff7e53da38ec0970a7a39b508f46" {
		t.Errorf("messages partition %s", got)
	}
}
