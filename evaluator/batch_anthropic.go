package evaluator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The Anthropic Message Batches API, spoken with net/http:
// POST {base}/v1/messages/batches with {"requests":[{custom_id, params}]}
// streamed from the runner's lines, polled at /v1/messages/batches/{id},
// results read as JSONL from /v1/messages/batches/{id}/results. The API
// keeps no label, so Find matches a batch by creation time and size.

// Anthropic's Batch API limits: requests per batch, and the request body's
// size (256 MB, counted in decimal megabytes). The body is the lines
// (each len(line)+1 bytes as the runner counts them, the newline becoming
// a comma) plus {"requests":[ and ]}: anthropicBatchMaxBytes leaves a
// kilobyte for that wrapping.
const (
	anthropicBatchMaxRequests = 100_000
	anthropicBatchMaxBytes    = 256_000_000 - 1024
)

// The body's wrapping around the comma-separated lines.
const (
	anthropicBatchHead = `{"requests":[`
	anthropicBatchTail = `]}`
)

type anthropicBatch struct {
	ap      *anthropicProvider
	batches string // {base}/v1/messages/batches; may hold credentials (never shown)
	http    *batchHTTP
}

func newAnthropicBatch(bc BatchConfig) (batchAPI, error) {
	base, err := batchBaseURL(bc, "Anthropic", "ANTHROPIC_BASE_URL")
	if err != nil {
		return nil, err
	}
	ap, _ := bc.Provider.(*anthropicProvider)
	if ap == nil {
		p, err := newAnthropicProvider(ProviderConfig{Judge: bc.Judge, BaseURL: bc.BaseURL, APIKey: bc.APIKey, HTTPClient: bc.HTTPClient, Now: bc.Now})
		if err != nil {
			return nil, err
		}
		ap = p.(*anthropicProvider)
	}
	batches := base + "/v1/messages/batches"
	if strings.HasSuffix(base, "/v1") {
		batches = base + "/messages/batches" // a base URL given with its /v1
	}
	key := bc.APIKey
	return &anthropicBatch{ap: ap, batches: batches, http: newBatchHTTP(bc, "Anthropic", func(h http.Header) {
		h.Set("x-api-key", key)
		h.Set("anthropic-version", anthropicVersion)
	})}, nil
}

// Limits: 100,000 requests or 256,000,000 bytes of body, less the
// wrapping's allowance.
func (*anthropicBatch) Limits() (int, int64) {
	return anthropicBatchMaxRequests, anthropicBatchMaxBytes
}

// Line is {"custom_id","params"} with the params a live Send of p posts.
func (ab *anthropicBatch) Line(customID string, p Prompt) ([]byte, error) {
	params, err := ab.ap.body(p)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		CustomID string          `json:"custom_id"`
		Params   json.RawMessage `json:"params"`
	}{customID, params})
}

// Wire types of the Message Batches API (only what is read).
type (
	anthropicBatchObject struct {
		ID               string `json:"id"`
		ProcessingStatus string `json:"processing_status"`
		RequestCounts    struct {
			Processing int64 `json:"processing"`
			Succeeded  int64 `json:"succeeded"`
			Errored    int64 `json:"errored"`
			Canceled   int64 `json:"canceled"`
			Expired    int64 `json:"expired"`
		} `json:"request_counts"`
		CreatedAt  string `json:"created_at"`
		ResultsURL string `json:"results_url"`
	}
	anthropicBatchList struct {
		Data    []anthropicBatchObject `json:"data"`
		HasMore bool                   `json:"has_more"`
		LastID  string                 `json:"last_id"`
	}
	anthropicBatchLine struct {
		CustomID string `json:"custom_id"`
		Result   struct {
			Type    string          `json:"type"`
			Message json.RawMessage `json:"message"`
			Error   struct {
				Type    string `json:"type"`
				Message string `json:"message"`
				Error   struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"error"`
		} `json:"result"`
	}
)

// info maps a batch object onto BatchInfo.
func (b *anthropicBatchObject) info() BatchInfo {
	c := b.RequestCounts
	bi := BatchInfo{
		RemoteID: b.ID, RawState: b.ProcessingStatus,
		Total:     c.Processing + c.Succeeded + c.Errored + c.Canceled + c.Expired,
		Succeeded: c.Succeeded, Errored: c.Errored, Cancelled: c.Canceled, Expired: c.Expired,
		ResultsURL: b.ResultsURL,
	}
	switch b.ProcessingStatus {
	case "canceling":
		bi.State = BatchCancelling
	case "ended":
		bi.Ended = true
		switch {
		case c.Canceled == 0 && c.Expired == 0:
			bi.State = BatchCompleted
		case c.Expired > 0:
			bi.State = BatchExpired
		default:
			bi.State = BatchCancelled
		}
	default: // in_progress, or an unknown word: keep polling
		bi.State = BatchInProgress
	}
	return bi
}

// Submit streams {"requests":[line,line,...]} from r's lines.
func (ab *anthropicBatch) Submit(ctx context.Context, label string, r io.Reader, n int, size int64) (BatchInfo, error) {
	if n <= 0 {
		return BatchInfo{}, errors.New("a batch needs at least one request")
	}
	// n lines of size bytes with their newlines: n-1 commas between them.
	length := int64(len(anthropicBatchHead)) + size - 1 + int64(len(anthropicBatchTail))
	body := &requestsReader{src: bufio.NewReaderSize(&exactReader{r: r, left: size}, 64<<10), want: n}
	var b anthropicBatchObject
	if err := ab.http.json(ctx, http.MethodPost, ab.batches, body, length, "application/json", &b); err != nil {
		return BatchInfo{}, fmt.Errorf("creating the batch: %w", err)
	}
	if b.ID == "" {
		return BatchInfo{}, errors.New("creating the batch: the answer has no batch id")
	}
	return b.info(), nil
}

// requestsReader turns newline-ended lines into the body
// {"requests":[line,line]}: each newline but the last becomes a comma. It
// fails (aborting the request) unless it read want non-blank lines.
type requestsReader struct {
	src       *bufio.Reader
	want      int
	lines     int
	state     int  // 0 head not sent, 1 lines, 2 tail sent
	inLine    bool // within a line: its newline is owed
	pending   []byte
	pendingAt int
}

func (q *requestsReader) Read(p []byte) (int, error) {
	if q.pendingAt < len(q.pending) {
		n := copy(p, q.pending[q.pendingAt:])
		q.pendingAt += n
		return n, nil
	}
	switch q.state {
	case 0:
		q.state = 1
		q.pending, q.pendingAt = []byte(anthropicBatchHead), 0
		return q.Read(p)
	case 2:
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		c, err := q.src.ReadByte()
		if err == io.EOF {
			if q.inLine {
				return n, errors.New("the batch input's last line has no newline")
			}
			if q.lines != q.want {
				return n, fmt.Errorf("the batch input holds %d requests, not %d", q.lines, q.want)
			}
			q.state = 2
			q.pending, q.pendingAt = []byte(anthropicBatchTail), 0
			if n > 0 {
				return n, nil
			}
			return q.Read(p)
		}
		if err != nil {
			return n, err
		}
		switch {
		case c == '\n':
			if !q.inLine {
				return n, errors.New("the batch input has a blank line")
			}
			q.inLine = false
		case !q.inLine:
			q.inLine = true
			q.lines++
			if q.lines > 1 {
				p[n] = ','
				n++
				if n == len(p) {
					q.pending, q.pendingAt = []byte{c}, 0
					return n, nil
				}
			}
			p[n] = c
			n++
		default:
			p[n] = c
			n++
		}
	}
	return n, nil
}

// Status is GET /v1/messages/batches/{id}.
func (ab *anthropicBatch) Status(ctx context.Context, remoteID string) (BatchInfo, error) {
	var b anthropicBatchObject
	if err := ab.http.json(ctx, http.MethodGet, ab.batches+"/"+url.PathEscape(remoteID), nil, 0, "", &b); err != nil {
		return BatchInfo{}, err
	}
	return b.info(), nil
}

// Cancel is POST /v1/messages/batches/{id}/cancel.
func (ab *anthropicBatch) Cancel(ctx context.Context, remoteID string) (BatchInfo, error) {
	var b anthropicBatchObject
	if err := ab.http.json(ctx, http.MethodPost, ab.batches+"/"+url.PathEscape(remoteID)+"/cancel", nil, 0, "", &b); err != nil {
		return BatchInfo{}, err
	}
	return b.info(), nil
}

// Find pages through the batches (newest first) for those created at or
// after `after` (less a minute for clock skew) holding n requests: one is
// adopted, several are ambiguous (a *FatalError: polling again would not
// tell them apart).
func (ab *anthropicBatch) Find(ctx context.Context, _ string, after time.Time, n int) (BatchInfo, bool, error) {
	since := after.Add(-time.Minute)
	var found []BatchInfo
	cursor := ""
pages:
	for range maxBatchPages {
		u := ab.batches + "?limit=100"
		if cursor != "" {
			u += "&after_id=" + url.QueryEscape(cursor)
		}
		var page anthropicBatchList
		if err := ab.http.json(ctx, http.MethodGet, u, nil, 0, "", &page); err != nil {
			return BatchInfo{}, false, err
		}
		for i := range page.Data {
			b := &page.Data[i]
			created, err := time.Parse(time.RFC3339Nano, b.CreatedAt)
			if err != nil {
				continue
			}
			if created.Before(since) {
				break pages // the list is newest first: the rest are older
			}
			if bi := b.info(); bi.Total == int64(n) {
				found = append(found, bi)
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		cursor = page.LastID
		if cursor == "" {
			cursor = page.Data[len(page.Data)-1].ID
		}
	}
	switch len(found) {
	case 0:
		return BatchInfo{}, false, nil
	case 1:
		return found[0], true, nil
	}
	ids := make([]string, len(found))
	for i, b := range found {
		ids[i] = b.RemoteID
	}
	return BatchInfo{}, false, &FatalError{Msg: fmt.Sprintf("judge %q: %d Anthropic batches of %d requests were created since %s (%s); which one this run made is ambiguous: cancel the extra ones in the Anthropic console",
		ab.ap.judge.Name, len(found), n, after.UTC().Format(time.RFC3339), strings.Join(ids, ", "))}
}

// Results streams GET /v1/messages/batches/{id}/results (built from the
// configured base URL, not the batch's results_url, so the key only goes
// where the configuration says).
func (ab *anthropicBatch) Results(ctx context.Context, info BatchInfo, fn func(BatchResult) error) error {
	if !info.Ended {
		return fmt.Errorf("batch %s has not ended (%s): its results are not ready", info.RemoteID, info.RawState)
	}
	resp, err := ab.http.do(ctx, http.MethodGet, ab.batches+"/"+url.PathEscape(info.RemoteID)+"/results", nil, 0, "")
	if err != nil {
		return fmt.Errorf("reading batch results: %w", err)
	}
	defer resp.Body.Close() // read only
	key := ab.http.key
	return eachLine(resp.Body, key, func(line []byte) error {
		var l anthropicBatchLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("reading batch results: a line is not JSON: %v", err)
		}
		if l.CustomID == "" {
			return errors.New("reading batch results: a line has no custom_id")
		}
		res := BatchResult{CustomID: l.CustomID}
		switch l.Result.Type {
		case "succeeded":
			a, err := ab.ap.readMessage(l.Result.Message)
			if err != nil {
				res.Err = oneLineRedacted(err.Error(), key)
			} else {
				a.Sent = true
				res.Attempt = a
			}
		case "errored":
			e := l.Result.Error
			typ, msg := e.Error.Type, e.Error.Message
			if msg == "" {
				typ, msg = e.Type, e.Message
			}
			if msg == "" {
				msg = "the request failed (no message)"
			}
			if typ != "" && typ != "error" {
				msg = typ + ": " + msg
			}
			res.Err = oneLineRedacted(msg, key)
		case "canceled", "expired":
			res.Missing = true
		default:
			res.Err = oneLineRedacted(fmt.Sprintf("unknown result type %q", l.Result.Type), key)
		}
		return fn(res)
	})
}
