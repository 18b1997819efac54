package evaluator

import (
	"context"
	"io"
	"net/http"
	"time"
)

// batchAPI is one provider's Batch API, seen by the batch runner (batch.go)
// one operation at a time: no retries or sleeping here (the runner polls
// with backoff), no ledger. OpenAI's (batch_openai.go) uploads a JSONL file
// to /v1/files and creates /v1/batches with a 24 h window; Anthropic's
// (batch_anthropic.go) posts /v1/messages/batches with {custom_id, params}.
// A custom_id is the request's judge cache key (64 hex digits: both APIs
// accept it), so a result is matched to its verdict whatever the order.
//
// Errors are one line a person can act on, with the API key redacted; a
// refused key, 404 or a missing Batch API is a *FatalError.
type batchAPI interface {
	// Limits are the most requests and bytes one batch may hold: OpenAI
	// 50,000 requests or 200 MB of input file; Anthropic 100,000 requests
	// or 256 MB of request body.
	Limits() (requests int, bytes int64)
	// Line is one request as the batch input carries it, without the
	// newline: OpenAI {"custom_id","method":"POST","url":"/v1/chat/completions","body"}
	// and Anthropic {"custom_id","params"}. The body/params are exactly the
	// request a live call of the same Prompt sends (model, messages,
	// max_tokens, temperature 0, json mode or the forced verdict tool).
	Line(customID string, p Prompt) ([]byte, error)
	// Submit creates one batch of n requests read from r: Lines, each
	// followed by '\n', size bytes in all (streamed, never held whole in
	// memory by the caller). label is the ledger's id for the batch, kept
	// where the API allows it (OpenAI metadata {"costctl_batch": label}) so
	// that Find can adopt a batch whose creation was interrupted before its
	// id was stored.
	Submit(ctx context.Context, label string, r io.Reader, n int, size int64) (BatchInfo, error)
	// Status is the batch's state now.
	Status(ctx context.Context, remoteID string) (BatchInfo, error)
	// Results calls fn once for each result of an ended batch (info as
	// Status returned it), in the order the provider gives them: a reply,
	// a request's error, or a request that never ran (expired, cancelled).
	// Requests a batch holds but Results does not report are missing too:
	// the runner resubmits them on the next run.
	Results(ctx context.Context, info BatchInfo, fn func(BatchResult) error) error
	// Cancel asks the provider to cancel the batch; it ends later (its
	// finished results are kept).
	Cancel(ctx context.Context, remoteID string) (BatchInfo, error)
	// Find looks for a batch created under label; where the API keeps no
	// label (Anthropic), one created at or after `after` holding n requests.
	// ok is false when there is none (the batch was never created).
	Find(ctx context.Context, label string, after time.Time, n int) (info BatchInfo, ok bool, err error)
}

// BatchConfig is what a batchAPI is built from: the judge, its endpoint as
// configured (may hold credentials; never shown), its key, and the provider
// built for the same judge (for Line's request body and Results' replies).
type BatchConfig struct {
	Judge      *Judge
	BaseURL    string
	APIKey     string
	HTTPClient *http.Client
	Provider   Provider
	Now        func() time.Time
}

// Batch states, normalized across providers (BatchInfo.State).
const (
	BatchValidating = "validating"  // OpenAI: the input file is checked
	BatchInProgress = "in_progress" // requests are being run
	BatchFinalizing = "finalizing"  // OpenAI: results are being written
	BatchCancelling = "cancelling"  // a cancel was asked; not yet ended
	BatchCompleted  = "completed"   // ended with every request run (OpenAI completed; Anthropic ended with nothing expired or canceled)
	BatchFailed     = "failed"      // OpenAI: the input was refused; nothing ran
	BatchExpired    = "expired"     // ended at the 24 h window with requests not run
	BatchCancelled  = "cancelled"   // ended by a cancel with requests not run
)

// BatchInfo is a batch as the provider reports it.
type BatchInfo struct {
	RemoteID string // the provider's batch id
	State    string // one of the Batch* states
	RawState string // the provider's own word (OpenAI status, Anthropic processing_status)
	Ended    bool   // no more results will come: Results may be read
	// Request counts as the provider reports them (OpenAI request_counts
	// total/completed/failed; Anthropic request_counts processing/succeeded/
	// errored/canceled/expired, Total their sum).
	Total, Succeeded, Errored, Cancelled, Expired int64
	// Provider-specific handles for Results.
	InputFileID  string // OpenAI
	OutputFileID string // OpenAI
	ErrorFileID  string // OpenAI
	ResultsURL   string // Anthropic
	Error        string // why a batch failed (OpenAI errors.data), one line
}

// BatchResult is one request's result.
type BatchResult struct {
	CustomID string
	// Attempt is the reply (Text, Usage, HasUsage), read exactly as the
	// provider's live Send reads one, when Err == "" and !Missing.
	Attempt Attempt
	// Err is the request's error (an error-file line, an errored result, a
	// reply with a non-200 status), one line, redacted. Never cached.
	Err string
	// Missing: the request never ran (expired, canceled): resubmit it.
	Missing bool
}
