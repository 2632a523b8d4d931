// Package storage is the one place that knows how Platform reaches its Azure Storage account:
// the connection string or the endpoints and Microsoft Entra ID credential (keyless.go), the azcore pipeline every client shares (with the request counter and
// fault injector that tests and benchmarks plug in), and the translation of service errors into
// platform.ErrExists / ErrConflict / ErrNotFound. queues/, tables/ and blobs/ build their SDK
// clients from it; nothing else imports it except tests and the command that wires them.
//
// It is internal, not a top-level package, because it is an implementation detail the three
// storage packages share, not something a service using Platform should see.
package storage

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
)

// DevelopmentConnectionString is Azurite's well-known development account on 127.0.0.1.
// Its key is public, documented by Microsoft, and not a secret.
const DevelopmentConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" +
	"QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;" +
	"TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"

// Service names one of the account's three services.
type Service string

const (
	Blob  Service = "blob"
	Queue Service = "queue"
	Table Service = "table"
)

// Account is how to reach the storage account, and what to put in every client's pipeline.
type Account struct {
	// ConnectionString of the account. Default: DevelopmentConnectionString (Azurite).
	// "UseDevelopmentStorage=true" means the same. Ignored when Credential is set.
	ConnectionString string
	// Credential, when set, authenticates every request with Microsoft Entra ID tokens at
	// Endpoints instead of the connection string's key (Keyless.Account builds both).
	Credential azcore.TokenCredential
	// Endpoints of the three services; used with Credential only.
	Endpoints Endpoints
	// CredentialKind names Credential for logs.
	CredentialKind Credential
	// Counter, when set, counts every request the clients send (tests, benchmarks).
	Counter *Counter
	// Observe, when set, is told of every request the clients send, each attempt as Counter
	// counts it: the service, the kind (Counter's kinds), the answer's HTTP status (0 when none
	// came) and the transport's error. It runs on the request's path: it must be quick and must
	// not block. The worker records it as metrics. Default: nil, off.
	Observe func(service Service, kind string, status int, err error)
	// Policies are added to every client's pipeline after the retry policy, so they see each
	// attempt (fault injection).
	Policies []policy.Policy
	// Retry overrides azcore's retry defaults (3 retries, exponential from 800 ms).
	Retry *policy.RetryOptions
}

// ResolvedConnectionString is the connection string with the defaults applied.
func (a Account) ResolvedConnectionString() string {
	cs := strings.TrimSpace(a.ConnectionString)
	if cs == "" || strings.EqualFold(strings.TrimSuffix(cs, ";"), "UseDevelopmentStorage=true") {
		return DevelopmentConnectionString
	}
	return cs
}

// Keyless reports whether the account is reached with tokens (Credential) rather than a
// connection string.
func (a Account) Keyless() bool { return a.Credential != nil }

// Endpoint is the keyless account's endpoint of service s.
func (a Account) Endpoint(s Service) string { return a.Endpoints.of(s) }

// Describe says which account this is for a log line: endpoints and account name, never a key,
// a SAS or a token.
func (a Account) Describe() string {
	if a.Keyless() {
		return fmt.Sprintf("BlobEndpoint=%s;QueueEndpoint=%s;TableEndpoint=%s;Credential=%s",
			a.Endpoints.Blob, a.Endpoints.Queue, a.Endpoints.Table, a.CredentialKind)
	}
	return Redacted(a.ResolvedConnectionString())
}

// ClientOptions is the azcore pipeline configuration for a client of service s.
func (a Account) ClientOptions(s Service) azcore.ClientOptions {
	var o azcore.ClientOptions
	if p := a.requestPolicy(s); p != nil {
		o.PerRetryPolicies = append(o.PerRetryPolicies, p)
	}
	o.PerRetryPolicies = append(o.PerRetryPolicies, a.Policies...)
	if s == Table {
		o.PerCallPolicies = append(o.PerCallPolicies, noEchoPolicy{}, entityBodyPolicy{}) // prefer.go, entitybody.go
	}
	if a.Retry != nil {
		o.Retry = *a.Retry
	}
	o.Telemetry.Disabled = true
	o.Transport = httpClient
	if s != Blob {
		o.Transport = syncClient // transport.go: small answers, read whole on the caller's goroutine
	}
	o.PerRetryPolicies = append(o.PerRetryPolicies, tracePolicy{service: s}) // trace.go: last, nearest the wire
	return o
}

// requestPolicy counts and observes each attempt (counter.go); nil when nobody asked.
func (a Account) requestPolicy(s Service) policy.Policy {
	if a.Counter == nil && a.Observe == nil {
		return nil
	}
	return &requestPolicy{service: s, counter: a.Counter, observe: a.Observe}
}

// syncClient sends the queue and table requests of every client (transport.go).
var syncClient = newSyncTransport(httpClient)

// httpClient is shared by every client. azcore's default keeps 10 idle connections per host;
// the consumer runs up to 64 requests at once against one host, and every connection above
// 10 would be closed after each use and dialled again.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          512,
	MaxIdleConnsPerHost:   256,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: time.Second,
	TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
}}

// Redacted describes the account for logs: endpoints and account name, never the key or a SAS.
func Redacted(connectionString string) string {
	var kept []string
	for _, part := range strings.Split(connectionString, ";") {
		k, _, _ := strings.Cut(part, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accountname", "blobendpoint", "queueendpoint", "tableendpoint", "defaultendpointsprotocol", "endpointsuffix", "usedevelopmentstorage":
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, ";")
}

// Error is a storage service error in the project's own terms: concise enough for a log line or
// a poison reason, and matching platform.ErrNotFound / ErrExists / ErrConflict with errors.Is.
type Error struct {
	Sentinel error // one of the platform sentinels, or nil
	Status   int
	Code     string // the service's error code, e.g. "QueueNotFound"
	Method   string
	Resource string // the request path, without the query (it may hold a SAS)
	cause    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("storage %s %s: %d %s", e.Method, e.Resource, e.Status, e.Code)
	if hint := accessHints[e.Code]; hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// accessHints say what to do about the refusals a deployment meets first: an operator reads
// them in the log line of a worker that cannot start.
var accessHints = map[string]string{
	"AuthorizationPermissionMismatch":    "the identity has no data role for this: assign it Storage Queue, Table and Blob Data Contributor on the account (README, Keyless storage access)",
	"AuthenticationFailed":               "the credential was refused: a token for another audience or tenant, an expired token, or a wrong key",
	"KeyBasedAuthenticationNotPermitted": "the account refuses shared keys: give PLATFORM_STORAGE_ACCOUNT and a managed identity instead of a connection string",
	"AuthorizationFailure":               "refused before any role was checked: the account's firewall or network rules, or a SAS without this permission",
}

func (e *Error) Unwrap() []error {
	if e.Sentinel != nil {
		return []error{e.Sentinel, e.cause}
	}
	return []error{e.cause}
}

// Translate turns an azcore.ResponseError into an *Error; other errors pass through unchanged.
func Translate(err error) error {
	var re *azcore.ResponseError
	if err == nil || !errors.As(err, &re) {
		return err
	}
	e := &Error{Status: re.StatusCode, Code: re.ErrorCode, cause: err}
	if r := re.RawResponse; r != nil && r.Request != nil {
		e.Method, e.Resource = r.Request.Method, r.Request.URL.Path
	}
	switch re.StatusCode {
	case http.StatusNotFound:
		e.Sentinel = platform.ErrNotFound
	case http.StatusConflict:
		e.Sentinel = platform.ErrExists
	case http.StatusPreconditionFailed:
		e.Sentinel = platform.ErrConflict
	}
	return e
}
