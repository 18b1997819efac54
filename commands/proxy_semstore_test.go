package commands

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestProxySemanticStoreFlag: --semantic-store fills ProxyOptions; an
// unknown store, or redis without --redis, is a usage error.
func TestProxySemanticStoreFlag(t *testing.T) {
	var got *ProxyOptions
	run := func(args ...string) (err error) {
		got, err = parseProxyFlags(args...)
		return err
	}
	if err := run(); err != nil || got.SemanticStore != "" {
		t.Fatalf("default: %v %+v", err, got)
	}
	for _, ok := range [][]string{{"--semantic-store", "memory"}, {"--semantic-store", "ledger"},
		{"--semantic-store", "redis", "--redis", "redis://127.0.0.1:6379/0"}, {"--semantic-store", "ledger", "--redis", "redis://127.0.0.1:6379/0"}} {
		if err := run(ok...); err != nil || got.SemanticStore != ok[1] {
			t.Fatalf("%v: %v %+v", ok, err, got)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--semantic-store", "disk"}, `--semantic-store "disk": want memory, ledger or redis`},
		{[]string{"--semantic-store", "redis"}, "--semantic-store redis needs --redis URL"},
	} {
		var errb bytes.Buffer
		f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: &errb}, Getenv: func(string) string { return "" }, Now: time.Now}
		if code := Run(context.Background(), f, append([]string{"proxy"}, c.args...)); code != ExitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d (%s), want a usage error saying %q", c.args, code, errb.String(), c.want)
		}
	}
}
