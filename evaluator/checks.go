package evaluator

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/records"
)

// fieldText is the text a free check looks at.
func fieldText(rec *records.Record, field string) string {
	switch field {
	case "input":
		return rec.Input
	case "expected":
		return rec.Expected
	case "context":
		return strings.Join(rec.Context, "\n\n")
	}
	return rec.Output
}

func fieldName(f string) string {
	if f == "" {
		return "output"
	}
	return f
}

// counters caches token counters by encoding name.
type counters struct {
	mu sync.Mutex
	m  map[string]*estimator.Counter
}

func (c *counters) get(enc string) (*estimator.Counter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*estimator.Counter{}
	}
	if k, ok := c.m[enc]; ok {
		return k, nil
	}
	k, err := estimator.NewCounterForEncoding(enc)
	if err != nil {
		return nil, err
	}
	c.m[enc] = k
	return k, nil
}

// check runs a free metric: pass, score (1 or 0) and a short reason.
func check(m *Metric, rec *records.Record, cs *counters) (pass bool, reason string, err error) {
	text := fieldText(rec, m.Field)
	f := fieldName(m.Field)
	switch m.Type {
	case TypeRegex:
		loc := m.re.FindStringIndex(text)
		absent := m.Expect == "absent"
		if loc == nil {
			if absent {
				return true, "no match in " + f, nil
			}
			return false, "no match in " + f, nil
		}
		match := text[loc[0]:loc[1]]
		if absent {
			// Do not echo what may be sensitive (an SSN, a key): say where.
			return false, fmt.Sprintf("%s matches at character %d", f, utf8.RuneCountInString(text[:loc[0]])+1), nil
		}
		return true, fmt.Sprintf("matched %q", clip(match, 60)), nil
	case TypeKeyword:
		hay := text
		if !m.CaseSensitive {
			hay = strings.ToLower(text)
		}
		has := func(k string) bool {
			if !m.CaseSensitive {
				k = strings.ToLower(k)
			}
			return strings.Contains(hay, k)
		}
		var problems []string
		if len(m.Any) > 0 {
			found := false
			for _, k := range m.Any {
				if has(k) {
					found = true
					break
				}
			}
			if !found {
				problems = append(problems, "none of "+quoteList(m.Any))
			}
		}
		var missing, present []string
		for _, k := range m.All {
			if !has(k) {
				missing = append(missing, k)
			}
		}
		for _, k := range m.None {
			if has(k) {
				present = append(present, k)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, "missing "+quoteList(missing))
		}
		if len(present) > 0 {
			problems = append(problems, "contains "+quoteList(present))
		}
		if len(problems) > 0 {
			return false, f + ": " + strings.Join(problems, "; "), nil
		}
		return true, "keywords ok", nil
	case TypeJSON:
		if json.Valid([]byte(strings.TrimSpace(text))) {
			return true, "valid JSON", nil
		}
		var v any
		err := json.Unmarshal([]byte(text), &v)
		msg := "not JSON"
		if err != nil {
			msg = "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
		}
		return false, msg, nil
	case TypeLength:
		chars := int64(utf8.RuneCountInString(text))
		var toks int64
		if m.MaxTokens > 0 || m.MinTokens > 0 {
			c, err := cs.get(m.Encoding)
			if err != nil {
				return false, "", err
			}
			toks = c.Text(text)
		}
		switch {
		case m.MaxTokens > 0 && toks > m.MaxTokens:
			return false, fmt.Sprintf("%d tokens > max %d", toks, m.MaxTokens), nil
		case m.MinTokens > 0 && toks < m.MinTokens:
			return false, fmt.Sprintf("%d tokens < min %d", toks, m.MinTokens), nil
		case m.MaxChars > 0 && chars > m.MaxChars:
			return false, fmt.Sprintf("%d characters > max %d", chars, m.MaxChars), nil
		case m.MinChars > 0 && chars < m.MinChars:
			return false, fmt.Sprintf("%d characters < min %d", chars, m.MinChars), nil
		}
		if m.MaxTokens > 0 || m.MinTokens > 0 {
			return true, fmt.Sprintf("%d tokens", toks), nil
		}
		return true, fmt.Sprintf("%d characters", chars), nil
	}
	return false, "", fmt.Errorf("metric %s: not a free check", m.Name)
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
