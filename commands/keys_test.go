package commands

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
)

// controlFactory is a factory on tio whose ledger is db, clock now and
// $USER user.
func controlFactory(tio *testIO, db string, now time.Time, user string) *Factory {
	env := map[string]string{"COSTCTL_DB": db, "TZ": "UTC", "USER": user}
	return &Factory{IO: tio.io, Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return now }}
}

// runControl runs args through the command tree and returns stdout,
// stderr and the exit code.
func runControl(t *testing.T, db string, now time.Time, args ...string) (string, string, int) {
	t.Helper()
	tio := newTestIO("")
	code := Run(context.Background(), controlFactory(tio, db, now, "alice"), args)
	return tio.out.String(), tio.errOut.String(), code
}

// seqReader yields 0, 1, 2, … as random bytes: a known key.
type seqReader struct{ n byte }

func (r *seqReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// keys create with a known random source: the key alone on stdout, a
// note on stderr, its hash (only) in the ledger.
func TestKeysCreateExact(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	rnd := &seqReader{}
	for _, tc := range []struct {
		args       []string
		out, errOu string
	}{
		{[]string{"create", "--tenant", "acme", "--user", "bob"},
			"ck-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
			"created virtual key acme-1 (tenant acme, user bob) in " + db + "; this is the only time the key is shown: store it now\n"},
		{[]string{"create", "--tenant", "acme", "--format", "json"},
			`{
  "version": 1,
  "name": "acme-2",
  "tenant": "acme",
  "user": "",
  "key": "ck-ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
  "created": "2026-11-20T14:30:20Z"
}
`, ""},
	} {
		tio := newTestIO("")
		f := controlFactory(tio, db, testNow, "alice")
		cmd := newKeysCmd(f, func(o *KeysOptions) error {
			o.Rand = rnd
			return runKeys(context.Background(), o)
		})
		cmd.SetArgs(tc.args)
		cmd.SetOut(tio.io.Out)
		cmd.SetErr(tio.io.ErrOut)
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		if tio.out.String() != tc.out || tio.errOut.String() != tc.errOu {
			t.Fatalf("keys %v:\nstdout %q\nstderr %q\nwant %q\n%q", tc.args, tio.out.String(), tio.errOut.String(), tc.out, tc.errOu)
		}
	}
	l, err := ledger.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	k, ok, err := l.KeyByHash(context.Background(), ledger.HashKey("ck-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"))
	if !ok || err != nil || k.Name != "acme-1" || k.User != "bob" || !k.CreatedAt.Equal(testNow) {
		t.Fatalf("stored key %+v %v %v", k, ok, err)
	}
}

// keys create, list and revoke through the command tree: exact output,
// exit codes, and usage errors on one line.
func TestKeysCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	keyRE := regexp.MustCompile(`^ck-[A-Za-z0-9_-]{43}\n$`)

	// No ledger yet: nothing to list, and no ledger is created.
	if out, errOut, code := runControl(t, db, testNow, "keys", "list"); out != "" || errOut != "no virtual keys yet: costctl keys create --tenant T makes one\n" || code != 0 {
		t.Fatalf("empty list: %q %q %d", out, errOut, code)
	}
	if out, _, code := runControl(t, db, testNow, "keys", "list", "--format", "json"); out != "{\n  \"version\": 1,\n  \"keys\": []\n}\n" || code != 0 {
		t.Fatalf("empty json list: %q %d", out, code)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("keys list created a ledger")
	}

	var secrets []string
	for i, args := range [][]string{
		{"keys", "create", "--tenant", "acme", "--user", "bob"},
		{"keys", "create", "--tenant", "acme"},
		{"keys", "create", "--tenant", "globex", "--name", "globex-ci"},
	} {
		out, _, code := runControl(t, db, testNow.Add(time.Duration(i)*time.Minute), args...)
		if code != 0 || !keyRE.MatchString(out) {
			t.Fatalf("%v: %q %d", args, out, code)
		}
		secrets = append(secrets, strings.TrimSpace(out))
	}
	if secrets[0] == secrets[1] {
		t.Fatal("two keys alike")
	}
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger mode: %v %v", st.Mode(), err)
	}

	revokeAt := testNow.Add(time.Hour)
	for _, tc := range []struct {
		args        []string
		out, errOut string
		code        int
	}{
		{[]string{"keys", "revoke", "acme-1"}, "revoked virtual key acme-1 at 2026-11-20T15:30:20Z\n", "", 0},
		{[]string{"keys", "revoke", "acme-1"}, "virtual key acme-1 was already revoked at 2026-11-20T15:30:20Z; nothing changed\n", "", 0},
		{[]string{"keys", "revoke", "acme-9"}, "", `costctl: no virtual key named "acme-9" in ` + db + ": costctl keys list shows the names\n", 1},
		{[]string{"keys", "list"}, `NAME       TENANT  USER  CREATED               REVOKED
-------------------------------------------------------------------
acme-1     acme    bob   2026-11-20T14:30:20Z  2026-11-20T15:30:20Z
acme-2     acme    -     2026-11-20T14:31:20Z  -
globex-ci  globex  -     2026-11-20T14:32:20Z  -
`, "", 0},
		{[]string{"keys", "list", "--format", "json"}, `{
  "version": 1,
  "keys": [
    {
      "name": "acme-1",
      "tenant": "acme",
      "user": "bob",
      "created": "2026-11-20T14:30:20Z",
      "revoked": "2026-11-20T15:30:20Z"
    },
    {
      "name": "acme-2",
      "tenant": "acme",
      "user": "",
      "created": "2026-11-20T14:31:20Z"
    },
    {
      "name": "globex-ci",
      "tenant": "globex",
      "user": "",
      "created": "2026-11-20T14:32:20Z"
    }
  ]
}
`, "", 0},
		{[]string{"keys", "create", "--tenant", "acme", "--name", "acme-1"}, "", `costctl: a virtual key named "acme-1" already exists in ` + db + " (names are never reused, revoked keys' too): choose another --name\n", 1},
		{[]string{"keys", "create"}, "", "costctl: --tenant is required: the tenant whose budget and policy apply\n", 2},
		{[]string{"keys", "create", "--tenant", "acme", "--name", "has space"}, "", `costctl: invalid --name "has space": a name is 1-128 letters, digits and . _ @ : - (starting with a letter or digit)` + "\n", 2},
		{[]string{"keys", "revoke", secrets[1]}, "", `costctl: invalid NAME "` + secrets[1] + `": that looks like a key, not a key's name (costctl keys list shows the names)` + "\n", 2},
		{[]string{"keys", "list", "--format", "csv"}, "", "costctl: invalid --format \"csv\" (expected table, json)\n", 2},
		{[]string{"keys", "revoke"}, "", "costctl: accepts 1 arg(s), received 0\nRun 'costctl keys revoke --help' for usage.\n", 2},
	} {
		out, errOut, code := runControl(t, db, revokeAt, tc.args...)
		if out != tc.out || errOut != tc.errOut || code != tc.code {
			t.Errorf("%v:\nstdout %q\nstderr %q\nexit %d\nwant\n%q\n%q\n%d", tc.args, out, errOut, code, tc.out, tc.errOut, tc.code)
		}
	}
	// The next default name skips every name used, revoked ones too.
	out, errOut, _ := runControl(t, db, testNow, "keys", "create", "--tenant", "acme")
	if !keyRE.MatchString(out) || !strings.HasPrefix(errOut, "created virtual key acme-3 ") {
		t.Fatalf("third acme key: %q %q", out, errOut)
	}
	secrets = append(secrets, strings.TrimSpace(out))
	assertNoSecrets(t, filepath.Dir(db), secrets)
}

// assertNoSecrets fails when any file under dir holds one of the keys.
func assertNoSecrets(t *testing.T, dir string, secrets []string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(strings.TrimPrefix(s, keyPrefix))) {
				t.Errorf("%s holds a virtual key", p)
			}
		}
		return nil
	})
}

// The built binary: a key is printed once and is in no file; list and
// revoke by name.
func TestKeysE2E(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "ledger.db")
	r := runCostctl(t, dir, "", nil, "--db", db, "keys", "create", "--tenant", "acme")
	if r.Code != 0 || !regexp.MustCompile(`^ck-[A-Za-z0-9_-]{43}\n$`).MatchString(r.Stdout) ||
		r.Stderr != "created virtual key acme-1 (tenant acme) in "+db+"; this is the only time the key is shown: store it now\n" {
		t.Fatalf("create: %+v", r)
	}
	secret := strings.TrimSpace(r.Stdout)
	l := runCostctl(t, dir, "", nil, "--db", db, "keys", "list")
	if l.Code != 0 || strings.Contains(l.Stdout, secret) || !strings.Contains(l.Stdout, "acme-1  acme    -     ") {
		t.Fatalf("list: %+v", l)
	}
	if r := runCostctl(t, dir, "", nil, "--db", db, "keys", "revoke", "acme-1"); r.Code != 0 || !strings.HasPrefix(r.Stdout, "revoked virtual key acme-1 at ") {
		t.Fatalf("revoke: %+v", r)
	}
	if r := runCostctl(t, dir, "", nil, "--db", db, "keys", "revoke", "nope"); r.Code != 1 || r.Stdout != "" {
		t.Fatalf("revoke unknown: %+v", r)
	}
	assertNoSecrets(t, dir, []string{secret})
}
