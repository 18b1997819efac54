package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/costctl/costctl/pricing"
)

// JudgeResult is a cached judge verdict. Only hashes, scores, reasons, token
// counts and costs are kept; RequestText/ResponseText are stored only when
// the user asked for it (eval --store-text).
type JudgeResult struct {
	Key          string // hash of everything that can change the verdict
	Metric       string
	Model        string
	Score        float64
	Reason       string
	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
	// Of InputTokens, written to a 5-minute or 1-hour prompt cache (an
	// Anthropic judge's first call): what a reuse avoided is priced with them.
	CacheWrite5mTokens, CacheWrite1hTokens int64
	Cost                                   pricing.Money // what the original call cost
	LatencyMS                              int64
	Created                                time.Time
	RequestText                            string // empty unless stored on purpose
	ResponseText                           string
}

// GetJudge returns the cached verdict for key, or ok=false.
func (db *DB) GetJudge(ctx context.Context, key string) (r JudgeResult, ok bool, err error) {
	var created, cost int64
	var req, resp sql.NullString
	err = db.sql.QueryRowContext(ctx, `SELECT key, metric, model, score, reason, input_tokens, cached_tokens, output_tokens,
		cache_write_5m_tokens, cache_write_1h_tokens, cost_nano, latency_ms, created_ms, request_text, response_text FROM judge_cache WHERE key = ?`, key).
		Scan(&r.Key, &r.Metric, &r.Model, &r.Score, &r.Reason, &r.InputTokens, &r.CachedTokens, &r.OutputTokens,
			&r.CacheWrite5mTokens, &r.CacheWrite1hTokens, &cost, &r.LatencyMS, &created, &req, &resp)
	if errors.Is(err, sql.ErrNoRows) {
		return JudgeResult{}, false, nil
	}
	if err != nil {
		return JudgeResult{}, false, fmt.Errorf("ledger: read judge cache: %w", err)
	}
	r.Cost = pricing.Money(cost)
	r.Created = time.UnixMilli(created).UTC()
	r.RequestText, r.ResponseText = req.String, resp.String
	return r, true, nil
}

// HasJudge reports whether key is cached (for dry runs).
func (db *DB) HasJudge(ctx context.Context, key string) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM judge_cache WHERE key = ?`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ledger: read judge cache: %w", err)
	}
	return true, nil
}

// PutJudge stores (or, on refresh, overwrites) one verdict.
func (db *DB) PutJudge(ctx context.Context, r JudgeResult) error {
	return db.PutJudges(ctx, []JudgeResult{r})
}

// PutJudges stores (or overwrites) several verdicts in one transaction, so a
// crash keeps either all of a batch or none of it.
func (db *DB) PutJudges(ctx context.Context, rs []JudgeResult) error {
	_, err := db.Record(ctx, nil, rs)
	return err
}

func putJudgesTx(ctx context.Context, tx *sql.Tx, rs []JudgeResult) error {
	if len(rs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO judge_cache (key, metric, model, score, reason, input_tokens, cached_tokens,
		output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cost_nano, latency_ms, created_ms, request_text, response_text)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(key) DO UPDATE SET metric=excluded.metric, model=excluded.model, score=excluded.score,
		reason=excluded.reason, input_tokens=excluded.input_tokens, cached_tokens=excluded.cached_tokens,
		output_tokens=excluded.output_tokens, cache_write_5m_tokens=excluded.cache_write_5m_tokens,
		cache_write_1h_tokens=excluded.cache_write_1h_tokens, cost_nano=excluded.cost_nano, latency_ms=excluded.latency_ms,
		created_ms=excluded.created_ms, request_text=excluded.request_text, response_text=excluded.response_text`)
	if err != nil {
		return fmt.Errorf("ledger: write judge cache: %w", err)
	}
	defer stmt.Close() // each Exec's error is checked; closing the statement loses no write
	for _, r := range rs {
		var req, resp any
		if r.RequestText != "" {
			req = r.RequestText
		}
		if r.ResponseText != "" {
			resp = r.ResponseText
		}
		created := r.Created
		if created.IsZero() {
			created = time.Now()
		}
		if _, err := stmt.ExecContext(ctx, r.Key, r.Metric, r.Model, r.Score, r.Reason, r.InputTokens, r.CachedTokens,
			r.OutputTokens, r.CacheWrite5mTokens, r.CacheWrite1hTokens, int64(r.Cost), r.LatencyMS, created.UnixMilli(), req, resp); err != nil {
			return fmt.Errorf("ledger: write judge cache: %w", err)
		}
	}
	return nil
}

// JudgeCacheCount is how many verdicts the cache holds.
func (db *DB) JudgeCacheCount(ctx context.Context) (int64, error) {
	var n int64
	err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM judge_cache`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("ledger: read judge cache: %w", err)
	}
	return n, nil
}

// StartRun records a run (eval, ingest) so reports can name it.
func (db *DB) StartRun(ctx context.Context, id, source string, at time.Time, detail string) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO runs (id, source, started_ms, detail) VALUES (?,?,?,?)
		ON CONFLICT(id) DO NOTHING`, id, source, at.UnixMilli(), detail)
	if err != nil {
		return fmt.Errorf("ledger: record run: %w", err)
	}
	return nil
}

// FinishRun marks a run finished with a status (ok, budget, interrupted, error).
func (db *DB) FinishRun(ctx context.Context, id, status string, at time.Time) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE runs SET finished_ms = ?, status = ? WHERE id = ?`, at.UnixMilli(), status, id)
	if err != nil {
		return fmt.Errorf("ledger: finish run: %w", err)
	}
	return nil
}
