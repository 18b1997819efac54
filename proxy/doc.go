// Package proxy is costctl's cost gateway: an HTTP server that speaks the
// OpenAI and Anthropic wire formats, authenticates clients by virtual key,
// enforces each tenant's policy (block, daily and monthly budgets, model
// routes, sampling, an exact cache), forwards calls to the upstream with
// the upstream's own key, relays answers (streams event by event) and
// writes every served call to the ledger, priced exactly, as source
// "proxy".
//
// # Flow of one request (Server.ServeHTTP)
//
//  1. Route: only the routes in routes are served (chat completions,
//     responses, embeddings, models; messages, count_tokens); anything
//     else is a 404, so no unpriced passthrough can bypass a budget.
//  2. Auth: the virtual key (Authorization: Bearer or x-api-key) is hashed
//     (ledger.HashKey) and looked up with Control.KeyByHash; a found key is
//     trusted for Config.KeyCacheTTL (1 s). Unknown or revoked: 401.
//  3. Policy (reloaded from Control.Policies every 500 ms): blocked is a
//     403 tenant_blocked; a route FROM=TO rewrites the model and says so in
//     x-costctl-routed-from.
//  4. Cache (cache.go), when the tenant has it on and the request is
//     deterministic: a hit answers without any upstream call.
//  5. Budget (budget.go): the worst case — prompt bound (body bytes + 64 +
//     a per-image maximum) and the requested maximum output (else the
//     model's), priced at the dearest of plain input and cache writes — is
//     reserved atomically against the tenant's daily and monthly budgets;
//     over → 429 budget_exceeded with Retry-After. A tenant with a budget
//     cannot call a model costctl cannot price.
//  6. Forward with the upstream key; relay (stream.go for event streams:
//     one event at a time, flushed; OpenAI chat streams get
//     stream_options.include_usage, and the usage chunk reaches only
//     clients that asked for it).
//  7. Bill: the usage the upstream reported, priced with
//     ledger.PriceUsage; a stream cut before its usage is billed the prompt
//     bound plus the tokens relayed, marked ledger.EstimateNoUsage; a call
//     written upstream that got no answer at all is billed its worst case,
//     marked ledger.EstimateUnsettled. The reservation settles to that cost
//     (to the reservation itself when the table cannot price what was
//     used) and the row goes, batched every 20 ms, to the one
//     ledger.Writer (group commit): durable well within a second.
//
// # Ledger rows
//
// Source "proxy", Tenant and User from the virtual key, Metric = the
// virtual key's name, Endpoint = the route ("/v1/chat/completions"),
// Model = the model served (after a route), LatencyMS = request start to
// the last byte, Time = request start. Only calls the upstream answered
// (or that were cut after being sent) are rows: refusals (401, 403, 429,
// 404) and upstream errors without usage are not calls and cost nothing;
// the free routes (models, count_tokens) write no row. A cache hit is a
// row with cost 0, CacheHit and Avoided (what the call would have cost).
//
// # What is not here
//
// Keys and policies are written by costctl keys / costctl policy through
// the same ledger.Control; the webhook belongs to package alerts (the
// proxy hands it Alerts through Notifier, off the request path).
package proxy
