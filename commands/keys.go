package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/render"
)

// KeysOptions are the inputs of `costctl keys create|list|revoke`.
type KeysOptions struct {
	IO   *IOStreams
	Now  func() time.Time
	Rand io.Reader // the key's random bytes (crypto/rand)
	// Ledger opens the ledger to write (create, revoke); ReadLedger to
	// read (list), nil without error when there is no ledger yet.
	Ledger     func(context.Context) (*ledger.DB, error)
	ReadLedger func(context.Context) (*ledger.DB, error)

	Action string // create, list, revoke
	Tenant string
	User   string
	Name   string // create: "" = <tenant>-<n>; revoke: the key to revoke
	Format string
}

// keyPrefix starts every virtual key, so one is recognisable in a config
// file or a leak scanner.
const keyPrefix = "ck-"

// keyNameRE is what a key's name may be: it is typed on command lines and
// written in the ledger with each call.
var keyNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`) })

func newKeysCmd(f *Factory, runF func(*KeysOptions) error) *cobra.Command {
	opts := &KeysOptions{IO: f.IO, Now: f.Now, Rand: rand.Reader, Ledger: f.OpenLedger, ReadLedger: readControlLedger(f)}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke the virtual keys costctl proxy accepts",
		Long: `Virtual keys are what clients of costctl proxy send instead of a provider key
(Authorization: Bearer ck-… or x-api-key: ck-…). Each belongs to a tenant (and
optionally a user), whose policy (costctl policy) and budget apply to every
call made with it; the proxy swaps it for the real provider key.

A key is printed once, when it is created, on stdout alone (so
KEY=$(costctl keys create --tenant acme) works); the ledger keeps only its
SHA-256, so a lost key cannot be shown again: revoke it and create another.
Revoking takes effect in a running proxy within about a second. Names are
never reused, so the ledger's calls stay attributable to the key that made
them. Keys live in the --db ledger (created 0600).` + exitStatusSection,
		Example: `  costctl keys create --tenant acme --user bob
  costctl keys list --format json
  costctl keys revoke acme-1`,
		Args: cobra.NoArgs,
	}
	var createFormat, listFormat string
	wrap := func(action string) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			opts.Action = action
			opts.Format = map[string]string{"create": createFormat, "list": listFormat}[action]
			if action == "revoke" {
				opts.Name = args[0]
			}
			if err := validateKeys(opts); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runKeys(c.Context(), opts)
		}
	}
	create := &cobra.Command{
		Use:   "create --tenant T [--user U] [--name N]",
		Short: "Create a virtual key and print it (once)",
		Long: `Create a virtual key for a tenant and print it on stdout, once: ck- and 43
characters (32 random bytes, base64url). The name (default: the tenant, a dash
and the next free number: acme-1, acme-2, …) is how keys list and keys revoke
refer to it; the ledger stores the key's SHA-256, never the key.` + exitStatusSection,
		Example: `  costctl keys create --tenant acme
  KEY=$(costctl keys create --tenant acme --user bob --name acme-bob)`,
		Args: cobra.NoArgs,
		RunE: wrap("create"),
	}
	create.Flags().StringVar(&opts.Tenant, "tenant", "", "tenant the key spends for (required)")
	create.Flags().StringVar(&opts.User, "user", "", "user the key's calls are recorded for")
	create.Flags().StringVar(&opts.Name, "name", "", "the key's name (default <tenant>-<n>)")
	create.Flags().StringVar(&createFormat, "format", "text", "output: text (the key alone) or json")
	list := &cobra.Command{
		Use:   "list",
		Short: "List virtual keys (never the key or its hash)",
		Long: `List every virtual key in the ledger, revoked ones too: name, tenant, user,
when it was created and when it was revoked (- while active), in the order
they were created. Neither a key nor its hash is ever shown.` + exitStatusSection,
		Example: `  costctl keys list
  costctl keys list --format json`,
		Args: cobra.NoArgs,
		RunE: wrap("list"),
	}
	list.Flags().StringVar(&listFormat, "format", render.FormatTable, "output: table or json")
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a virtual key",
		Long: `Revoke the virtual key named NAME: a running costctl proxy refuses it (401)
within about a second. Revoking a key already revoked changes nothing and says
when it was; an unknown name is an error (exit 1).` + exitStatusSection,
		Example: `  costctl keys revoke acme-1
  costctl --db team.db keys revoke acme-bob`,
		Args: cobra.ExactArgs(1),
		RunE: wrap("revoke"),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// readControlLedger opens the ledger to read keys or policies: read-only
// (an older ledger reads as having none), and no ledger at all is none.
func readControlLedger(f *Factory) func(context.Context) (*ledger.DB, error) {
	return func(ctx context.Context) (*ledger.DB, error) {
		p, err := f.LedgerPath()
		if err != nil {
			return nil, err
		}
		if ledger.IsPostgresURL(p) {
			return f.OpenExistingLedger(ctx, false)
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return f.OpenExistingLedger(ctx, false)
	}
}

func validateKeys(opts *KeysOptions) error {
	switch opts.Action {
	case "create":
		if err := render.CheckFormat(opts.Format, "text", render.FormatJSON); err != nil {
			return usageError(err)
		}
		if err := checkTenant(opts.Tenant); err != nil {
			return err
		}
		if opts.User != "" && hasControl(opts.User) {
			return usageErrorf("invalid --user %q: control characters", opts.User)
		}
		if opts.Name != "" {
			if err := checkKeyName("--name", opts.Name); err != nil {
				return err
			}
		}
	case "list":
		if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
			return usageError(err)
		}
	case "revoke":
		if err := checkKeyName("NAME", opts.Name); err != nil {
			return err
		}
	}
	return nil
}

// checkTenant: --tenant is required and printable.
func checkTenant(t string) error {
	switch {
	case strings.TrimSpace(t) == "":
		return usageErrorf("--tenant is required: the tenant whose budget and policy apply")
	case t != strings.TrimSpace(t) || hasControl(t):
		return usageErrorf("invalid --tenant %q: no leading or trailing spaces or control characters", t)
	}
	return nil
}

func checkKeyName(what, n string) error {
	if strings.HasPrefix(n, keyPrefix) {
		return usageErrorf("invalid %s %q: that looks like a key, not a key's name (costctl keys list shows the names)", what, n)
	}
	if !keyNameRE().MatchString(n) {
		return usageErrorf("invalid %s %q: a name is 1-128 letters, digits and . _ @ : - (starting with a letter or digit)", what, n)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func runKeys(ctx context.Context, opts *KeysOptions) error {
	switch opts.Action {
	case "create":
		return keysCreate(ctx, opts)
	case "revoke":
		return keysRevoke(ctx, opts)
	default:
		return keysList(ctx, opts)
	}
}

// newSecret is a new virtual key: ck- and 32 random bytes, base64url.
func newSecret(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("cannot read random bytes for a key: %w", err)
	}
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// nextKeyName is <tenant>-<n>, n one more than any such name used so far.
func nextKeyName(tenant string, keys []ledger.VirtualKey) string {
	n := 0
	for _, k := range keys {
		if s, ok := strings.CutPrefix(k.Name, tenant+"-"); ok {
			if i, err := strconv.Atoi(s); err == nil && i > n && strconv.Itoa(i) == s {
				n = i
			}
		}
	}
	return fmt.Sprintf("%s-%d", tenant, n+1)
}

type keyJSON struct {
	Name    string `json:"name"`
	Tenant  string `json:"tenant"`
	User    string `json:"user"`
	Key     string `json:"key,omitempty"` // create only
	Created string `json:"created"`
	Revoked string `json:"revoked,omitempty"`
}

func keysCreate(ctx context.Context, opts *KeysOptions) error {
	secret, err := newSecret(opts.Rand)
	if err != nil {
		return err
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // every write went through a transaction whose Commit was checked; Close only releases connections
	k := ledger.VirtualKey{Name: opts.Name, Tenant: opts.Tenant, User: opts.User, Hash: ledger.HashKey(secret), CreatedAt: opts.Now().UTC().Truncate(time.Millisecond)}
	for try := 0; ; try++ {
		if opts.Name == "" {
			keys, err := db.ListKeys(ctx)
			if err != nil {
				return err
			}
			k.Name = nextKeyName(opts.Tenant, keys)
			if !keyNameRE().MatchString(k.Name) {
				return usageErrorf("tenant %q makes no valid key name: give one with --name", opts.Tenant)
			}
		}
		err = db.CreateKey(ctx, k)
		// Another process took the default name meanwhile: take the next.
		if errors.Is(err, ledger.ErrKeyExists) && opts.Name == "" && try < 5 {
			continue
		}
		break
	}
	if errors.Is(err, ledger.ErrKeyExists) {
		return fmt.Errorf("a virtual key named %q already exists in %s (names are never reused, revoked keys' too): choose another --name", k.Name, db.Name())
	}
	if err != nil {
		return err
	}
	if opts.Format == render.FormatJSON {
		return writeJSON(opts.IO.Out, struct {
			Version int `json:"version"`
			keyJSON
		}{1, keyJSON{Name: k.Name, Tenant: k.Tenant, User: k.User, Key: secret, Created: k.CreatedAt.Format(time.RFC3339)}})
	}
	if _, err := fmt.Fprintln(opts.IO.Out, secret); err != nil {
		return err
	}
	who := ""
	if k.User != "" {
		who = ", user " + k.User
	}
	fmt.Fprintf(opts.IO.ErrOut, "created virtual key %s (tenant %s%s) in %s; this is the only time the key is shown: store it now\n", k.Name, k.Tenant, who, db.Name())
	return nil
}

func keysRevoke(ctx context.Context, opts *KeysOptions) error {
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // every write went through a transaction whose Commit was checked; Close only releases connections
	at := opts.Now().UTC().Truncate(time.Millisecond)
	err = db.RevokeKey(ctx, opts.Name, at)
	switch {
	case errors.Is(err, ledger.ErrNoKey):
		return fmt.Errorf("no virtual key named %q in %s: costctl keys list shows the names", opts.Name, db.Name())
	case errors.Is(err, ledger.ErrKeyRevoked):
		keys, err := db.ListKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Name == opts.Name {
				at = k.RevokedAt
			}
		}
		_, err = fmt.Fprintf(opts.IO.Out, "virtual key %s was already revoked at %s; nothing changed\n", opts.Name, at.UTC().Format(time.RFC3339))
		return err
	case err != nil:
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "revoked virtual key %s at %s\n", opts.Name, at.Format(time.RFC3339))
	return err
}

func keysList(ctx context.Context, opts *KeysOptions) error {
	var keys []ledger.VirtualKey
	db, err := opts.ReadLedger(ctx)
	if err != nil {
		return err
	}
	if db != nil {
		defer db.Close() // only read from
		if keys, err = db.ListKeys(ctx); err != nil {
			return err
		}
	}
	rows := make([]keyJSON, len(keys))
	for i, k := range keys {
		rows[i] = keyJSON{Name: k.Name, Tenant: k.Tenant, User: k.User, Created: k.CreatedAt.UTC().Format(time.RFC3339)}
		if !k.RevokedAt.IsZero() {
			rows[i].Revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
	}
	if opts.Format == render.FormatJSON {
		return writeJSON(opts.IO.Out, struct {
			Version int       `json:"version"`
			Keys    []keyJSON `json:"keys"`
		}{1, rows})
	}
	if len(rows) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no virtual keys yet: costctl keys create --tenant T makes one")
		return nil
	}
	t := &render.Table{Headers: []string{"NAME", "TENANT", "USER", "CREATED", "REVOKED"}}
	for _, r := range rows {
		t.AddRow(r.Name, r.Tenant, dash(r.User), r.Created, dash(r.Revoked))
	}
	return t.WriteText(opts.IO.Out)
}

// dash is s, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
