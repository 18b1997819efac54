package evaluator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// The OpenAI Batch API, spoken with net/http (go-openai's file upload reads
// the whole file into memory): the input JSONL is streamed to
// POST {base}/files as multipart/form-data (purpose=batch), then
// POST {base}/batches creates a 24 h batch of /v1/chat/completions
// requests labelled with metadata {"costctl_batch": label}. Results are the
// output file's lines, then the error file's. The base URL includes /v1, as
// the live client's does.

// OpenAI's Batch API limits: requests per batch, and the input file's size
// (200 MB, counted in decimal megabytes to stay clear of either reading).
const (
	openaiBatchMaxRequests = 50_000
	openaiBatchMaxBytes    = 200_000_000
)

// openaiBatchEndpoint is the endpoint every batch line is sent to.
const openaiBatchEndpoint = "/v1/chat/completions"

// batchLabelKey is the metadata key that holds the ledger's batch label.
const batchLabelKey = "costctl_batch"

// maxBatchPages bounds how many list pages Find reads (100 batches each).
const maxBatchPages = 10

// maxBatchJSON bounds a management answer (a batch object, a list page).
const maxBatchJSON = 16 << 20

type openaiBatch struct {
	op   *openaiProvider
	base string // without a trailing slash; may hold credentials (never shown)
	http *batchHTTP
}

func newOpenAIBatch(bc BatchConfig) (batchAPI, error) {
	base, err := batchBaseURL(bc, "OpenAI", "OPENAI_BASE_URL")
	if err != nil {
		return nil, err
	}
	op, _ := bc.Provider.(*openaiProvider)
	if op == nil {
		p, err := newOpenAIProvider(ProviderConfig{Judge: bc.Judge, BaseURL: bc.BaseURL, APIKey: bc.APIKey, HTTPClient: bc.HTTPClient, Now: bc.Now})
		if err != nil {
			return nil, err
		}
		op = p.(*openaiProvider)
	}
	key := bc.APIKey
	return &openaiBatch{op: op, base: base, http: newBatchHTTP(bc, "OpenAI", func(h http.Header) {
		h.Set("Authorization", "Bearer "+key)
	})}, nil
}

// Limits: 50,000 requests or 200,000,000 bytes of input file.
func (*openaiBatch) Limits() (int, int64) { return openaiBatchMaxRequests, openaiBatchMaxBytes }

// Line is {"custom_id","method":"POST","url":"/v1/chat/completions","body"}
// with the body a live Send of p posts.
func (ob *openaiBatch) Line(customID string, p Prompt) ([]byte, error) {
	body, err := ob.op.body(p)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		CustomID string          `json:"custom_id"`
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}{customID, http.MethodPost, openaiBatchEndpoint, body})
}

// Wire types of the Batch API (only what is read).
type (
	openaiBatchObject struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		InputFileID   string `json:"input_file_id"`
		OutputFileID  string `json:"output_file_id"`
		ErrorFileID   string `json:"error_file_id"`
		CreatedAt     int64  `json:"created_at"`
		RequestCounts struct {
			Total     int64 `json:"total"`
			Completed int64 `json:"completed"`
			Failed    int64 `json:"failed"`
		} `json:"request_counts"`
		Errors *struct {
			Data []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Line    *int   `json:"line"`
			} `json:"data"`
		} `json:"errors"`
		Metadata map[string]string `json:"metadata"`
	}
	openaiBatchList struct {
		Data    []openaiBatchObject `json:"data"`
		HasMore bool                `json:"has_more"`
		LastID  string              `json:"last_id"`
	}
	openaiBatchLine struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int             `json:"status_code"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
)

// info maps a batch object onto BatchInfo.
func (b *openaiBatchObject) info(key string) BatchInfo {
	bi := BatchInfo{
		RemoteID: b.ID, RawState: b.Status,
		Total: b.RequestCounts.Total, Succeeded: b.RequestCounts.Completed, Errored: b.RequestCounts.Failed,
		InputFileID: b.InputFileID, OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID,
	}
	switch b.Status {
	case "validating":
		bi.State = BatchValidating
	case "in_progress":
		bi.State = BatchInProgress
	case "finalizing":
		bi.State = BatchFinalizing
	case "cancelling":
		bi.State = BatchCancelling
	case "completed":
		bi.State, bi.Ended = BatchCompleted, true
	case "failed":
		bi.State, bi.Ended = BatchFailed, true
	case "expired":
		bi.State, bi.Ended = BatchExpired, true
	case "cancelled":
		bi.State, bi.Ended = BatchCancelled, true
	default:
		bi.State = BatchInProgress // an unknown word: keep polling
	}
	if b.Errors != nil {
		for _, d := range b.Errors.Data {
			if d.Message == "" && d.Code == "" {
				continue
			}
			msg := d.Message
			if msg == "" {
				msg = d.Code
			}
			if d.Line != nil {
				msg = fmt.Sprintf("line %d: %s", *d.Line, msg)
			}
			bi.Error = Redact(clip(strings.Join(strings.Fields(msg), " "), 300), key)
			break
		}
	}
	return bi
}

// Submit streams the upload (a multipart body of known length: the form's
// head, r, its tail) and creates the batch.
func (ob *openaiBatch) Submit(ctx context.Context, label string, r io.Reader, n int, size int64) (BatchInfo, error) {
	if n <= 0 {
		return BatchInfo{}, errors.New("a batch needs at least one request")
	}
	var head, tail bytes.Buffer
	mw := multipart.NewWriter(&head)
	if err := mw.WriteField("purpose", "batch"); err != nil {
		return BatchInfo{}, err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, "costctl-"+safeFileName(label)+".jsonl"))
	h.Set("Content-Type", "application/jsonl")
	if _, err := mw.CreatePart(h); err != nil {
		return BatchInfo{}, err
	}
	tw := multipart.NewWriter(&tail)
	if err := tw.SetBoundary(mw.Boundary()); err != nil {
		return BatchInfo{}, err
	}
	if err := tw.Close(); err != nil {
		return BatchInfo{}, err
	}
	// The part's content ends with CRLF before the closing boundary, which
	// Close writes as "\r\n--boundary--\r\n".
	body := io.MultiReader(&head, &exactReader{r: r, left: size}, &tail)
	length := int64(head.Len()) + size + int64(tail.Len())
	var file struct {
		ID string `json:"id"`
	}
	err := ob.http.json(ctx, http.MethodPost, ob.base+"/files", body, length, mw.FormDataContentType(), &file)
	if err != nil {
		return BatchInfo{}, fmt.Errorf("uploading the batch input: %w", err)
	}
	if file.ID == "" {
		return BatchInfo{}, errors.New("uploading the batch input: the answer has no file id")
	}
	create, _ := json.Marshal(map[string]any{
		"input_file_id":     file.ID,
		"endpoint":          openaiBatchEndpoint,
		"completion_window": "24h",
		"metadata":          map[string]string{batchLabelKey: label},
	})
	var b openaiBatchObject
	if err := ob.http.json(ctx, http.MethodPost, ob.base+"/batches", bytes.NewReader(create), int64(len(create)), "application/json", &b); err != nil {
		return BatchInfo{}, fmt.Errorf("creating the batch: %w", err)
	}
	if b.ID == "" {
		return BatchInfo{}, errors.New("creating the batch: the answer has no batch id")
	}
	return b.info(ob.http.key), nil
}

// Status is GET /batches/{id}.
func (ob *openaiBatch) Status(ctx context.Context, remoteID string) (BatchInfo, error) {
	var b openaiBatchObject
	if err := ob.http.json(ctx, http.MethodGet, ob.base+"/batches/"+url.PathEscape(remoteID), nil, 0, "", &b); err != nil {
		return BatchInfo{}, err
	}
	return b.info(ob.http.key), nil
}

// Cancel is POST /batches/{id}/cancel.
func (ob *openaiBatch) Cancel(ctx context.Context, remoteID string) (BatchInfo, error) {
	var b openaiBatchObject
	if err := ob.http.json(ctx, http.MethodPost, ob.base+"/batches/"+url.PathEscape(remoteID)+"/cancel", nil, 0, "", &b); err != nil {
		return BatchInfo{}, err
	}
	return b.info(ob.http.key), nil
}

// Find pages through the batches (newest first) for one whose metadata
// holds label; it stops at batches created an hour before after (room for
// a skewed clock: the label, not the time, is what matches).
func (ob *openaiBatch) Find(ctx context.Context, label string, after time.Time, _ int) (BatchInfo, bool, error) {
	cursor := ""
	for range maxBatchPages {
		u := ob.base + "/batches?limit=100"
		if cursor != "" {
			u += "&after=" + url.QueryEscape(cursor)
		}
		var page openaiBatchList
		if err := ob.http.json(ctx, http.MethodGet, u, nil, 0, "", &page); err != nil {
			return BatchInfo{}, false, err
		}
		for i := range page.Data {
			b := &page.Data[i]
			if b.Metadata[batchLabelKey] == label {
				return b.info(ob.http.key), true, nil
			}
			if !after.IsZero() && b.CreatedAt > 0 && time.Unix(b.CreatedAt, 0).Before(after.Add(-time.Hour)) {
				return BatchInfo{}, false, nil
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
	return BatchInfo{}, false, nil
}

// Results reads the output file, then the error file, line by line.
func (ob *openaiBatch) Results(ctx context.Context, info BatchInfo, fn func(BatchResult) error) error {
	if !info.Ended {
		return fmt.Errorf("batch %s has not ended (%s): its results are not ready", info.RemoteID, info.RawState)
	}
	for _, id := range []string{info.OutputFileID, info.ErrorFileID} {
		if id == "" {
			continue
		}
		if err := ob.readFile(ctx, id, fn); err != nil {
			return err
		}
	}
	return nil
}

// readFile streams one result file.
func (ob *openaiBatch) readFile(ctx context.Context, fileID string, fn func(BatchResult) error) error {
	resp, err := ob.http.do(ctx, http.MethodGet, ob.base+"/files/"+url.PathEscape(fileID)+"/content", nil, 0, "")
	if err != nil {
		return fmt.Errorf("reading batch results: %w", err)
	}
	defer resp.Body.Close() // read only
	return eachLine(resp.Body, ob.http.key, func(line []byte) error {
		var l openaiBatchLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("reading batch results: a line is not JSON: %v", err)
		}
		if l.CustomID == "" {
			return errors.New("reading batch results: a line has no custom_id")
		}
		return fn(ob.result(&l))
	})
}

// result is one result line as a BatchResult.
func (ob *openaiBatch) result(l *openaiBatchLine) BatchResult {
	key := ob.http.key
	res := BatchResult{CustomID: l.CustomID}
	switch {
	case l.Error != nil && (l.Error.Code != "" || l.Error.Message != ""):
		switch l.Error.Code {
		case "batch_expired", "batch_cancelled":
			res.Missing = true
		default:
			res.Err = oneLineRedacted(strings.TrimPrefix(l.Error.Code+": "+l.Error.Message, ": "), key)
		}
	case l.Response == nil:
		res.Err = "the result has neither a response nor an error"
	case l.Response.StatusCode != http.StatusOK:
		res.Err = oneLineRedacted(fmt.Sprintf("HTTP %d: %s", l.Response.StatusCode, errorMessage(l.Response.Body, l.Response.StatusCode)), key)
	default:
		var cc openai.ChatCompletionResponse
		if err := json.Unmarshal(l.Response.Body, &cc); err != nil {
			res.Err = oneLineRedacted("reply is not a chat completion: "+err.Error(), key)
			break
		}
		a, err := ob.op.readReply(cc)
		if err != nil {
			res.Err = oneLineRedacted(err.Error(), key)
			break
		}
		a.Sent = true
		res.Attempt = a
	}
	return res
}

// --- shared by the OpenAI and Anthropic batch clients ---

// batchHTTP makes the management requests of a Batch API: its key's
// headers, no redirects (the key would go with them), and errors
// classified as one redacted line.
type batchHTTP struct {
	hc      *http.Client
	key     string
	judge   *Judge
	api     string // "OpenAI" or "Anthropic", for messages
	headers func(http.Header)
}

func newBatchHTTP(bc BatchConfig, api string, headers func(http.Header)) *batchHTTP {
	hc := bc.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &batchHTTP{hc: &c, key: bc.APIKey, judge: bc.Judge, api: api, headers: headers}
}

// batchBaseURL is the configured base URL, checked to be http(s), without a
// trailing slash.
func batchBaseURL(bc BatchConfig, api, env string) (string, error) {
	base := strings.TrimRight(bc.BaseURL, "/")
	if pu, err := url.Parse(base); err != nil || pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" {
		shown := "(unparsable)"
		if err == nil {
			shown = redactURL(base)
		}
		return "", &ConfigError{Msg: fmt.Sprintf("judge %q: the %s base URL %s is not an http(s) URL; fix base_url or %s", bc.Judge.Name, api, shown, env)}
	}
	return base, nil
}

// do sends one request; a 2xx answer is returned to be read (and closed) by
// the caller, anything else is a classified error.
func (c *batchHTTP) do(ctx context.Context, method, u string, body io.Reader, length int64, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, &FatalError{Msg: fmt.Sprintf("judge %q: the %s base URL cannot be used: %s", c.judge.Name, c.api, oneLineRedacted(unwrapURLError(err).Error(), c.key))}
	}
	if body != nil {
		req.ContentLength = length
		if length == 0 {
			req.Body = http.NoBody
		}
	}
	c.headers(req.Header)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The URL is left out (it may hold credentials).
		return nil, fmt.Errorf("%s batch API request failed: %s", c.api, oneLineRedacted(unwrapURLError(err).Error(), c.key))
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close() // read only
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := oneLineRedacted(errorMessage(raw, resp.StatusCode), c.key)
	status := resp.StatusCode
	switch {
	case status/100 == 3:
		return nil, &FatalError{Msg: fmt.Sprintf("judge %q: the %s endpoint answered HTTP %d (redirected to %s), which is not followed (the API key would go with it); set base_url to the final URL",
			c.judge.Name, c.api, status, Redact(redactURL(resp.Header.Get("Location")), c.key))}
	case status == 401 || status == 403:
		return nil, &FatalError{Msg: fmt.Sprintf("judge %q: the %s Batch API refused the API key (HTTP %d: %s); check %s or the judge's api_key_env", c.judge.Name, c.api, status, msg, KeyEnv(c.judge))}
	case status == 404:
		return nil, &FatalError{Msg: fmt.Sprintf("judge %q: the %s endpoint has no Batch API there, or not this batch (HTTP 404: %s); check base_url", c.judge.Name, c.api, msg)}
	}
	return nil, fmt.Errorf("%s batch API HTTP %d: %s", c.api, status, msg)
}

// json sends one request and decodes its JSON answer into out.
func (c *batchHTTP) json(ctx context.Context, method, u string, body io.Reader, length int64, contentType string, out any) error {
	resp, err := c.do(ctx, method, u, body, length, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close() // read only
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBatchJSON))
	if err != nil {
		return fmt.Errorf("%s batch API: reading the answer: %s", c.api, oneLineRedacted(unwrapURLError(err).Error(), c.key))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s batch API: the answer is not the JSON expected: %s", c.api, oneLineRedacted(err.Error(), c.key))
	}
	return nil
}

// errorMessage is the message of an error body ({"error":{"message"}}, as
// both APIs write it), else the body's text, else the status text.
func errorMessage(raw []byte, status int) string {
	var eb struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
		return eb.Error.Message
	}
	if s := strings.TrimSpace(string(raw)); s != "" && !strings.HasPrefix(s, "{") {
		return s
	}
	return http.StatusText(status)
}

// oneLineRedacted is s on one line, clipped, without the key or other
// credentials.
func oneLineRedacted(s, key string) string {
	return Redact(clip(strings.Join(strings.Fields(s), " "), 300), key)
}

// eachLine calls fn with each non-blank line of r, however long (no
// bufio.Scanner token limit).
func eachLine(r io.Reader, key string, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading batch results: %s", oneLineRedacted(unwrapURLError(err).Error(), key))
		}
	}
}

// exactReader passes r through and fails unless it holds exactly left
// bytes: the request then aborts instead of sending a short or long body.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		// Anything more than announced is an error.
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			return 0, errors.New("the batch input is longer than its announced size")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			return n, fmt.Errorf("the batch input is shorter than its announced size (%d bytes missing)", e.left)
		}
		err = nil
	}
	return n, err
}

// safeFileName keeps a label's letters, digits, '-', '_' and '.'.
func safeFileName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return clip(b.String(), 100)
}
