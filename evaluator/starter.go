package evaluator

// StarterConfig is what `costctl eval init` writes.
const StarterConfig = `# costctl eval config. Run: costctl eval FILE.jsonl --config eval.yaml --dry-run
#
# Judges are models on an OpenAI-compatible endpoint. The model must be in the
# price table (costctl pricing) or in a --pricing override file.
judges:
  small:
    model: gpt-4o-mini
    # base_url: http://localhost:8000/v1   # default: --base-url, $OPENAI_BASE_URL, api.openai.com
    # api_key_env: OPENAI_API_KEY          # the variable holding the key (never written anywhere)
    # json_mode: true                      # response_format json_object; false for endpoints without it
    # max_tokens: 256                      # bound on each reply (and on the budget reservation);
    #                                      # sent as max_completion_tokens (default 4096) to reasoning
    #                                      # models (gpt-5*, o1*, o3*, o4*, or reasoning: true)
  large:
    model: gpt-4o

# Metrics run cheapest first: free checks, then judges by price. A metric with
# "when" runs only if its condition holds; otherwise it is skipped for free.
metrics:
  # Free checks. field: output (default), input, expected or context.
  - name: no_ssn
    type: regex
    pattern: '\b\d{3}-\d{2}-\d{4}\b'
    expect: absent            # present (default) or absent
  - name: polite
    type: keyword
    any: [please, thank]      # any / all / none; case-insensitive unless case_sensitive: true
  - name: short
    type: length
    max_tokens: 200           # or min_tokens, max_chars, min_chars

  # LLM judges. The prompt (rubric) is the system message, verbatim; the record
  # goes in the user message (see costctl eval --help), and the judge answers
  # {"score": 0..1, "reason": "..."}; 1 is best.
  - name: helpful
    type: judge
    judge: small
    threshold: 0.5            # pass when score >= threshold
    prompt: |
      You grade a support assistant's answer. Score 1 when it fully and
      correctly answers the user's question, 0.5 when partly, 0 when not.
  - name: faithful
    type: judge
    judge: large
    when: helpful.pass        # <metric>.pass | <metric>.fail | <metric>.score >= N; a list = all
    prompt: |
      Score 1 when every claim in the output is supported by the context,
      0 when any claim contradicts it or is made up.
`
