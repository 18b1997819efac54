// Package ingest turns usage logs (JSONL) into ledger events: it detects
// each line's shape (a flat usage event or a provider's response object —
// see shapes.go), prices each kind of token at its own rate, and writes
// batches to the ledger, idempotently, optionally following a growing file
// like tail -f.
package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/costctl/costctl/ledger"
)

// line is the union of the shapes; which fields are set decides which
// shape a line is. Fields that only mark a shape are kept raw, so a flat
// event that happens to carry, say, a "response" text is not rejected.
type line struct {
	ID         json.RawMessage `json:"id"` // a string or a number
	Object     json.RawMessage `json:"object"`
	Type       json.RawMessage `json:"type"`
	TS         json.RawMessage `json:"ts"`
	Created    json.RawMessage `json:"created"`
	CreatedAt  json.RawMessage `json:"created_at"`
	CreateTime json.RawMessage `json:"createTime"`
	Tenant     string          `json:"tenant"` // pre-filled with the defaults: a line's own value replaces them
	User       string          `json:"user"`
	Endpoint   string          `json:"endpoint"`
	Model      string          `json:"model"`
	Latency    *float64        `json:"latency_ms"`
	Tier       *string         `json:"service_tier"`

	// Flat events.
	In        *int64 `json:"input_tokens"`
	Cached    *int64 `json:"cached_input_tokens"`
	W5        *int64 `json:"cache_write_5m_tokens"`
	W1        *int64 `json:"cache_write_1h_tokens"`
	Out       *int64 `json:"output_tokens"`
	Reasoning *int64 `json:"reasoning_tokens"`
	Batch     *bool  `json:"batch"`

	// OpenAI (Chat Completions, Responses) and Anthropic.
	Usage *usage `json:"usage"`

	// Gemini.
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	ModelVersion  string       `json:"modelVersion"`

	// OpenAI Batch API output.
	CustomID json.RawMessage `json:"custom_id"`
	Response json.RawMessage `json:"response"`
	Error    json.RawMessage `json:"error"`
}

// usage is the union of the OpenAI and Anthropic usage objects.
type usage struct {
	// OpenAI Chat Completions.
	Prompt        *int64 `json:"prompt_tokens"`
	Completion    *int64 `json:"completion_tokens"`
	PromptDetails *struct {
		Cached *int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDetails *struct {
		Reasoning *int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`

	// OpenAI Responses and Anthropic.
	In        *int64 `json:"input_tokens"`
	Out       *int64 `json:"output_tokens"`
	InDetails *struct {
		Cached *int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutDetails *struct {
		Reasoning *int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	Total *int64 `json:"total_tokens"`

	// Anthropic.
	CacheRead     *int64 `json:"cache_read_input_tokens"`
	CacheCreation *int64 `json:"cache_creation_input_tokens"`
	CacheSplit    *struct {
		W5 *int64 `json:"ephemeral_5m_input_tokens"`
		W1 *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	Tier *string `json:"service_tier"`
}

// geminiUsage is Gemini's usageMetadata.
type geminiUsage struct {
	Prompt     *int64 `json:"promptTokenCount"`
	Candidates *int64 `json:"candidatesTokenCount"`
	Cached     *int64 `json:"cachedContentTokenCount"`
	Thoughts   *int64 `json:"thoughtsTokenCount"`
	ToolPrompt *int64 `json:"toolUsePromptTokenCount"`
}

// Defaults fill tenant/user/endpoint for lines that do not carry them.
type Defaults struct {
	Tenant, User, Endpoint string
}

// parsed is one line's event with the shape it was read as (for key
// namespacing: the same id in two shapes is two calls).
type parsed struct {
	Event ledger.Event
	Shape Shape
}

// parseLine turns one non-blank JSONL line into an unpriced event (Cost
// and Unpriced are set by priceEvent). now is used when a line carries no
// timestamp, and bounds the ones it does carry.
func parseLine(b []byte, d Defaults, now time.Time) (ledger.Event, error) {
	p, err := parseShaped(b, d, now)
	return p.Event, err
}

// linePool recycles the (large) union a line is decoded into.
var linePool = sync.Pool{New: func() any { return new(line) }}

// parseShaped is parseLine that also says which shape the line is.
func parseShaped(b []byte, d Defaults, now time.Time) (parsed, error) {
	// JSON leaves an absent (or null) field as it was: the defaults stay.
	l := linePool.Get().(*line)
	defer linePool.Put(l)
	*l = line{Tenant: d.Tenant, User: d.User, Endpoint: d.Endpoint}
	if !fastFlat(b, l) {
		*l = line{Tenant: d.Tenant, User: d.User, Endpoint: d.Endpoint}
		if err := json.Unmarshal(b, l); err != nil {
			return parsed{}, jsonReason(err)
		}
	}
	e := ledger.Event{Source: ledger.SourceIngest, Tenant: l.Tenant, User: l.User, Endpoint: l.Endpoint}
	shape, tsRaw, err := readShape(l, &e)
	if err != nil {
		return parsed{Shape: shape}, err
	}
	if err := checkKinds(&e); err != nil {
		return parsed{Shape: shape}, err
	}
	if l.Latency != nil {
		if *l.Latency < 0 || math.IsNaN(*l.Latency) || *l.Latency > 1e12 {
			return parsed{Shape: shape}, fmt.Errorf("latency_ms %v out of range", *l.Latency)
		}
		e.LatencyMS = int64(math.Round(*l.Latency))
	}
	ts, err := parseTime(tsRaw, now)
	if err != nil {
		return parsed{Shape: shape}, err
	}
	if ts.IsZero() {
		ts = now
	}
	e.Time = ts
	id, err := parseID(l.ID)
	if err != nil {
		return parsed{Shape: shape}, err
	}
	if id != "" {
		e.Key = "ingest:id:" + id
	} else {
		sum := sha256.Sum256(bytes.TrimSpace(b))
		e.Key = "ingest:sha256:" + hex.EncodeToString(sum[:16])
	}
	return parsed{Event: e, Shape: shape}, nil
}

// checkKinds checks that the kinds of tokens add up: reads and writes are
// part of the prompt, reasoning part of the output.
func checkKinds(e *ledger.Event) error {
	parts := e.CachedTokens + e.CacheWrite5mTokens + e.CacheWrite1hTokens
	switch {
	case parts > e.InputTokens && parts == e.CachedTokens:
		return fmt.Errorf("cached tokens (%d) exceed input tokens (%d)", e.CachedTokens, e.InputTokens)
	case parts > e.InputTokens:
		return fmt.Errorf("cached and cache-write tokens (%d) exceed input tokens (%d)", parts, e.InputTokens)
	case e.ReasoningTokens > e.OutputTokens:
		return fmt.Errorf("reasoning tokens (%d) exceed output tokens (%d)", e.ReasoningTokens, e.OutputTokens)
	}
	return nil
}

// MaxTokens bounds every token count a line may give (0 ≤ n ≤ 10^10): ten
// billion tokens is far beyond any one call, and keeps the cost
// arithmetic (tokens × pico-dollar rates) far inside int64.
const MaxTokens = 10_000_000_000

// tokens reads an optional token count (absent is 0), naming the field
// when it is out of bounds.
func tokens(field string, p *int64) (int64, error) {
	if p == nil {
		return 0, nil
	}
	if *p < 0 || *p > MaxTokens {
		return 0, fmt.Errorf("field %q: %d out of range (want 0 to %d tokens)", field, *p, int64(MaxTokens))
	}
	return *p, nil
}

// required is tokens for a count the shape must give.
func required(field string, p *int64) (int64, error) {
	if p == nil {
		return 0, fmt.Errorf("missing %q", field)
	}
	return tokens(field, p)
}

// parseID accepts a string or an integer id; absent, null or "" is none.
func parseID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("bad id %s", raw)
		}
		return s, nil
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return string(raw), nil
	}
	return "", fmt.Errorf(`field "id": want a string or an integer, got %s`, raw)
}

// Timestamps before minTime, or more than maxAhead after now, are
// impossible: a bad line, never "now".
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const maxAhead = 24 * time.Hour

// parseTime accepts RFC 3339 strings and Unix seconds, milliseconds or
// microseconds (a number or a numeric string, fractions allowed; the unit
// is told by the size: below 10^11 seconds, below 10^14 milliseconds,
// below 10^17 microseconds). Absent or null is the zero time. A time
// before 2000 or more than a day after now is an error.
func parseTime(raw json.RawMessage, now time.Time) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	num := string(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %s", raw)
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return plausible(t.UTC(), raw, now)
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds", s)
		}
		num = s
	}
	t, err := unixTime(num)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %s: %v", raw, err)
	}
	return plausible(t, raw, now)
}

// unixTime reads Unix seconds, milliseconds or microseconds, telling them
// apart by size. Integers are exact; fractions are kept to the microsecond.
func unixTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 0:
			return time.Time{}, errors.New("negative")
		case n < 1e11:
			return time.Unix(n, 0).UTC(), nil
		case n < 1e14:
			return time.UnixMilli(n).UTC(), nil
		case n < 1e17:
			return time.UnixMicro(n).UTC(), nil
		}
		return time.Time{}, errors.New("out of range: want Unix seconds, milliseconds or microseconds")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New("want RFC 3339 or Unix seconds")
	}
	var us float64 // microseconds
	switch {
	case f < 0:
		return time.Time{}, errors.New("negative")
	case f < 1e11:
		us = f * 1e6
	case f < 1e14:
		us = f * 1e3
	case f < 1e17:
		us = f
	default:
		return time.Time{}, errors.New("out of range: want Unix seconds, milliseconds or microseconds")
	}
	return time.UnixMicro(int64(math.Round(us))).UTC(), nil
}

func plausible(t time.Time, raw json.RawMessage, now time.Time) (time.Time, error) {
	switch {
	case t.Before(minTime):
		return time.Time{}, fmt.Errorf("timestamp %s (%s) is before 2000", raw, t.Format(time.RFC3339))
	case t.After(now.Add(maxAhead)):
		return time.Time{}, fmt.Errorf("timestamp %s (%s) is more than a day after now (%s)", raw,
			t.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// jsonReason makes encoding/json's errors fit on one line a person can act on.
func jsonReason(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return fmt.Errorf("not a JSON object (got %s)", te.Value)
		}
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int64, reflect.Int32:
			want = "an integer"
		case reflect.Float64, reflect.Float32:
			want = "a number"
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Struct, reflect.Map:
			want = "an object"
		}
		return fmt.Errorf("field %q: want %s, got %s", field, want, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON (byte %d: %s)", se.Offset, se.Error())
	}
	return fmt.Errorf("invalid JSON: %v", err)
}
