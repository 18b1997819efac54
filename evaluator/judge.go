package evaluator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/costctl/costctl/records"
)

// AnswerInstruction ends every judge user message: the reply format.
const AnswerInstruction = `Answer only with a JSON object: {"score": <number from 0 to 1, where 1 is best>, "reason": "<one short sentence>"}`

// repairInstruction follows a reply that did not parse (one repair retry).
const repairInstruction = `Your reply could not be read (%s). ` + AnswerInstruction

// UserMessage renders the record for a judge. Without a template the layout
// is fixed (sections with no content are left out):
//
//	## Input
//	<input text, or chat messages rendered as "role: content" blocks>
//
//	## Output
//	<output>
//
//	## Expected
//	<expected>
//
//	## Context
//	[1] <first passage>
//
//	[2] <second passage>
//
//	<AnswerInstruction>
//
// With a template, {{id}}, {{input}}, {{output}}, {{expected}} and
// {{context}} (passages as "[n] text" blocks) are replaced and the answer
// instruction is appended after a blank line.
func UserMessage(m *Metric, rec *records.Record) string {
	ctx := renderContext(rec.Context)
	if m.Template != "" {
		body := placeholderRe().ReplaceAllStringFunc(m.Template, func(ph string) string {
			switch strings.TrimSpace(strings.Trim(ph, "{}")) {
			case "id":
				return rec.ID
			case "input":
				return rec.Input
			case "output":
				return rec.Output
			case "expected":
				return rec.Expected
			case "context":
				return ctx
			}
			return ph
		})
		return strings.TrimRight(body, "\n") + "\n\n" + AnswerInstruction
	}
	var b strings.Builder
	section := func(title, body string) {
		if body == "" {
			return
		}
		b.WriteString("## " + title + "\n" + body + "\n\n")
	}
	section("Input", rec.Input)
	b.WriteString("## Output\n" + rec.Output + "\n\n")
	section("Expected", rec.Expected)
	section("Context", ctx)
	b.WriteString(AnswerInstruction)
	return b.String()
}

func renderContext(c []string) string {
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = fmt.Sprintf("[%d] %s", i+1, p)
	}
	return strings.Join(parts, "\n\n")
}

// CacheKey is the judge cache key: a SHA-256 over everything that can change
// a verdict — the endpoint, the model as sent, json mode, max_tokens,
// temperature, the system message (the rubric) and the user message (the
// record fields the judge sees, in the layout or template). A metric's name
// and threshold are not part of it: renaming a metric or moving its pass mark
// does not change what the judge is asked, so neither re-buys verdicts (the
// threshold is applied to the cached score).
//
// For provider openai (the default) the key is exactly what it was before
// judges had a provider, so existing caches keep hitting. Any other provider
// adds a provider line, so the same model name and prompt on two APIs never
// share a verdict.
func CacheKey(endpoint string, j *Judge, system, user string) string {
	h := sha256.New()
	w := func(k, v string) { fmt.Fprintf(h, "%s=%d:%s\n", k, len(v), v) }
	w("v", "costctl-judge-1")
	if p := j.ProviderName(); p != ProviderOpenAI {
		w("provider", p)
	}
	w("endpoint", endpoint)
	w("model", j.Model)
	w("json_mode", strconv.FormatBool(j.JSON()))
	if j.IsReasoning() {
		// Sent as max_completion_tokens, with the model's own temperature.
		w("max_completion_tokens", strconv.Itoa(j.MaxTokens))
		w("temperature", "default")
	} else {
		w("max_tokens", strconv.Itoa(j.MaxTokens))
		w("temperature", "0")
	}
	w("system", system)
	w("user", user)
	return hex.EncodeToString(h.Sum(nil))
}

// Verdict is a parsed judge reply.
type Verdict struct {
	Score  float64
	Reason string
}

// ParseVerdict reads {"score": 0..1, "reason": "..."} from a reply,
// tolerating code fences and text around the object.
func ParseVerdict(reply string) (Verdict, error) {
	s := strings.TrimSpace(reply)
	if s == "" {
		return Verdict{}, errors.New("empty reply")
	}
	var cands []string
	cands = append(cands, s)
	if i := strings.Index(s, "{"); i >= 0 {
		if k := strings.LastIndex(s, "}"); k > i {
			cands = append(cands, s[i:k+1])
		}
	}
	var lastErr error = errors.New("no JSON object in the reply")
	for _, c := range cands {
		var raw struct {
			Score  json.RawMessage `json:"score"`
			Reason any             `json:"reason"`
		}
		if err := json.Unmarshal([]byte(c), &raw); err != nil {
			continue
		}
		if len(raw.Score) == 0 || string(raw.Score) == "null" {
			lastErr = errors.New(`no "score" in the reply`)
			continue
		}
		var score float64
		txt := strings.Trim(string(raw.Score), `"`)
		f, err := strconv.ParseFloat(strings.TrimSpace(txt), 64)
		if err != nil {
			lastErr = fmt.Errorf("score %s is not a number", clip(string(raw.Score), 20))
			continue
		}
		score = f
		if math.IsNaN(score) || score < 0 || score > 1 {
			lastErr = fmt.Errorf("score %v is outside 0..1", score)
			continue
		}
		v := Verdict{Score: score}
		switch r := raw.Reason.(type) {
		case string:
			v.Reason = r
		case nil:
		default:
			b, _ := json.Marshal(r)
			v.Reason = string(b)
		}
		return v, nil
	}
	return Verdict{}, lastErr
}

// redactURL drops credentials and query from a URL so it can be stored and shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return strings.TrimRight(u.String(), "/")
}

// secretRes match credentials a server may echo in an error message
// (compiled on first use, not in every command's start).
var secretRes = sync.OnceValue(func() []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(`(?i)(authorization|proxy-authorization)(["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;&}]+`),
		regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`),
		regexp.MustCompile(`(?i)(x-api-key|api[-_]?key|x-goog-api-key|access[-_]?token|secret|password)(["']?\s*[:=]\s*["']?)[^\s"',;&}]+`),
		regexp.MustCompile(`\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}`),
	}
})

// Redact removes API keys from text that came from a server or an error
// before it reaches a terminal, a result row or a report: the given key
// values wherever they appear, and anything that looks like a credential
// (Authorization headers, Bearer tokens, x-api-key, ?api-key= query values,
// sk-… keys).
func Redact(s string, keys ...string) string {
	for _, k := range keys {
		if len(k) >= 4 {
			s = strings.ReplaceAll(s, k, "[REDACTED]")
		}
	}
	for i, re := range secretRes() {
		switch i {
		case 0, 2:
			s = re.ReplaceAllString(s, "${1}${2}[REDACTED]")
		case 1:
			s = re.ReplaceAllStringFunc(s, func(m string) string {
				return m[:strings.IndexAny(m, " \t")] + " [REDACTED]"
			})
		default:
			s = re.ReplaceAllString(s, "[REDACTED]")
		}
	}
	return s
}
