// Package ingest turns usage logs (JSONL) into ledger events: it detects
// each line's shape (a flat usage event or an OpenAI response object),
// prices it with the price table, and writes batches to the ledger,
// idempotently, optionally following a growing file like tail -f.
package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/costctl/costctl/ledger"
)

// line is the union of the two shapes; which fields are set decides which
// shape a line is.
type line struct {
	ID       json.RawMessage `json:"id"` // a string or a number
	TS       json.RawMessage `json:"ts"`
	Created  json.RawMessage `json:"created"`
	Tenant   *string         `json:"tenant"`
	User     *string         `json:"user"`
	Endpoint *string         `json:"endpoint"`
	Model    *string         `json:"model"`
	In       *int64          `json:"input_tokens"`
	Cached   *int64          `json:"cached_input_tokens"`
	Out      *int64          `json:"output_tokens"`
	Latency  *float64        `json:"latency_ms"`
	Usage    *struct {
		Prompt     *int64 `json:"prompt_tokens"`
		Completion *int64 `json:"completion_tokens"`
		Details    *struct {
			Cached *int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

// Defaults fill tenant/user/endpoint for lines that do not carry them.
type Defaults struct {
	Tenant, User, Endpoint string
}

// parseLine turns one non-blank JSONL line into an unpriced event (Cost
// and Unpriced are set by the caller). now is used when a line carries no
// timestamp.
func parseLine(b []byte, d Defaults, now time.Time) (ledger.Event, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return ledger.Event{}, jsonReason(err)
	}
	e := ledger.Event{Source: ledger.SourceIngest, Tenant: d.Tenant, User: d.User, Endpoint: d.Endpoint}
	if l.Model == nil || strings.TrimSpace(*l.Model) == "" {
		return e, errors.New(`missing "model"`)
	}
	e.Model = strings.TrimSpace(*l.Model)
	if l.Tenant != nil {
		e.Tenant = *l.Tenant
	}
	if l.User != nil {
		e.User = *l.User
	}
	if l.Endpoint != nil {
		e.Endpoint = *l.Endpoint
	}
	var tsRaw json.RawMessage
	if l.Usage != nil {
		// OpenAI response object.
		if l.Usage.Prompt == nil {
			return e, errors.New(`missing "usage.prompt_tokens"`)
		}
		if l.Usage.Completion == nil {
			return e, errors.New(`missing "usage.completion_tokens"`)
		}
		e.InputTokens, e.OutputTokens = *l.Usage.Prompt, *l.Usage.Completion
		if l.Usage.Details != nil && l.Usage.Details.Cached != nil {
			e.CachedTokens = *l.Usage.Details.Cached
		}
		tsRaw = l.Created
		if len(tsRaw) == 0 {
			tsRaw = l.TS
		}
	} else {
		if l.In == nil {
			return e, errors.New(`missing "input_tokens" (or an OpenAI "usage" object)`)
		}
		if l.Out == nil {
			return e, errors.New(`missing "output_tokens"`)
		}
		e.InputTokens, e.OutputTokens = *l.In, *l.Out
		if l.Cached != nil {
			e.CachedTokens = *l.Cached
		}
		tsRaw = l.TS
		if len(tsRaw) == 0 {
			tsRaw = l.Created
		}
	}
	switch {
	case e.InputTokens < 0 || e.OutputTokens < 0 || e.CachedTokens < 0:
		return e, errors.New("token counts must not be negative")
	case e.CachedTokens > e.InputTokens:
		return e, fmt.Errorf("cached tokens (%d) exceed input tokens (%d)", e.CachedTokens, e.InputTokens)
	}
	if l.Latency != nil {
		if *l.Latency < 0 || math.IsNaN(*l.Latency) || *l.Latency > 1e12 {
			return e, fmt.Errorf("latency_ms %v out of range", *l.Latency)
		}
		e.LatencyMS = int64(math.Round(*l.Latency))
	}
	ts, err := parseTime(tsRaw)
	if err != nil {
		return e, err
	}
	if ts.IsZero() {
		ts = now
	}
	e.Time = ts
	id, err := parseID(l.ID)
	if err != nil {
		return e, err
	}
	if id != "" {
		e.Key = "ingest:id:" + id
	} else {
		sum := sha256.Sum256(bytes.TrimSpace(b))
		e.Key = "ingest:sha256:" + hex.EncodeToString(sum[:16])
	}
	return e, nil
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

// parseTime accepts RFC 3339 strings and Unix seconds (number or numeric
// string, fractions allowed). Absent or null is the zero time.
func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %s", raw)
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return unixSeconds(f, raw)
		}
		return time.Time{}, fmt.Errorf("bad timestamp %q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds", s)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %s: want RFC 3339 or Unix seconds", raw)
	}
	return unixSeconds(f, raw)
}

func unixSeconds(f float64, raw json.RawMessage) (time.Time, error) {
	// 1e11 seconds is year 5138: anything larger is milliseconds or garbage.
	if f < 0 || f >= 1e11 || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("timestamp %s out of range: want Unix seconds", raw)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), nil
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
		switch {
		case strings.Contains(want, "int"):
			want = "an integer"
		case strings.Contains(want, "float"):
			want = "a number"
		case strings.Contains(want, "string"):
			want = "a string"
		}
		return fmt.Errorf("field %q: want %s, got %s", field, want, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON (byte %d: %s)", se.Offset, se.Error())
	}
	return fmt.Errorf("invalid JSON: %v", err)
}
