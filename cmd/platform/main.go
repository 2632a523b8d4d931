// Command platform is Platform's one binary: the worker, and the tools a platform team and support
// engineers use around it (publish, history, redrive). docs/contracts.md, "Command line" is its
// contract.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input, always with a one-line
// reason on standard error.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/channels"
)

// version is set at build time (make build): -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error
}

var commands = []command{
	{"worker", "[--role all|api,events,notifications,runs] [--drain]", "run the worker, or some of its roles; --drain exits 0 once every work queue of its roles is empty and nothing is in flight", runWorker},
	{"publish", "[FILE|-]", "enqueue events (a JSON object, a JSON array or JSON lines); prints each event key", runPublish},
	{"history", "--entity-type N (--entity-guid G | --entity-id N | --business-unit N) [--limit N] [--after T] [--json]", "an entity's timeline, newest first", runHistory},
	{"notify", "FILE|-", "create a direct notification job; prints its key", runNotify},
	{"cancel", "CANCELLATION_KEY [--business-unit N]", "cancel the not yet generated notifications that carry this cancellation key (in one business unit, or every one)", runCancel},
	{"trace", "KEY [--json]", "why did this (not) send: an event, job or message key's chain", runTrace},
	{"seed", "FILE...", "apply the settings schema and run idempotent seed scripts; running workers are told (settings changed)", runSeed},
	{"settings", "changed", "tell every running worker that the settings database changed: cached options and subscribers are dropped within a second (else within PLATFORM_SETTINGS_CACHE_TTL)", runSettings},
	{"outbox", "append [FILE|-] | confirm KEY | discard KEY", "guaranteed events: reserve an event before its mutation, then confirm or discard it", runOutbox},
	{"reconcile", "[--provider NAME] [--since T]", "settle stale outbox intents and run scan-repair (re-publish what may have been missed)", runReconcile},
	{"webhooks", "add --url URL --business-unit N --event-types 11,12 [--secret S] | list [--json] | disable ID | enable ID | rotate-secret ID [--expire-old-after 24h] | deliveries ID [--failed] [--limit N] [--json] | replay ID --since T [--until T] [--after CURSOR] [--max N] | recipient-secret --url URL", "integrators' signed webhook subscriptions: their secrets, delivery log and replays; a webhook-channel recipient's secret", runWebhooks},
	{"automations", automationsUsage, "automation rules: add and change them (checked when saved), turn them on, off or to shadow mode, test one on an event, ask why one did (not) fire, fire one again", runAutomations},
	{"runs", "list [--agent A] [--state S] [--business-unit N] [--limit N] [--json] | show ID [--json] | cancel ID | replay ID", "agent runs: who started each, attempts, lease, timings, result or error; cancel one, or start its next generation", runRuns},
	{"keys", "create --role ROLE [--business-units 42,43|*] [--expires 90d] [--name N] | list [--json] | revoke ID", "API keys for services and tools calling the HTTP API (shown once; only a hash is kept)", runKeys},
	{"redrive", "QUEUE [--message ID]", "move a queue's poison messages back to it, bodies unchanged (or only the one with that id)", runRedrive},
	{"messages", messagesUsage, "support, by hand: record an Unknown message Sent (the provider has it; nothing is sent), or send an Unknown or Failed one once more", runMessages},
	{"jobs", jobsUsage, "support, by hand: cancel a job not yet released to the generator (Created or Scheduled): Skipped, reason cancelled-by-support", runJobs},
	{"version", "", "print the version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdin, stdout)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case isUsage(err):
			fmt.Fprintf(stderr, "platform %s: %s\n", c.name, oneLine(err))
			return 2
		default:
			fmt.Fprintf(stderr, "platform %s: %s\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "platform: unknown command %q (run 'platform help')\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: platform COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes -h. Configuration comes from PLATFORM_* variables; a flag of the same")
	fmt.Fprintln(w, "meaning overrides each (see README).")
}

// usageError is bad usage or bad input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// oneLine keeps the reason on one line, whatever the error wrapped, and printable (clean).
func oneLine(err error) string {
	return clean(strings.Join(strings.Fields(err.Error()), " "))
}

// clean makes data the CLI did not write itself (keys, addresses, reasons, summaries, URLs:
// anything read from storage or echoed from input) safe to print on a terminal: control
// characters (ESC, BEL, CR, LF, TAB…), Unicode line separators and bidirectional overrides,
// and bytes that are not UTF-8 are printed escaped, as Go writes them in a quoted string
// (\x1b, \r, \u202e, \xff), so no value can move the cursor, recolour or rewrite the
// screen, or break a table's lines. Printable text, backslashes included, is left as it is, so
// a printed key can be pasted back. Every human-readable output goes through it; --json
// output is escaped by encoding/json already.
func clean(s string) string {
	if !strings.ContainsFunc(s, unprintable) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unprintable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unprintable: what a terminal would act on rather than show.
func unprintable(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
		return true // bidirectional controls: they reorder what follows
	}
	return false
}

// config is docs/contracts.md, "Configuration": environment variables, each overridden by a flag
// of the same meaning.
type config struct {
	connectionString string
	keyless          storage.Keyless
	namespace        string
	settingsDSN      string
	httpAddr         string
	logLevel         string
	logFormat        string
	roles            string               // the worker command's --role; empty: every role
	tracer           trace.TracerProvider // startTracing's: the worker, publish and notify commands; nil: off

	acct *storage.Account // account() resolves it once
}

func (c *config) register(fs *flag.FlagSet, withHTTP bool) {
	fs.StringVar(&c.connectionString, "connection-string", os.Getenv("PLATFORM_STORAGE_CONNECTION_STRING"), "storage connection string (PLATFORM_STORAGE_CONNECTION_STRING; default: Azurite on 127.0.0.1)")
	fs.StringVar(&c.keyless.AccountName, "storage-account", os.Getenv("PLATFORM_STORAGE_ACCOUNT"), "storage account name, reached keyless with Microsoft Entra ID tokens (PLATFORM_STORAGE_ACCOUNT)")
	fs.StringVar((*string)(&c.keyless.Credential), "storage-credential", envOr("PLATFORM_STORAGE_CREDENTIAL", string(storage.CredentialDefault)), "where keyless storage tokens come from: default or managed-identity (PLATFORM_STORAGE_CREDENTIAL)")
	c.keyless.BlobEndpoint = os.Getenv("PLATFORM_STORAGE_BLOB_ENDPOINT")
	c.keyless.QueueEndpoint = os.Getenv("PLATFORM_STORAGE_QUEUE_ENDPOINT")
	c.keyless.TableEndpoint = os.Getenv("PLATFORM_STORAGE_TABLE_ENDPOINT")
	c.keyless.ClientID = os.Getenv("AZURE_CLIENT_ID")
	fs.StringVar(&c.namespace, "namespace", os.Getenv("PLATFORM_NAMESPACE"), "prefix of every queue, table and container (PLATFORM_NAMESPACE)")
	fs.StringVar(&c.settingsDSN, "settings-dsn", envOr("PLATFORM_SETTINGS_DSN", settings.DefaultDSN), "notification settings: a SQLite path, sqlite:PATH, file:PATH?QUERY, or postgres://… (PLATFORM_SETTINGS_DSN)")
	fs.StringVar(&c.logLevel, "log-level", envOr("PLATFORM_LOG_LEVEL", "info"), "debug, info, warn or error (PLATFORM_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", envOr("PLATFORM_LOG_FORMAT", defaultLogFormat()), "text or json (PLATFORM_LOG_FORMAT; default json in containers)")
	if withHTTP {
		fs.StringVar(&c.httpAddr, "http-addr", envOr("PLATFORM_HTTP_ADDR", "127.0.0.1:8080"), "listen address of /healthz, /readyz and /v1 (PLATFORM_HTTP_ADDR)")
	}
}

// account is the storage account: keyless (an account name or endpoints, and a Microsoft Entra
// ID credential) or by connection string (Azurite's when neither is given). Both is bad usage.
func (c *config) account() (storage.Account, error) {
	if c.acct != nil {
		return *c.acct, nil
	}
	switch c.keyless.Credential {
	case "", storage.CredentialDefault, storage.CredentialManagedIdentity:
	default:
		return storage.Account{}, usagef("PLATFORM_STORAGE_CREDENTIAL %q: want %s or %s", c.keyless.Credential, storage.CredentialDefault, storage.CredentialManagedIdentity)
	}
	acct := storage.Account{ConnectionString: c.connectionString}
	if c.keyless.Configured() {
		if c.connectionString != "" {
			return storage.Account{}, usagef("PLATFORM_STORAGE_CONNECTION_STRING and PLATFORM_STORAGE_ACCOUNT or PLATFORM_STORAGE_*_ENDPOINT are both set: give one (a connection string, or keyless endpoints)")
		}
		var err error
		if acct, err = c.keyless.Account(); err != nil {
			return storage.Account{}, usageError{err}
		}
	} else if c.keyless.Credential == storage.CredentialManagedIdentity {
		return storage.Account{}, usagef("PLATFORM_STORAGE_CREDENTIAL %q needs PLATFORM_STORAGE_ACCOUNT or PLATFORM_STORAGE_*_ENDPOINT (a connection string carries its own key)", c.keyless.Credential)
	}
	c.acct = &acct
	return acct, nil
}

// worker builds a worker from the configuration; the channels' settings come from
// PLATFORM_SMTP_*, PLATFORM_WEBHOOK_SECRET and PLATFORM_WEBHOOK_ALLOWLIST, the HTTP agents
// from PLATFORM_AGENTS and PLATFORM_AGENT_SECRET. A command that
// only writes (notify, webhooks) builds one without starting it; the HTTP address matters
// only to the worker command.
func (c *config) worker(log *logrus.Logger) (*worker.Worker, error) {
	ns, err := c.ns()
	if err != nil {
		return nil, err
	}
	acct, err := c.account()
	if err != nil {
		return nil, err
	}
	roles, err := worker.ParseRoles(cmp.Or(c.roles, string(worker.RoleAll)))
	if err != nil {
		return nil, usageError{err}
	}
	wc := worker.Config{Account: acct, Namespace: ns, Roles: roles, Logger: log, SettingsDSN: c.settingsDSN, HTTPAddr: c.httpAddr,
		WebhookSecret: os.Getenv("PLATFORM_WEBHOOK_SECRET"), TracerProvider: c.tracer}
	if c.httpAddr != "" {
		// Only the worker serves the API: only it reads how callers authenticate.
		wc.Auth = auth.Config{Mode: auth.Mode(os.Getenv("PLATFORM_AUTH")), Issuer: os.Getenv("PLATFORM_AUTH_ISSUER"),
			Audience: os.Getenv("PLATFORM_AUTH_AUDIENCE"), RolesClaim: os.Getenv("PLATFORM_AUTH_ROLES_CLAIM"),
			UnitsClaim: os.Getenv("PLATFORM_AUTH_BU_CLAIM")}
		if s := os.Getenv("PLATFORM_JOBS_PER_SECOND"); s != "" {
			n, err := strconv.ParseFloat(s, 64)
			if err != nil || n <= 0 || math.IsInf(n, 0) {
				return nil, usagef("PLATFORM_JOBS_PER_SECOND %q: want a positive number", s)
			}
			wc.APILimits.JobsPerSecond = n
		}
	}
	if c.httpAddr != "" {
		wc.MetricsAddr = os.Getenv("PLATFORM_METRICS_ADDR") // the worker command only
	}
	if list := os.Getenv("PLATFORM_WEBHOOK_ALLOWLIST"); list != "" {
		wc.WebhookAllowlist = strings.Split(list, ",")
	}
	if addr := os.Getenv("PLATFORM_SMTP_ADDR"); addr != "" {
		wc.SMTP = &channels.SMTPConfig{Addr: addr, From: envOr("PLATFORM_SMTP_FROM", "platform@localhost"),
			Username: os.Getenv("PLATFORM_SMTP_USERNAME"), Password: os.Getenv("PLATFORM_SMTP_PASSWORD")}
	}
	if wc.Outbox.StaleAfter, err = durationEnv("PLATFORM_OUTBOX_STALE_AFTER", "5m"); err != nil {
		return nil, err
	}
	if wc.Webhooks.DisableAfter, err = durationEnv("PLATFORM_WEBHOOK_DISABLE_AFTER", "5d"); err != nil {
		return nil, err
	}
	if wc.Agents, err = agentsFromEnv(roles.Has(worker.RoleRuns)); err != nil {
		return nil, err
	}
	if wc.SettingsCacheTTL, err = durationEnv("PLATFORM_SETTINGS_CACHE_TTL", "5s"); err != nil {
		return nil, err
	} else if wc.SettingsCacheTTL == 0 && os.Getenv("PLATFORM_SETTINGS_CACHE_TTL") != "" {
		wc.SettingsCacheTTL = -1 // "0": no cache
	}
	if wc.MaxPayloadBytes, err = positiveEnv("PLATFORM_MAX_PAYLOAD_BYTES"); err != nil {
		return nil, err
	}
	if wc.MaxRelated, err = positiveEnv("PLATFORM_MAX_RELATED"); err != nil {
		return nil, err
	}
	if wc.QueueShards, err = queueShardsEnv(); err != nil {
		return nil, err
	}
	if log == nil {
		log = logrus.New()
		log.SetOutput(io.Discard)
		wc.Logger = log
	}
	if chaos != nil {
		if err := chaos(&wc); err != nil {
			return nil, usageError{err}
		}
	}
	w, err := worker.New(wc)
	if errors.Is(err, platform.ErrInvalidInput) {
		return nil, usageError{err} // a configuration that cannot work: exit 2, with its reason
	}
	return w, err
}

// chaos, set only in the chaos build (go build -tags chaos), adds storage fault injection and
// shorter leases to the worker's configuration from PLATFORM_CHAOS_* variables.
var chaos func(*worker.Config) error

func (c *config) ns() (platform.Namespace, error) {
	ns := platform.Namespace(c.namespace)
	if err := ns.Validate(); err != nil {
		return "", usageError{err}
	}
	return ns, nil
}

func (c *config) logger(w io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(w)
	level, err := logrus.ParseLevel(c.logLevel)
	if err != nil {
		return nil, usagef("log level %q: want debug, info, warn or error", c.logLevel)
	}
	log.SetLevel(level)
	switch c.logFormat {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		return nil, usagef("log format %q: want text or json", c.logFormat)
	}
	return log, nil
}

// defaultLogFormat is json inside a container (Azure Container Apps set CONTAINER_APP_NAME),
// text on a developer's terminal.
func defaultLogFormat() string {
	if os.Getenv("CONTAINER_APP_NAME") != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return "json"
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		return "json"
	}
	return "text"
}

// positiveEnv reads an integer limit from variable name: 0 when unset (the default applies),
// bad usage when it is not a positive integer.
func positiveEnv(name string) (int, error) {
	s := os.Getenv(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, usagef("%s %q: want a positive integer", name, s)
	}
	return n, nil
}

// queueShardsEnv reads PLATFORM_QUEUE_SHARDS, how many shards each work queue has: 1 when
// unset, bad usage when it is not an integer from 1 to platform.MaxQueueShards.
func queueShardsEnv() (int, error) {
	s := os.Getenv("PLATFORM_QUEUE_SHARDS")
	if s == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || platform.CheckQueueShards(n) != nil {
		return 0, usagef("PLATFORM_QUEUE_SHARDS %q: want an integer from 1 to %d", s, platform.MaxQueueShards)
	}
	return n, nil
}

// durationEnv reads a duration from variable name: days ("5d") or a Go duration ("5m"); 0 when
// unset (the default applies), bad usage when it is not a positive duration.
func durationEnv(name, example string) (time.Duration, error) {
	s := os.Getenv(name)
	if s == "" {
		return 0, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, usagef("%s %q: want a duration such as %s", name, s, example)
	}
	return d, nil
}

// parseDuration reads "90d" (days) or a Go duration ("12h"); "" is none (0).
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 36500 {
			return 0, fmt.Errorf("%q: want a number of days (90d) or a duration (12h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a number of days (90d) or a duration (12h)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration", s)
	}
	return d, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parseFlags parses args into fs, turning a bad flag into a usage error with one line.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
		return usageError{err}
	}
	return nil
}

func newFlagSet(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: platform %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

func runVersion(_ context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("version", "")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "platform %s (%s)\n", version, runtime.Version())
	return nil
}

// printJSON writes v as indented JSON. encoding/json escapes C0 controls, U+2028 and U+2029
// but passes DEL, C1 controls (U+009B is a CSI on some terminals) and bidirectional controls
// through as they are: those become \uXXXX escapes too, which is still the same JSON.
func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	out := b.String()
	if strings.ContainsFunc(out, unprintableInJSON) {
		var e strings.Builder
		for _, r := range out {
			if unprintableInJSON(r) {
				fmt.Fprintf(&e, `\u%04x`, r)
				continue
			}
			e.WriteRune(r)
		}
		out = e.String()
	}
	_, err := io.WriteString(w, out)
	return err
}

// unprintableInJSON is unprintable but for the newlines JSON's indentation writes itself (any
// in the data are escaped already).
func unprintableInJSON(r rune) bool { return r != '\n' && unprintable(r) }
