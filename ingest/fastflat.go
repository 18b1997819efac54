package ingest

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// fastFlat decodes the common case — a flat event: one JSON object whose
// values are numbers, plain strings (no escapes), booleans or null — into
// l exactly as json.Unmarshal would, several times faster (no reflection,
// strings sliced out of b). It returns false, having maybe filled part of
// l, for anything else (a nested object or array, an escape, a key that
// matches a field only case-insensitively, a value of the wrong type, bad
// JSON): the caller resets l and lets encoding/json decide, so errors and
// every other shape read as before. FuzzFastFlat holds it to that.
func fastFlat(b []byte, l *line) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		// Key.
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ks, ke, ok := plainString(b, i)
		if !ok {
			return false
		}
		key := b[ks:ke]
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		// Value: its kind and extent.
		if i >= len(b) {
			return false
		}
		vs := i
		var kind byte
		switch c := b[i]; {
		case c == '"':
			_, e, ok := plainString(b, i)
			if !ok {
				return false
			}
			kind, i = '"', e+1
		case c == '-' || (c >= '0' && c <= '9'):
			e, ok := jsonNumber(b, i)
			if !ok {
				return false
			}
			kind, i = '0', e
		case hasLit(b, i, "true"):
			kind, i = 't', i+4
		case hasLit(b, i, "false"):
			kind, i = 'f', i+5
		case hasLit(b, i, "null"):
			kind, i = 'n', i+4
		default: // an object, an array or not JSON
			return false
		}
		if !setFlat(l, key, b[vs:i], kind) {
			return false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// setFlat stores one value (raw, of kind '"' string, '0' number, 't'/'f'
// boolean, 'n' null) under key as json.Unmarshal would, or reports false
// when only encoding/json can say what happens.
func setFlat(l *line, key, raw []byte, kind byte) bool {
	if f, ok := plainFields[string(key)]; ok {
		return f(l, raw, kind)
	}
	switch string(key) {
	case "service_tier":
		switch kind {
		case 'n':
			l.Tier = nil
		case '"':
			s := string(raw[1 : len(raw)-1])
			l.Tier = &s
		default:
			return false
		}
	case "latency_ms":
		switch kind {
		case 'n':
			l.Latency = nil
		case '0':
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return false
			}
			l.Latency = &f
		default:
			return false
		}
	case "batch":
		switch kind {
		case 'n':
			l.Batch = nil
		case 't', 'f':
			v := kind == 't'
			l.Batch = &v
		default:
			return false
		}
	case "usage": // an object (another shape) is left to encoding/json
		if kind != 'n' {
			return false
		}
		l.Usage = nil
	case "usageMetadata":
		if kind != 'n' {
			return false
		}
		l.UsageMetadata = nil
	default:
		// encoding/json ignores an unknown key, but takes one that
		// matches a field case-insensitively (Unicode folding included:
		// "ſ" is an "s"): leave those to it.
		for _, c := range key {
			if c >= 0x80 {
				return false
			}
		}
		for _, k := range flatKeys {
			if len(k) == len(key) && equalFoldASCII(k, key) {
				return false
			}
		}
	}
	return true
}

// plainFields set the fields of line that take a raw value, a string or
// an integer, by JSON name (one lookup a key).
var plainFields = func() map[string]func(l *line, raw []byte, kind byte) bool {
	m := map[string]func(l *line, raw []byte, kind byte) bool{}
	for name, f := range map[string]func(*line) *json.RawMessage{
		"id": func(l *line) *json.RawMessage { return &l.ID }, "object": func(l *line) *json.RawMessage { return &l.Object },
		"type": func(l *line) *json.RawMessage { return &l.Type }, "ts": func(l *line) *json.RawMessage { return &l.TS },
		"created": func(l *line) *json.RawMessage { return &l.Created }, "created_at": func(l *line) *json.RawMessage { return &l.CreatedAt },
		"createTime": func(l *line) *json.RawMessage { return &l.CreateTime }, "custom_id": func(l *line) *json.RawMessage { return &l.CustomID },
		"response": func(l *line) *json.RawMessage { return &l.Response }, "error": func(l *line) *json.RawMessage { return &l.Error },
	} {
		m[name] = func(l *line, raw []byte, _ byte) bool { *f(l) = json.RawMessage(raw); return true }
	}
	for name, f := range map[string]func(*line) *string{
		"tenant": func(l *line) *string { return &l.Tenant }, "user": func(l *line) *string { return &l.User },
		"endpoint": func(l *line) *string { return &l.Endpoint }, "model": func(l *line) *string { return &l.Model },
		"modelVersion": func(l *line) *string { return &l.ModelVersion },
	} {
		m[name] = func(l *line, raw []byte, kind byte) bool { return setString(f(l), raw, kind) }
	}
	for name, f := range map[string]func(*line) **int64{
		"input_tokens": func(l *line) **int64 { return &l.In }, "cached_input_tokens": func(l *line) **int64 { return &l.Cached },
		"cache_write_5m_tokens": func(l *line) **int64 { return &l.W5 }, "cache_write_1h_tokens": func(l *line) **int64 { return &l.W1 },
		"output_tokens": func(l *line) **int64 { return &l.Out }, "reasoning_tokens": func(l *line) **int64 { return &l.Reasoning },
	} {
		m[name] = func(l *line, raw []byte, kind byte) bool { return setInt(f(l), raw, kind) }
	}
	return m
}()

// flatKeys are the JSON names of line's fields (see setFlat).
var flatKeys = []string{"id", "object", "type", "ts", "created", "created_at", "createTime", "custom_id", "response", "error",
	"tenant", "user", "endpoint", "model", "modelVersion", "service_tier", "latency_ms", "batch", "input_tokens",
	"cached_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "usage", "usageMetadata"}

func equalFoldASCII(a string, b []byte) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func setString(dst *string, raw []byte, kind byte) bool {
	switch kind {
	case 'n': // null leaves a string as it is
	case '"':
		*dst = string(raw[1 : len(raw)-1])
	default:
		return false
	}
	return true
}

func setInt(dst **int64, raw []byte, kind byte) bool {
	switch kind {
	case 'n':
		*dst = nil
	case '0':
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return false
		}
		*dst = &n
	default:
		return false
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasLit(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// plainString finds the string that starts at b[i] == '"': its contents are
// b[s:e] and b[e] is the closing quote. ok is false for a string
// encoding/json would change or refuse: an escape, a control character,
// invalid UTF-8.
func plainString(b []byte, i int) (s, e int, ok bool) {
	s = i + 1
	ascii := true
	for j := s; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(b[s:j]) {
				return 0, 0, false
			}
			return s, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return 0, 0, false
}

// jsonNumber returns the end of the JSON number at b[i], or false when it
// is not one by JSON's grammar (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func jsonNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	return i, true
}
