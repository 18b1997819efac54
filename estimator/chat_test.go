package estimator

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Every way a --chat input can be wrong is reported with the line, the
// field path and what was expected — never a Go type name.
func TestParseChatErrors(t *testing.T) {
	const shape = `a chat request {"messages": [...]} or a list of messages [{"role": ..., "content": ...}]`
	cases := []struct {
		name, in string
		want     string // ChatError.Error()
	}{
		{"empty", "  \n", "empty; expected " + shape},
		{"a string", `"hi"`, "line 1: expected " + shape + ", got a string"},
		{"a number", "\n\n42", "line 3: expected " + shape + ", got a number"},
		{"no messages", `{"model":"gpt-4o"}`, `line 1: no "messages" field; expected ` + shape},
		{"messages not a list", "{\n \"messages\": {}\n}", "line 2: messages: expected a list of messages, got an object"},
		{"message not an object", `{"messages": ["hi"]}`, `line 1: messages[0]: expected a message object {"role": ..., "content": ...}, got a string`},
		{"role missing", "[\n {\"content\":\"x\"}\n]", `line 2: [0].role: missing; expected a string such as "user"`},
		{"role a number", "{\"messages\": [\n  {\"role\": 5, \"content\": \"a\"}\n]}", `line 2: messages[0].role: expected a string such as "user", got a number`},
		{"role empty", `[{"role":""}]`, `line 1: [0].role: empty; expected a role such as "user"`},
		{"content a number", "{\"messages\": [\n {\"role\":\"user\",\"content\":\"a\"},\n {\"role\":\"user\",\"content\":\"b\"},\n {\"role\":\"user\",\n  \"content\": 5}\n]}",
			"line 5: messages[2].content: expected a string or a list of content parts, got a number"},
		{"content an object", `[{"role":"user","content":{"text":"x"}}]`, "line 1: [0].content: expected a string or a list of content parts, got an object"},
		{"part not an object", `[{"role":"user","content":["x"]}]`, `line 1: [0].content[0]: expected a content part such as {"type": "text", "text": "..."}, got a string`},
		{"part text a list", "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},\n{\"type\":\"text\",\"text\":[1]}]}]", "line 2: [0].content[1].text: expected a string, got a list"},
		{"name a boolean", `[{"role":"user","content":"x","name":true}]`, "line 1: [0].name: expected a string, got a boolean"},
		{"tool_calls an object", `[{"role":"assistant","tool_calls":{}}]`, "line 1: [0].tool_calls: expected a list of tool calls, got an object"},
		{"arguments an object", `[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]}]`,
			"line 1: [0].tool_calls[0].function.arguments: expected a string (the arguments as JSON text), got an object"},
		{"tools a string", `{"messages":[],"tools":"x"}`, "line 1: tools: expected a list of tool definitions, got a string"},
		{"truncated", "[{\"role\":\n", "line 2: not valid JSON: the input ends before the JSON value does"},
		{"syntax", "{\"messages\": [\n  {\"role\": \"user\",}\n]}", "line 2: not valid JSON: invalid character '}' looking for beginning of object key string"},
		{"markdown", "# System\n\nYou are helpful.\n", "line 1: not valid JSON: invalid character '#' looking for beginning of value"},
		{"two values", "[]\n[]", "line 2: more after the end of the JSON value; expected one chat request per input"},
		{"deep", strings.Repeat("[", 20000), "line 1: not valid JSON: nested too deeply"},
	}
	for _, c := range cases {
		_, _, err := ParseChat([]byte(c.in))
		var ce *ChatError
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v (%T), want a *ChatError", c.name, err, err)
			continue
		}
		if got := ce.Error(); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		if strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "unmarshal") {
			t.Errorf("%s: Go terms in %q", c.name, err)
		}
	}
}

func TestParseChatAccepts(t *testing.T) {
	in := `{"messages": [
	  {"role": "system", "content": null},
	  {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "world"}], "name": "bob"},
	  {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
	  {"role": "user", "content": "one", "content": "two"}
	], "tools": [ {"type": "function", "function": {"name": "f"}} ], "temperature": 0.2}`
	msgs, tools, err := ParseChat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{{Role: "system"}, {Role: "user", Content: "Hello world", Name: "bob", Images: []Image{{URL: "x"}}}, {Role: "assistant", Content: `f{"a":1}`}, {Role: "user", Content: "two"}}
	if len(msgs) != len(want) {
		t.Fatalf("msgs = %+v", msgs)
	}
	for i := range want {
		if !reflect.DeepEqual(msgs[i], want[i]) {
			t.Errorf("msgs[%d] = %+v, want %+v", i, msgs[i], want[i])
		}
	}
	if len(tools) != 1 || string(tools[0]) != `{"type": "function", "function": {"name": "f"}}` {
		t.Errorf("tools = %q", tools)
	}
	if _, tools, err := ParseChat([]byte(`{"messages":[],"tools":null}`)); err != nil || tools != nil {
		t.Errorf("null tools: %v %v", tools, err)
	}
}

func TestParseMessageAndContentText(t *testing.T) {
	m, err := ParseMessage(json.RawMessage(`{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}`))
	if err != nil || m.Content != "ab" || m.Role != "user" {
		t.Errorf("ParseMessage = %+v, %v", m, err)
	}
	if _, err := ParseMessage(json.RawMessage(`{"role":"user","content":7}`)); err == nil || err.Error() != "line 1: content: expected a string or a list of content parts, got a number" {
		t.Errorf("ParseMessage error = %v", err)
	}
	for raw, want := range map[string]string{``: "", `null`: "", `"x"`: "x", `[{"text":"y"}]`: "y"} {
		if got, err := ContentText(json.RawMessage(raw)); err != nil || got != want {
			t.Errorf("ContentText(%q) = %q, %v", raw, got, err)
		}
	}
}
