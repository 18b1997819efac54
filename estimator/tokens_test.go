package estimator

import (
	"encoding/json"
	"testing"

	"github.com/costctl/costctl/pricing"
)

// The example conversation from OpenAI's "How to count tokens with
// tiktoken" cookbook; the API reported 129 prompt tokens for gpt-3.5-turbo
// and gpt-4 (cl100k_base) and 124 for gpt-4o and gpt-4o-mini (o200k_base).
const cookbookMessages = `[
  {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
  {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
  {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
  {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
  {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
  {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
]`

// The cookbook's tool example: 105 prompt tokens for gpt-3.5-turbo/gpt-4,
// 101 for gpt-4o/gpt-4o-mini.
const cookbookTools = `{
  "messages": [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"}
  ],
  "tools": [{
    "type": "function",
    "function": {
      "name": "get_current_weather",
      "description": "Get the current weather in a given location",
      "parameters": {
        "type": "object",
        "properties": {
          "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
          "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}
        },
        "required": ["location"]
      }
    }
  }]
}`

func counterFor(t *testing.T, model string) *Counter {
	t.Helper()
	m, err := pricing.MustDefault().Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCounter(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChatMatchesCookbook(t *testing.T) {
	cases := []struct {
		model      string
		input      string
		want       int64
		wantExact  bool
		wantEncode string
	}{
		{"gpt-3.5-turbo", cookbookMessages, 129, true, "cl100k_base"},
		{"gpt-4", cookbookMessages, 129, true, "cl100k_base"},
		{"gpt-4o", cookbookMessages, 124, true, "o200k_base"},
		{"gpt-4o-mini", cookbookMessages, 124, true, "o200k_base"},
		{"gpt-3.5-turbo", cookbookTools, 105, true, "cl100k_base"},
		{"gpt-4", cookbookTools, 105, true, "cl100k_base"},
		{"gpt-4o", cookbookTools, 101, true, "o200k_base"},
		{"gpt-4o-mini", cookbookTools, 101, true, "o200k_base"},
	}
	for _, c := range cases {
		msgs, tools, err := ParseChat([]byte(c.input))
		if err != nil {
			t.Fatal(err)
		}
		cnt := counterFor(t, c.model)
		if got := cnt.Chat(msgs, tools); got != c.want {
			t.Errorf("%s: Chat = %d, want %d (tools: %d)", c.model, got, c.want, len(tools))
		}
		if cnt.Exact() != c.wantExact || cnt.Encoding() != c.wantEncode {
			t.Errorf("%s: exact=%v encoding=%s", c.model, cnt.Exact(), cnt.Encoding())
		}
	}
}

func TestChatFormula(t *testing.T) {
	c := counterFor(t, "gpt-4o")
	// 3 priming + per message 3 + role + content (+ name + 1)
	msgs := []Message{{Role: "user", Content: "hi"}}
	if got := c.Chat(msgs, nil); got != 3+3+1+1 {
		t.Errorf("one message = %d, want 8", got)
	}
	msgs = append(msgs, Message{Role: "assistant", Content: "", Name: "bob"})
	if got := c.Chat(msgs, nil); got != 8+3+1+0+1+1 {
		t.Errorf("with a named empty message = %d, want 14", got)
	}
	if got := c.Chat(nil, nil); got != 3 {
		t.Errorf("no messages = %d, want 3", got)
	}
}

func TestParseChatShapes(t *testing.T) {
	parts := `[{"role":"user","content":[{"type":"text","text":"Hello "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"world"}]}]`
	msgs, _, err := ParseChat([]byte(parts))
	if err != nil || len(msgs) != 1 || msgs[0].Content != "Hello world" {
		t.Fatalf("parts: %+v %v", msgs, err)
	}
}

func TestSpecialTokenTextCountsAsText(t *testing.T) {
	c := counterFor(t, "gpt-4o")
	n := c.Text("<|endoftext|>")
	if n <= 1 {
		t.Errorf("<|endoftext|> counted as %d tokens; as ordinary text it is several", n)
	}
	var raw json.RawMessage = []byte(`{"type":"retrieval"}`)
	if got := c.Chat(nil, []json.RawMessage{raw}); got <= 3 {
		t.Errorf("unknown tool kinds must still be counted, got %d", got)
	}
}
