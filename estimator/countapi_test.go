package estimator

import "testing"

// Images go to the providers in their own shapes: Anthropic base64 or url
// sources, Gemini inlineData (a remote URL is refused for Gemini).
func TestCountAPIBodiesWithImages(t *testing.T) {
	req, err := ParseChatRequest([]byte(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[
		{"type":"text","text":"What?"},
		{"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGODlhAQABAAAAACw="}},
		{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := AnthropicBody("claude-sonnet-4-5", req)
	want := `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[` +
		`{"type":"image","source":{"type":"base64","media_type":"image/gif","data":"R0lGODlhAQABAAAAACw="}},` +
		`{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},` +
		`{"type":"text","text":"What?"}]}]}`
	if err != nil || string(body) != want {
		t.Errorf("anthropic body %s, %v\nwant %s", body, err, want)
	}
	if _, err := GeminiBody("gemini-2.5-flash", req); err == nil || err.Error() != "a remote image URL cannot be counted through Gemini's API; inline it as a data: URL" {
		t.Errorf("gemini remote image: %v", err)
	}
	req.Messages[0].Images = req.Messages[0].Images[:1]
	body, err = GeminiBody("gemini-2.5-flash", req)
	wantG := `{"generateContentRequest":{"model":"models/gemini-2.5-flash","contents":[{"role":"user","parts":[` +
		`{"inlineData":{"mimeType":"image/gif","data":"R0lGODlhAQABAAAAACw="}},{"text":"What?"}]}]}}`
	if err != nil || string(body) != wantG {
		t.Errorf("gemini body %s, %v\nwant %s", body, err, wantG)
	}
}
