// Package evaluator runs LLM-judge evaluations: records in (records), free
// checks and judge metrics from a config (config.go, checks.go), sampling
// (sample.go), the run with its budget, cache, retries and ledger rows
// (runner.go), a dry run that sends nothing (dryrun.go), results and
// metrics out (summary.go).
//
// Two seams keep the run independent of what it talks to:
//
//   - Store (store.go) is what a run needs from the ledger; *ledger.DB
//     implements it.
//   - Provider (provider.go) is one judge API seen one attempt at a time:
//     build the request from a neutral Prompt, send it once, read the
//     reply's text and usage by kind of token, classify a failure as
//     retry, fail or stop, and count and bound prompts for the budget.
//     The retry and backoff loop is written once above it (retry.go), as
//     are the budget, the cache, repair turns and verdict parsing
//     (judge.go). The OpenAI chat completions implementation is
//     judge_openai.go, the only file that imports go-openai.
//
// A judge's provider: key (default openai) names an entry of the providers
// registry, which builds its Provider and gives its default API key and
// endpoint variables. Adding an API is one file implementing Provider and
// one registry entry; the runner, the dry run and the config do not
// change. The cache key (CacheKey) is unchanged for openai judges, so
// existing caches keep hitting; any other provider adds itself to the key.
package evaluator
