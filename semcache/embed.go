package semcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultEmbedModel is the embedding model used unless told otherwise.
const DefaultEmbedModel = "text-embedding-3-small"

// Usage is what an embedding call was billed.
type Usage struct {
	PromptTokens int64
}

// Embedder turns texts into vectors, one per text in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, Usage, error)
}

// OpenAIEmbedder calls an OpenAI-compatible embeddings endpoint:
// POST {BaseURL}/v1/embeddings, or {BaseURL}/embeddings when BaseURL ends
// in /v1. Redirects are not followed; errors are one line and never contain
// the key.
type OpenAIEmbedder struct {
	BaseURL string // default https://api.openai.com/v1
	APIKey  string
	Model   string // default DefaultEmbedModel
	Client  *http.Client
}

// Endpoint is the URL the embedder posts to.
func (e *OpenAIEmbedder) Endpoint() string {
	base := strings.TrimRight(e.BaseURL, "/")
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	if strings.HasSuffix(base, "/v1") {
		return base + "/embeddings"
	}
	return base + "/v1/embeddings"
}

func (e *OpenAIEmbedder) model() string {
	if e.Model != "" {
		return e.Model
	}
	return DefaultEmbedModel
}

// Embed implements Embedder.
func (e *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	vecs, u, err := e.embed(ctx, texts)
	if err != nil {
		return nil, Usage{}, errors.New(e.redact(oneLine(err.Error())))
	}
	return vecs, u, nil
}

func (e *OpenAIEmbedder) redact(s string) string {
	if e.APIKey != "" {
		s = strings.ReplaceAll(s, e.APIKey, "[redacted]")
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (e *OpenAIEmbedder) embed(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	if len(texts) == 0 {
		return nil, Usage{}, nil
	}
	body, err := json.Marshal(struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}{e.model(), texts})
	if err != nil {
		return nil, Usage{}, err
	}
	url := e.Endpoint()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, Usage{}, fmt.Errorf("embeddings: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
	}
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if e.Client != nil {
		client = *e.Client
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, Usage{}, fmt.Errorf("embeddings %s: %v", url, err)
	}
	defer resp.Body.Close() // read-only
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, Usage{}, fmt.Errorf("embeddings %s: reading the response: %v", url, err)
	}
	if resp.StatusCode/100 == 3 {
		return nil, Usage{}, fmt.Errorf("embeddings %s: HTTP %d redirect to %s not followed", url, resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.StatusCode != http.StatusOK {
		msg := string(data)
		var apiErr struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &apiErr) == nil && apiErr.Error.Message != "" {
			msg = apiErr.Error.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, Usage{}, fmt.Errorf("embeddings %s: HTTP %d: %s", url, resp.StatusCode, msg)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, Usage{}, fmt.Errorf("embeddings %s: the response is not embeddings JSON: %v", url, err)
	}
	if len(out.Data) != len(texts) {
		return nil, Usage{}, fmt.Errorf("embeddings %s: %d embeddings for %d inputs", url, len(out.Data), len(texts))
	}
	vecs := make([][]float32, len(texts))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(texts) || vecs[d.Index] != nil {
			return nil, Usage{}, fmt.Errorf("embeddings %s: bad or repeated index %d", url, d.Index)
		}
		if len(d.Embedding) == 0 {
			return nil, Usage{}, fmt.Errorf("embeddings %s: empty embedding at index %d", url, d.Index)
		}
		vecs[d.Index] = d.Embedding
	}
	return vecs, Usage{PromptTokens: out.Usage.PromptTokens}, nil
}
