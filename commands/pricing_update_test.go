package commands

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// fullSource is a costctl-format price file that prices every built-in
// model (gpt-4o at $2.00 instead of $2.50, the rest unchanged) plus one
// new model — what a real update source looks like.
func fullSource(t *testing.T, scale pricing.Rate) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("as_of: \"2026-11-30\"\nmodels:\n")
	for _, m := range pricing.MustDefault().Models() {
		in, out := m.Input.Per1M(), m.Output.Per1M()
		if m.Name == "gpt-4o" {
			in = "2.00"
		}
		// Scaled prices stay under the $1,000 per 1M a price file may give.
		if limit := pricing.Rate(1_000_000_000); scale > 1 && m.Input*scale <= limit && m.Output*scale <= limit {
			in, out = (m.Input * scale).Per1M(), (m.Output * scale).Per1M()
		}
		fmt.Fprintf(&b, "  %s:\n    input_per_1m: \"%s\"\n    output_per_1m: \"%s\"\n", m.Name, in, out)
	}
	b.WriteString("  new-model:\n    provider: test\n    input_per_1m: \"1.00\"\n    output_per_1m: \"2.00\"\n")
	return b.String()
}

type pricingEnv struct {
	t    *testing.T
	home string
	srv  *httptest.Server
	hits atomic.Int64
	body atomic.Value // string served
}

func newPricingEnv(t *testing.T) *pricingEnv {
	e := &pricingEnv{t: t, home: t.TempDir()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if r.URL.Path == "/missing.json" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, e.body.Load().(string))
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *pricingEnv) run(args ...string) (code int, out, errOut string) {
	tio := newTestIO("")
	env := map[string]string{"HOME": e.home, "TZ": "UTC"}
	f := &Factory{IO: tio.io, Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return testNow }, HTTPClient: e.srv.Client()}
	code = Run(context.Background(), f, args)
	return code, tio.out.String(), tio.errOut.String()
}

func TestPricingUpdateFromURLAndReset(t *testing.T) {
	e := newPricingEnv(t)
	e.body.Store(fullSource(t, 1))
	url := e.srv.URL + "/prices.yaml"
	snap := filepath.Join(e.home, ".local", "share", "costctl", "prices.snapshot")

	// A dry run shows the change and writes nothing.
	code, out, errOut := e.run("pricing", "update", "--from", url, "--dry-run")
	n := len(pricing.MustDefault().Models())
	wantOut := fmt.Sprintf("current → %s: 1 added, 0 removed, 1 prices changed\n", url) +
		"MODEL   PRICE  OLD /1M  NEW /1M  CHANGE\n" +
		"---------------------------------------\n" +
		"gpt-4o  input    $2.50    $2.00  -20.0%\n" +
		"added: new-model\n"
	if code != 0 || out != wantOut || errOut != fmt.Sprintf("dry run: nothing written; %d models from %s, prices as of 2026-11-30\n", n+1, url) {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Fatalf("the dry run wrote a snapshot: %v", err)
	}
	// The update writes a snapshot every command then uses.
	if code, _, errOut = e.run("pricing", "update", "--from", url); code != 0 || !strings.HasPrefix(errOut, "wrote "+snap) {
		t.Fatalf("update: %d %s", code, errOut)
	}
	code, out, _ = e.run("pricing", "show", "gpt-4o", "--format", "json")
	if code != 0 || !strings.Contains(out, `"input_per_1m": "2.00"`) {
		t.Fatalf("show after update: %d\n%s", code, out)
	}
	code, out, _ = e.run("tokens", "--model", "new-model", "-")
	if code != 0 || !strings.Contains(out, "prices as of 2026-11-30 (overrides: snapshot of "+url+" taken 2026-11-20)") {
		t.Fatalf("tokens with the snapshot: %d\n%s", code, out)
	}
	// diff builtin snapshot agrees with what the update said.
	code, out, _ = e.run("pricing", "diff", "builtin", "snapshot", "--fail-on-change")
	if code != ExitGate || !strings.HasPrefix(out, "builtin → snapshot: 1 added, 0 removed, 1 prices changed\n") {
		t.Fatalf("diff: %d\n%s", code, out)
	}
	// A damaged snapshot is named and the built-in table used.
	b, _ := os.ReadFile(snap)
	b[len(b)-1] ^= 0xff
	os.WriteFile(snap, b, 0o644)
	code, out, errOut = e.run("pricing", "show", "gpt-4o", "--format", "json")
	if code != 0 || !strings.Contains(out, `"input_per_1m": "2.50"`) || !strings.Contains(errOut, "checksum mismatch: the snapshot is damaged; using the built-in prices") {
		t.Fatalf("damaged snapshot: %d\n%s\n%s", code, out, errOut)
	}
	// --reset returns to the built-in table.
	if code, _, errOut = e.run("pricing", "update", "--reset"); code != 0 || errOut != "removed "+snap+"; the built-in table is in use\n" {
		t.Fatalf("reset: %d %q", code, errOut)
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Fatal("reset left the snapshot")
	}
}

func TestPricingUpdateRefusesBadSources(t *testing.T) {
	e := newPricingEnv(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.yaml")
	os.WriteFile(small, []byte("models:\n  gpt-4o:\n    input_per_1m: \"2.00\"\n"), 0o644)
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`{"models": {"gpt-4o": {"input_per_1m": "2.00"`), 0o644)
	tenfold := filepath.Join(dir, "tenfold.yaml")
	os.WriteFile(tenfold, []byte(fullSource(t, 20)), 0o644) // most prices ×20: a unit mistake
	for _, tc := range []struct {
		from string
		code int
		want string
	}{
		{small, ExitUsage, "small.yaml looks wrong: it prices 1 models where the current table has"},
		{broken, ExitUsage, "broken.json: not valid YAML or JSON"},
		{tenfold, ExitUsage, "input and output prices it changes move by more than 10×"},
		{filepath.Join(dir, "nope.yaml"), ExitError, "--from " + filepath.Join(dir, "nope.yaml") + ": no such file"},
		{e.srv.URL + "/missing.json", ExitError, "HTTP 404; the current table stays in place"},
	} {
		code, out, errOut := e.run("pricing", "update", "--from", tc.from)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d\nstdout %q\nstderr %q", tc.from, code, out, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(e.home, ".local", "share", "costctl", "prices.snapshot")); !os.IsNotExist(err) {
		t.Fatal("a refused source left a snapshot")
	}
}

func TestPricingDiffJSON(t *testing.T) {
	e := newPricingEnv(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte("as_of: \"2026-11-30\"\nmodels:\n  gpt-4o-mini:\n    output_per_1m: \"0.90\"\n"), 0o644)
	code, out, _ := e.run("pricing", "diff", "builtin", p, "--format", "json")
	want := `"changed": [
    {
      "model": "gpt-4o-mini",
      "field": "output",
      "old_per_1m": "0.60",
      "new_per_1m": "0.90",
      "change_pct": 50
    }
  ]`
	if code != 0 || !strings.Contains(out, `"version": 1`) || !strings.Contains(out, `"added": []`) || !strings.Contains(out, want) {
		t.Fatalf("diff json: %d\n%s", code, out)
	}
	if code, _, errOut := e.run("pricing", "diff", "builtin", "snapshot"); code != ExitError || !strings.Contains(errOut, "no price snapshot at") {
		t.Fatalf("diff without a snapshot: %d %s", code, errOut)
	}
}

// A source with thousands of new models names the first few, not all of
// them on one line.
func TestNameListBounded(t *testing.T) {
	var names []string
	for i := 0; i < 25; i++ {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	got := nameList(names)
	want := "m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14, m15, m16, m17, m18, m19, … and 5 more (costctl pricing diff A B --format json lists every one)"
	if got != want {
		t.Fatalf("got %q", got)
	}
	if got := nameList(names[:3]); got != "m00, m01, m02" {
		t.Fatalf("got %q", got)
	}
}
