package evaluator

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Provider is one judge API (OpenAI chat completions, judge_openai.go;
// Anthropic Messages, judge_anthropic.go) seen one attempt at a time. It builds the request from a
// provider-neutral Prompt, sends it once, reads the reply's text and usage,
// counts and bounds prompts for the budget, and says what a failed attempt
// means. Everything else — retries and backoff (judgeClient.call), the
// budget, the cache, the ledger, repair turns, verdict parsing — is written
// once above it, so a new API is one file that implements Provider plus one
// entry in providers; the runner and the dry run do not change.
//
// A Provider is made per judge per run (newProvider) and is called from
// many workers at once: it must be safe for concurrent use.
type Provider interface {
	// Send makes one attempt at the call: no retries, no sleeping. The
	// returned Attempt's Sent is set on failure too: false means the
	// request never left the process (a local refusal: never billed,
	// never retried, and it stops the run since every call would fail
	// alike). A reply that arrived but cannot be read (no choices, a
	// garbled body) is an error with Sent true.
	Send(ctx context.Context, p Prompt) (Attempt, error)
	// Classify says what a failed, sent attempt means: retry it (with a
	// cause for the summary's counts and the server's Retry-After, if
	// any), fail this call (an error row) or stop the run (every call
	// would fail the same way: a bad key, no quota, no such model).
	// Timeouts and cancellation are decided by the caller, not here.
	Classify(err error) Failure

	// PromptTokens counts p's prompt locally as the API bills it when the
	// tokenizer is exact. It values calls not made (cascade skips) and
	// projects dry runs; it is not a bound.
	PromptTokens(p Prompt) int64
	// PromptBound is the most prompt tokens an honest server can bill for
	// p, whatever its tokenizer: the budget reserves this, and a reported
	// usage above it is flagged.
	PromptBound(p Prompt) int64
	// WorstUsage is the most a call with a prompt of promptTokens can be
	// billed, by kind of token (an API that writes the prompt to a cache
	// bills it as cache writes): the budget reserves its price, and a call
	// sent but never answered is recorded at it. Its OutputTokens is the
	// completion bound sent with every request.
	WorstUsage(promptTokens int64) pricing.Usage
	// ReplyTokens is what a reply is billed as when the server reported no
	// usage or an impossible one (at most WorstUsage's OutputTokens).
	ReplyTokens(reply string) int64
	// RequestText is p as the API receives it (its messages as JSON),
	// stored with the verdict under --store-text.
	RequestText(p Prompt) string
}

// Prompt is what a judge is asked, independent of any API: the rubric, the
// record, and after an unreadable reply one repair turn.
type Prompt struct {
	System string  // the metric's rubric (the system message)
	User   string  // the record as UserMessage renders it
	Repair *Repair // nil on a first call
}

// Repair is the turn added after a reply that did not parse.
type Repair struct {
	Reply       string // the unreadable reply, as the judge's own turn
	Instruction string // what could not be read, and the answer format again
}

// Attempt is what one Send saw.
type Attempt struct {
	// Sent: the request left the process (it may be billed). Set on
	// failure too.
	Sent bool
	// Text is the reply's content: the verdict JSON that ParseVerdict
	// reads (an API that answers with a tool call renders its input here).
	Text string
	// Usage is the server's usage by kind of token; HasUsage says the
	// reply carried a usage block at all.
	Usage    pricing.Usage
	HasUsage bool
}

// Action is what to do after a failed attempt.
type Action int

// Actions a Failure may take.
const (
	// ActRetry: another attempt may succeed (rate limit, server error,
	// network): wait and retry, within --max-retries.
	ActRetry Action = iota
	// ActFail: this call failed (a 400 on this record): an error row; the
	// run goes on.
	ActFail
	// ActStop: every call would fail the same way (bad key, no quota, no
	// such model): the run stops with a FatalError.
	ActStop
)

// Failure is a classified failed attempt.
type Failure struct {
	Action Action
	// Cause counts an ActRetry in the summary: Retry429, Retry5xx,
	// RetryTimeout or RetryNetwork.
	Cause string
	// Err is one line a person can act on (the API key is redacted by the
	// caller).
	Err error
	// After is the server's Retry-After, when HasAfter; else the caller
	// backs off exponentially with jitter.
	After    time.Duration
	HasAfter bool
}

// ProviderConfig is what a provider is built from.
type ProviderConfig struct {
	Judge      *Judge
	BaseURL    string // the endpoint as configured (may hold credentials; never shown)
	APIKey     string // may be empty for a dry run, which sends nothing
	HTTPClient *http.Client
	Now        func() time.Time // for Retry-After dates
}

// Provider names (a judge's provider: key).
const (
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
)

// providerDef is one judge API: how its Provider is made and where its key
// and endpoint come from when the judge does not name them.
type providerDef struct {
	new        func(ProviderConfig) (Provider, error)
	keyEnv     string // API key variable (the judge's api_key_env overrides it)
	baseURLEnv string // endpoint variable, after base_url and --base-url
	baseURL    string // the endpoint otherwise
	// batch builds the provider's Batch API client (batchapi.go); nil when
	// the API has none (eval --batch refuses the judge).
	batch func(BatchConfig) (batchAPI, error)
}

// providers is the one registry of judge APIs: the config's provider key is
// validated against it and a run builds each judge's Provider from it.
// Adding an API is a file implementing Provider and an entry here.
var providers = map[string]providerDef{
	ProviderOpenAI:    {new: newOpenAIProvider, keyEnv: "OPENAI_API_KEY", baseURLEnv: "OPENAI_BASE_URL", baseURL: DefaultBaseURL, batch: newOpenAIBatch},
	ProviderAnthropic: {new: newAnthropicProvider, keyEnv: "ANTHROPIC_API_KEY", baseURLEnv: "ANTHROPIC_BASE_URL", baseURL: DefaultAnthropicBaseURL, batch: newAnthropicBatch},
}

// providerNames are the registered providers, sorted, for messages.
func providerNames() string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
