package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Wire formats the proxy speaks: a route's provider decides the shape of
// the errors the proxy itself answers with, so an SDK reads them as it
// reads its provider's own.
const (
	OpenAI    = "openai"
	Anthropic = "anthropic"
)

// Error types and codes the proxy answers with (OpenAI's "type"/"code",
// Anthropic's error "type").
const (
	ErrAuth          = "authentication_error"
	ErrBlocked       = "tenant_blocked"
	ErrBudget        = "budget_exceeded"
	ErrNotFound      = "not_found_error"
	ErrInvalid       = "invalid_request_error"
	ErrUnpriced      = "unpriced_model"
	ErrUpstream      = "upstream_error"
	ErrNoUpstreamKey = "upstream_key_missing"
	ErrTooLarge      = "request_too_large"
	ErrShuttingDown  = "shutting_down"
)

// apiError is an error the proxy answers itself (never an upstream's).
type apiError struct {
	status     int
	typ        string
	msg        string
	retryAfter time.Duration // > 0: a Retry-After header (whole seconds, rounded up)
}

// writeError writes e in the provider's error format:
//
//	OpenAI:    {"error":{"message":…,"type":…,"code":…}}
//	Anthropic: {"type":"error","error":{"type":…,"message":…}}
func writeError(w http.ResponseWriter, provider string, e apiError) {
	var body any
	if provider == Anthropic {
		body = map[string]any{"type": "error", "error": map[string]string{"type": e.typ, "message": e.msg}}
	} else {
		body = map[string]any{"error": map[string]any{"message": e.msg, "type": e.typ, "code": e.typ}}
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if e.retryAfter > 0 {
		secs := int64((e.retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(b) // a client gone away: nothing was billed for a refusal
}
