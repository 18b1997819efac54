package estimator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// APICounter asks a provider how many input tokens a request is: the exact
// count for models whose tokenizer is not public (Claude, Gemini). One
// attempt, no retries.
type APICounter interface {
	CountTokens(ctx context.Context, model string, req *ChatRequest) (int64, error)
}

// AnthropicCounter calls POST {BaseURL}/v1/messages/count_tokens, which is
// free and returns {"input_tokens": N}.
type AnthropicCounter struct {
	BaseURL string // default https://api.anthropic.com
	APIKey  string // sent as x-api-key, never printed
	Version string // anthropic-version; default 2023-06-01
	Client  *http.Client
}

// GeminiCounter calls POST {BaseURL}/v1beta/models/{model}:countTokens,
// which is free and returns {"totalTokens": N}.
type GeminiCounter struct {
	BaseURL string // default https://generativelanguage.googleapis.com
	APIKey  string // sent as x-goog-api-key, never printed
	Client  *http.Client
}

// APIError is a provider's refusal, as one line with the key redacted.
type APIError struct {
	Provider string
	Status   int
	Msg      string
}

func (e *APIError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s token counting: HTTP %d", e.Provider, e.Status)
	}
	return fmt.Sprintf("%s token counting: HTTP %d: %s", e.Provider, e.Status, e.Msg)
}

// anthropicBlock is one content block of a Messages request.
type anthropicBlock struct {
	Type   string          `json:"type"`
	Text   string          `json:"text,omitempty"`
	Source *anthropicImage `json:"source,omitempty"`
}

type anthropicImage struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// AnthropicBody is the count_tokens request for req: system and developer
// messages become "system", assistant stays assistant, every other role is
// user; OpenAI function tools become {name, description, input_schema}.
func AnthropicBody(model string, req *ChatRequest) ([]byte, error) {
	type msg struct {
		Role    string           `json:"role"`
		Content []anthropicBlock `json:"content"`
	}
	type tool struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema"`
	}
	body := struct {
		Model    string `json:"model"`
		System   string `json:"system,omitempty"`
		Messages []msg  `json:"messages"`
		Tools    []tool `json:"tools,omitempty"`
	}{Model: model, Messages: []msg{}}
	var system []string
	for _, m := range req.Messages {
		if m.Role == "system" || m.Role == "developer" {
			system = append(system, m.Content)
			continue
		}
		role := "user"
		if m.Role == "assistant" {
			role = "assistant"
		}
		var blocks []anthropicBlock
		for _, im := range m.Images {
			src := &anthropicImage{Type: "url", URL: im.URL}
			if !im.Remote() {
				src = &anthropicImage{Type: "base64", MediaType: im.MediaType, Data: base64.StdEncoding.EncodeToString(im.Data)}
			}
			blocks = append(blocks, anthropicBlock{Type: "image", Source: src})
		}
		if m.Content != "" || len(blocks) == 0 {
			blocks = append(blocks, anthropicBlock{Type: "text", Text: m.Content})
		}
		body.Messages = append(body.Messages, msg{Role: role, Content: blocks})
	}
	body.System = strings.Join(system, "\n\n")
	for _, raw := range req.Tools {
		f, err := functionTool(raw)
		if err != nil {
			return nil, err
		}
		schema := f.Parameters
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		body.Tools = append(body.Tools, tool{Name: f.Name, Description: f.Description, InputSchema: schema})
	}
	return json.Marshal(body)
}

type functionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

func functionTool(raw json.RawMessage) (functionDef, error) {
	var t struct {
		Function *functionDef `json:"function"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.Function == nil || t.Function.Name == "" {
		return functionDef{}, errors.New(`tools: only function tools {"type": "function", "function": {"name": ...}} can be counted through the provider's API`)
	}
	return *t.Function, nil
}

// GeminiBody is the countTokens request for req, as a generateContentRequest
// so the system instruction and tools are counted too.
func GeminiBody(model string, req *ChatRequest) ([]byte, error) {
	type part struct {
		Text       string `json:"text,omitempty"`
		InlineData *struct {
			MimeType string `json:"mimeType"`
			Data     string `json:"data"`
		} `json:"inlineData,omitempty"`
	}
	type content struct {
		Role  string `json:"role,omitempty"`
		Parts []part `json:"parts"`
	}
	type tools struct {
		FunctionDeclarations []functionDef `json:"functionDeclarations"`
	}
	type gcr struct {
		Model             string    `json:"model"`
		Contents          []content `json:"contents"`
		SystemInstruction *content  `json:"systemInstruction,omitempty"`
		Tools             []tools   `json:"tools,omitempty"`
	}
	g := gcr{Model: "models/" + model, Contents: []content{}}
	var system []part
	for _, m := range req.Messages {
		var parts []part
		for _, im := range m.Images {
			if im.Remote() {
				return nil, errors.New("a remote image URL cannot be counted through Gemini's API; inline it as a data: URL")
			}
			p := part{InlineData: &struct {
				MimeType string `json:"mimeType"`
				Data     string `json:"data"`
			}{im.MediaType, base64.StdEncoding.EncodeToString(im.Data)}}
			parts = append(parts, p)
		}
		if m.Content != "" || len(parts) == 0 {
			parts = append(parts, part{Text: m.Content})
		}
		switch m.Role {
		case "system", "developer":
			system = append(system, parts...)
		case "assistant":
			g.Contents = append(g.Contents, content{Role: "model", Parts: parts})
		default:
			g.Contents = append(g.Contents, content{Role: "user", Parts: parts})
		}
	}
	if len(system) > 0 {
		g.SystemInstruction = &content{Parts: system}
	}
	if len(req.Tools) > 0 {
		var fs []functionDef
		for _, raw := range req.Tools {
			f, err := functionTool(raw)
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
		g.Tools = []tools{{FunctionDeclarations: fs}}
	}
	return json.Marshal(struct {
		GenerateContentRequest gcr `json:"generateContentRequest"`
	}{g})
}

// CountTokens implements APICounter.
func (a *AnthropicCounter) CountTokens(ctx context.Context, model string, req *ChatRequest) (int64, error) {
	body, err := AnthropicBody(model, req)
	if err != nil {
		return 0, err
	}
	version := a.Version
	if version == "" {
		version = "2023-06-01"
	}
	headers := map[string]string{"x-api-key": a.APIKey, "anthropic-version": version}
	var out struct {
		InputTokens *int64 `json:"input_tokens"`
	}
	if err := postJSON(ctx, a.Client, "Anthropic", baseOr(a.BaseURL, "https://api.anthropic.com")+"/v1/messages/count_tokens", headers, a.APIKey, body, &out); err != nil {
		return 0, err
	}
	if out.InputTokens == nil {
		//lint:ignore ST1005 the message starts with the provider's name
		return 0, errors.New(`Anthropic token counting: the response has no "input_tokens"`)
	}
	return *out.InputTokens, nil
}

// CountTokens implements APICounter.
func (g *GeminiCounter) CountTokens(ctx context.Context, model string, req *ChatRequest) (int64, error) {
	body, err := GeminiBody(model, req)
	if err != nil {
		return 0, err
	}
	var out struct {
		TotalTokens *int64 `json:"totalTokens"`
	}
	u := baseOr(g.BaseURL, "https://generativelanguage.googleapis.com") + "/v1beta/models/" + url.PathEscape(model) + ":countTokens"
	if err := postJSON(ctx, g.Client, "Gemini", u, map[string]string{"x-goog-api-key": g.APIKey}, g.APIKey, body, &out); err != nil {
		return 0, err
	}
	if out.TotalTokens == nil {
		// Gemini omits zero fields: an empty request counts 0.
		return 0, nil
	}
	return *out.TotalTokens, nil
}

func baseOr(base, def string) string {
	if base == "" {
		base = def
	}
	return strings.TrimRight(base, "/")
}

// postJSON sends body and decodes a 2xx answer into out. Any error is one
// line and never contains key.
func postJSON(ctx context.Context, client *http.Client, provider, u string, headers map[string]string, key string, body []byte, out any) error {
	if client == nil {
		client = http.DefaultClient
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s token counting: %s", provider, redact(err.Error(), key))
	}
	hreq.Header.Set("content-type", "application/json")
	for k, v := range headers {
		hreq.Header.Set(k, v)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s token counting: no answer within the timeout (--api-timeout)", provider)
		}
		return fmt.Errorf("%s token counting: %s", provider, redact(oneLine(err.Error()), key))
	}
	defer resp.Body.Close() // read in full just below: a close error loses nothing
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s token counting: reading the answer: %s", provider, redact(oneLine(err.Error()), key))
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := ""
		if json.Unmarshal(data, &e) == nil {
			msg = e.Error.Message
		}
		if msg == "" {
			msg = string(data)
		}
		msg = oneLine(redact(msg, key))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &APIError{Provider: provider, Status: resp.StatusCode, Msg: msg}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s token counting: the answer is not the expected JSON", provider)
	}
	return nil
}

func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
