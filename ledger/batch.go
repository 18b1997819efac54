package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Batch API submissions (eval --batch). A batch and every request it holds
// are written here before anything is sent, so a rerun collects what was
// submitted instead of submitting it again; a request is keyed by its judge
// cache key (the custom_id the provider echoes back).

// batchMigration is schema v10.
const batchMigration = `
CREATE TABLE IF NOT EXISTS batches (
	id             TEXT    PRIMARY KEY,          -- costctl's id (the label sent as metadata)
	provider       TEXT    NOT NULL,             -- openai | anthropic
	endpoint       TEXT    NOT NULL DEFAULT '',  -- base URL without credentials
	judge          TEXT    NOT NULL DEFAULT '',
	model          TEXT    NOT NULL DEFAULT '',
	run_id         TEXT    NOT NULL DEFAULT '',  -- the run that submitted it
	round          INTEGER NOT NULL DEFAULT 1,   -- stage of a when: chain
	remote_id      TEXT    NOT NULL DEFAULT '',  -- the provider's id ('' until created)
	state          TEXT    NOT NULL,             -- preparing, then the provider's (validating … completed, expired, cancelled, failed), then collected
	requests       INTEGER NOT NULL DEFAULT 0,
	succeeded      INTEGER NOT NULL DEFAULT 0,   -- as collected (or as the provider reports while running)
	errored        INTEGER NOT NULL DEFAULT 0,
	missing        INTEGER NOT NULL DEFAULT 0,   -- never ran (expired, cancelled): resubmitted by the next run
	reserved_nano  INTEGER NOT NULL DEFAULT 0,   -- worst case of its requests at batch rates
	cost_nano      INTEGER NOT NULL DEFAULT 0,   -- what its collected results cost
	created_ms     INTEGER NOT NULL,
	updated_ms     INTEGER NOT NULL,
	error          TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS batch_requests (
	batch_id       TEXT    NOT NULL,
	custom_id      TEXT    NOT NULL,             -- the judge cache key
	metric         TEXT    NOT NULL DEFAULT '',
	tenant         TEXT    NOT NULL DEFAULT '',  -- of the record that asked (its billed call's tenant)
	bound          INTEGER NOT NULL DEFAULT 0,   -- prompt tokens the request can be billed at most
	worst_nano     INTEGER NOT NULL DEFAULT 0,
	state          TEXT    NOT NULL DEFAULT 'pending', -- pending | ok | error | missing
	error          TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (batch_id, custom_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_requests_open ON batch_requests(custom_id, state);
`

// Batch states kept by costctl around the provider's.
const (
	BatchPreparing = "preparing" // written, not yet created at the provider
	BatchCollected = "collected" // ended and its results are in the ledger
)

// Request states.
const (
	RequestPending = "pending"
	RequestOK      = "ok"
	RequestError   = "error"
	RequestMissing = "missing"
)

// Batch is one submission to a provider's Batch API.
type Batch struct {
	ID, Provider, Endpoint, Judge, Model, RunID string
	Round                                       int
	RemoteID, State                             string
	Requests, Succeeded, Errored, Missing       int64
	Reserved, Cost                              pricing.Money
	Created, Updated                            time.Time
	Error                                       string
}

// Open says the batch may still produce results (not collected, not
// abandoned).
func (b *Batch) Open() bool { return b.State != BatchCollected }

// BatchRequest is one request of a batch.
type BatchRequest struct {
	CustomID string // the judge cache key
	Metric   string
	Tenant   string
	Bound    int64 // prompt tokens it can be billed at most (checks the usage reported)
	Worst    pricing.Money
	State    string
	Error    string
}

// RequestResult is a request's outcome as a collection writes it.
type RequestResult struct {
	BatchID, CustomID, State, Error string
}

// CreateBatch writes a batch (state preparing) with its requests in one
// transaction, before it is submitted.
func (db *DB) CreateBatch(ctx context.Context, b Batch, reqs []BatchRequest) error {
	return db.tx(ctx, "write batch", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, provider, endpoint, judge, model, run_id, round, remote_id, state,
			requests, reserved_nano, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			b.ID, b.Provider, b.Endpoint, b.Judge, b.Model, b.RunID, b.Round, b.RemoteID, BatchPreparing,
			int64(len(reqs)), int64(b.Reserved), b.Created.UnixMilli(), b.Created.UnixMilli()); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO batch_requests (batch_id, custom_id, metric, tenant, bound, worst_nano) VALUES (?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close() // each Exec's error is checked
		for _, r := range reqs {
			if _, err := stmt.ExecContext(ctx, b.ID, r.CustomID, r.Metric, r.Tenant, r.Bound, int64(r.Worst)); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs fn in a write transaction; what names the operation in errors.
func (db *DB) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	return db.txCtx(ctx, what, func(_ context.Context, tx *sql.Tx) error { return fn(tx) })
}

// txCtx is tx whose fn gets the transaction's context (db.begin: on
// PostgreSQL, what lets insertTx COPY).
func (db *DB) txCtx(ctx context.Context, what string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	ctx, tx, end, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("ledger: %s: %w", what, err)
	}
	defer end()
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if err := fn(ctx, tx); err != nil {
		return fmt.Errorf("ledger: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: %s: commit: %w", what, err)
	}
	return nil
}

// UpdateBatch records what the provider says of a batch: its remote id
// (once created), state and request counts.
func (db *DB) UpdateBatch(ctx context.Context, b Batch) error {
	return db.tx(ctx, "update batch", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE batches SET remote_id = ?, state = ?, succeeded = ?, errored = ?, missing = ?,
			updated_ms = ?, error = ? WHERE id = ?`, b.RemoteID, b.State, b.Succeeded, b.Errored, b.Missing,
			b.Updated.UnixMilli(), b.Error, b.ID)
		return err
	})
}

// AbandonBatch deletes a batch that was never created at the provider (a
// run stopped between writing and submitting it): its requests are planned
// again by the next run.
func (db *DB) AbandonBatch(ctx context.Context, id string) error {
	return db.tx(ctx, "abandon batch", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM batch_requests WHERE batch_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ? AND state = ?`, id, BatchPreparing)
		return err
	})
}

// CollectResults writes a part of a batch's results in one transaction:
// the billed calls (events), the verdicts they bought (judge cache) and
// each request's state. Events are keyed per batch and request, so
// collecting the same results again adds nothing.
func (db *DB) CollectResults(ctx context.Context, events []Event, judges []JudgeResult, results []RequestResult) error {
	return db.txCtx(ctx, "collect batch results", func(ctx context.Context, tx *sql.Tx) error {
		if _, err := db.insertTx(ctx, tx, events); err != nil {
			return err
		}
		if err := putJudgesTx(ctx, tx, judges); err != nil {
			return err
		}
		return setRequestStates(ctx, tx, results)
	})
}

func setRequestStates(ctx context.Context, tx *sql.Tx, results []RequestResult) error {
	if len(results) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE batch_requests SET state = ?, error = ? WHERE batch_id = ? AND custom_id = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close() // each Exec's error is checked
	for _, r := range results {
		if _, err := stmt.ExecContext(ctx, r.State, r.Error, r.BatchID, r.CustomID); err != nil {
			return err
		}
	}
	return nil
}

// FinishBatch marks an ended batch collected: requests still pending never
// ran (missing), and the batch keeps its final counts and cost.
func (db *DB) FinishBatch(ctx context.Context, b Batch) error {
	return db.tx(ctx, "finish batch", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE batch_requests SET state = ? WHERE batch_id = ? AND state = ?`,
			RequestMissing, b.ID, RequestPending); err != nil {
			return err
		}
		var ok, bad, miss int64
		if err := tx.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN state = 'ok' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN state = 'error' THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN state = 'missing' THEN 1 ELSE 0 END), 0)
			FROM batch_requests WHERE batch_id = ?`, b.ID).Scan(&ok, &bad, &miss); err != nil {
			return err
		}
		var dollars, pico int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0) FROM events WHERE event_key >= ? AND event_key < ?`,
			batchEventPrefix(b.ID), batchEventUpper(b.ID)).Scan(&dollars, &pico); err != nil {
			return err
		}
		cost, _ := amountOf(dollars, pico).Money() // rounded to the nano-dollar for display
		_, err := tx.ExecContext(ctx, `UPDATE batches SET state = ?, succeeded = ?, errored = ?, missing = ?, cost_nano = ?,
			updated_ms = ?, error = ? WHERE id = ?`, BatchCollected, ok, bad, miss, int64(cost), b.Updated.UnixMilli(), b.Error, b.ID)
		return err
	})
}

// BatchEventKey is the ledger key of a batch request's billed call.
func BatchEventKey(batchID, customID string) string { return batchEventPrefix(batchID) + customID }

func batchEventPrefix(batchID string) string { return "batch:" + batchID + ":" }

// batchEventUpper is the least key above every key with the batch's
// prefix (valid UTF-8, as PostgreSQL's text needs: ':' + 1 is ';').
func batchEventUpper(batchID string) string { return "batch:" + batchID + ";" }

// Batches lists batches, newest first; open only those not yet collected.
func (db *DB) Batches(ctx context.Context, open bool) ([]Batch, error) {
	q := `SELECT id, provider, endpoint, judge, model, run_id, round, remote_id, state, requests, succeeded, errored, missing,
		reserved_nano, cost_nano, created_ms, updated_ms, error FROM batches`
	if open {
		q += ` WHERE state <> 'collected'`
	}
	q += ` ORDER BY created_ms DESC, id DESC`
	var out []Batch
	err := db.read(func() error {
		rows, err := db.sql.QueryContext(ctx, q)
		if err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return nil // a ledger from before batches: none
			}
			return err
		}
		defer rows.Close() // read only; rows.Err is checked
		for rows.Next() {
			var b Batch
			var reserved, cost, created, updated int64
			if err := rows.Scan(&b.ID, &b.Provider, &b.Endpoint, &b.Judge, &b.Model, &b.RunID, &b.Round, &b.RemoteID, &b.State,
				&b.Requests, &b.Succeeded, &b.Errored, &b.Missing, &reserved, &cost, &created, &updated, &b.Error); err != nil {
				return err
			}
			b.Reserved, b.Cost = pricing.Money(reserved), pricing.Money(cost)
			b.Created, b.Updated = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
			out = append(out, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: read batches: %w", err)
	}
	return out, nil
}

// FindBatch returns the batch whose costctl id or provider id is id.
func (db *DB) FindBatch(ctx context.Context, id string) (Batch, bool, error) {
	all, err := db.Batches(ctx, false)
	if err != nil {
		return Batch{}, false, err
	}
	for _, b := range all {
		if b.ID == id || b.RemoteID == id && id != "" {
			return b, true, nil
		}
	}
	return Batch{}, false, nil
}

// OpenRequests returns, for each of keys that is a pending request of a
// batch not yet collected, that batch's id: those requests are waited for,
// not submitted again.
func (db *DB) OpenRequests(ctx context.Context, keys []string) (map[string]string, error) {
	out := map[string]string{}
	for lo := 0; lo < len(keys); lo += 500 {
		chunk := keys[lo:min(lo+500, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		q := `SELECT r.custom_id, r.batch_id FROM batch_requests r JOIN batches b ON b.id = r.batch_id
			WHERE r.state = 'pending' AND b.state <> 'collected' AND r.custom_id IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		rows, err := db.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("ledger: read batch requests: %w", err)
		}
		for rows.Next() {
			var k, id string
			if err := rows.Scan(&k, &id); err != nil {
				rows.Close() // read only
				return nil, fmt.Errorf("ledger: read batch requests: %w", err)
			}
			out[k] = id
		}
		err = rows.Err()
		rows.Close() // read only; rows.Err is checked
		if err != nil {
			return nil, fmt.Errorf("ledger: read batch requests: %w", err)
		}
	}
	return out, nil
}

// Requests returns a batch's requests.
func (db *DB) Requests(ctx context.Context, batchID string) (map[string]BatchRequest, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT custom_id, metric, tenant, bound, worst_nano, state, error FROM batch_requests WHERE batch_id = ?`, batchID)
	if err != nil {
		return nil, fmt.Errorf("ledger: read batch requests: %w", err)
	}
	defer rows.Close() // read only; rows.Err is checked
	out := map[string]BatchRequest{}
	for rows.Next() {
		var r BatchRequest
		var worst int64
		if err := rows.Scan(&r.CustomID, &r.Metric, &r.Tenant, &r.Bound, &worst, &r.State, &r.Error); err != nil {
			return nil, fmt.Errorf("ledger: read batch requests: %w", err)
		}
		r.Worst = pricing.Money(worst)
		out[r.CustomID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read batch requests: %w", err)
	}
	return out, nil
}

// ErrNoBatch is returned for a batch id the ledger does not hold.
var ErrNoBatch = errors.New("no such batch in the ledger")
