package commands

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestProxySemanticFlags: the semantic cache's flags fill ProxyOptions;
// bad values are usage errors.
func TestProxySemanticFlags(t *testing.T) {
	var got *ProxyOptions
	run := func(args ...string) (err error) {
		got, err = parseProxyFlags(args...)
		return err
	}
	if err := run(); err != nil || got.EmbedUpstream != "" || got.EmbedModel != "text-embedding-3-small" || got.SemanticMaxEntries != 10000 || got.SemanticMaxTotal != 100000 ||
		got.verifyBP != 0 || got.VerifyWindow != 7*24*time.Hour || got.VerifyMin != 20 {
		t.Fatalf("defaults: %v %+v", err, got)
	}
	if err := run("--embed-upstream", "http://e", "--embed-model", "text-embedding-3-large", "--semantic-max-entries", "50", "--semantic-max-total", "500",
		"--verify-sample", "2%", "--verify-window", "24h", "--verify-min", "5"); err != nil ||
		got.EmbedUpstream != "http://e" || got.EmbedModel != "text-embedding-3-large" || got.SemanticMaxEntries != 50 || got.SemanticMaxTotal != 500 ||
		got.verifyBP != 200 || got.VerifyWindow != 24*time.Hour || got.VerifyMin != 5 {
		t.Fatalf("flags: %v %+v", err, got)
	}
	if err := run("--verify-sample", "0.5"); err != nil || got.verifyBP != 50 {
		t.Fatalf("0.5: %v %+v", err, got)
	}
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }, Now: time.Now}
	for _, bad := range [][]string{{"--verify-sample", "101%"}, {"--verify-sample", "0.001%"}, {"--verify-sample", "x"},
		{"--semantic-max-entries", "0"}, {"--semantic-max-total", "0"}, {"--verify-window", "0s"}, {"--verify-min", "0"}, {"--embed-model", " "}} {
		var errb bytes.Buffer
		f.IO.ErrOut = &errb
		if code := Run(context.Background(), f, append([]string{"proxy"}, bad...)); code != ExitUsage {
			t.Errorf("%v: exit %d (%s), want a usage error", bad, code, errb.String())
		}
	}
}
