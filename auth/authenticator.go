package auth

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/platform/platform"
)

// Mode is how requests prove who they are.
type Mode string

const (
	// ModeOff: a request without credentials is Anonymous (every role, every unit); one with
	// credentials is checked as usual. Only on a loopback listener (CheckListener).
	ModeOff Mode = "off"
	// ModeKeys: API keys only.
	ModeKeys Mode = "keys"
	// ModeOIDC: bearer tokens of Config.Issuer for Config.Audience, and API keys.
	ModeOIDC Mode = "oidc"
)

// Config configures authentication (PLATFORM_AUTH_*). Zero fields take the defaults their
// comments give.
type Config struct {
	// Mode: PLATFORM_AUTH. Default: ModeOIDC when Issuer is set, else ModeOff.
	Mode Mode
	// Issuer is the OIDC issuer URL, exactly as its tokens' iss claim says; its discovery
	// document is {Issuer}/.well-known/openid-configuration (PLATFORM_AUTH_ISSUER). For Entra
	// ID: https://login.microsoftonline.com/{tenant id}/v2.0. https, or http on loopback.
	Issuer string
	// Audience is what a token's aud claim must hold (PLATFORM_AUTH_AUDIENCE): for Entra ID the
	// application (client) id of the API's app registration, or its App ID URI.
	Audience string
	// RolesClaim names the claim holding roles (PLATFORM_AUTH_ROLES_CLAIM). Default "roles"
	// (Entra app roles).
	RolesClaim string
	// UnitsClaim names the claim holding business units: a list of ids, or "*"
	// (PLATFORM_AUTH_BU_CLAIM). Default "bu".
	UnitsClaim string
	// Leeway is the clock skew allowed on exp and nbf. Default 1 minute.
	Leeway time.Duration
	// KeysRefresh is the least time between two reads of the issuer's keys (a token naming a
	// key not yet read causes one). Default 10 s.
	KeysRefresh time.Duration
	// KeyCacheTTL is how long an API key's row is reused: a revoked key is refused everywhere
	// within it. Default DefaultKeyCacheTTL (5 s).
	KeyCacheTTL time.Duration
	// HTTPClient reads the issuer's discovery document and keys. Default: a client with a
	// 10 s timeout.
	HTTPClient *http.Client
}

// withDefaults checks c and fills in its defaults; a bad configuration is
// platform.ErrInvalidInput, naming the variable.
func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeOff
		if c.Issuer != "" {
			c.Mode = ModeOIDC
		}
	}
	c.RolesClaim = cmp.Or(c.RolesClaim, "roles")
	c.UnitsClaim = cmp.Or(c.UnitsClaim, "bu")
	c.Leeway = cmp.Or(c.Leeway, time.Minute)
	c.KeysRefresh = cmp.Or(c.KeysRefresh, 10*time.Second)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	switch c.Mode {
	case ModeOff, ModeKeys:
		if c.Issuer != "" || c.Audience != "" {
			return c, fmt.Errorf("%w: PLATFORM_AUTH=%s ignores PLATFORM_AUTH_ISSUER and PLATFORM_AUTH_AUDIENCE: unset them, or use oidc", platform.ErrInvalidInput, c.Mode)
		}
	case ModeOIDC:
		if c.Issuer == "" || c.Audience == "" {
			return c, fmt.Errorf("%w: PLATFORM_AUTH=oidc needs PLATFORM_AUTH_ISSUER and PLATFORM_AUTH_AUDIENCE", platform.ErrInvalidInput)
		}
		u, err := url.Parse(c.Issuer)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopbackHost(u.Hostname()))) {
			return c, fmt.Errorf("%w: PLATFORM_AUTH_ISSUER %q: want an https URL (http only on loopback)", platform.ErrInvalidInput, c.Issuer)
		}
	default:
		return c, fmt.Errorf("%w: PLATFORM_AUTH %q: want off, keys or oidc", platform.ErrInvalidInput, c.Mode)
	}
	return c, nil
}

// CheckListener refuses to serve an API without authentication (ModeOff) on an address
// other than loopback: anyone who reaches it could send mail through it, subscribe a URL to
// every event, and read every timeline.
func (c Config) CheckListener(addr string) error {
	c, err := c.withDefaults()
	if err != nil || c.Mode != ModeOff {
		return err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: PLATFORM_HTTP_ADDR %q: %v", platform.ErrInvalidInput, addr, err)
	}
	if !IsLoopbackHost(host) {
		return fmt.Errorf("%w: PLATFORM_HTTP_ADDR %s is not a loopback address and the API has no authentication: "+
			"set PLATFORM_AUTH_ISSUER and PLATFORM_AUTH_AUDIENCE (Entra ID or another OIDC issuer), or PLATFORM_AUTH=keys",
			platform.ErrInvalidInput, addr)
	}
	return nil
}

// IsLoopbackHost reports whether host is localhost or an IP address of the loopback range.
// An empty host (every interface) is not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Authenticator turns a request's Authorization header into a Principal.
type Authenticator struct {
	cfg    Config
	keys   *Keys
	tokens *tokens // nil unless ModeOIDC
}

// New returns the authenticator of cfg, checking API keys against keys.
func New(cfg Config, keys *Keys) (*Authenticator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, keys: keys}
	if cfg.Mode == ModeOIDC {
		a.tokens = &tokens{cfg: cfg}
	}
	return a, nil
}

// Mode is the authenticator's mode, defaults applied.
func (a *Authenticator) Mode() Mode { return a.cfg.Mode }

// Authenticate returns who sent authorization (an Authorization header's value): an API key
// or, with ModeOIDC, a bearer token. Without credentials it is Anonymous with ModeOff and
// ErrUnauthenticated otherwise. Errors wrap ErrUnauthenticated or ErrUnavailable, and never
// carry the credential.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (*Principal, error) {
	if authorization == "" {
		if a.cfg.Mode == ModeOff {
			return Anonymous, nil
		}
		return nil, unauthenticated("no credentials: send Authorization: Bearer <token or API key>")
	}
	scheme, cred, ok := strings.Cut(authorization, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, unauthenticated("Authorization: want Bearer <token or API key>")
	}
	if strings.HasPrefix(cred, KeyPrefix) {
		return a.keys.Verify(ctx, cred)
	}
	if a.tokens == nil {
		return nil, unauthenticated("bearer tokens are not accepted here (PLATFORM_AUTH=" + string(a.cfg.Mode) + "): use an API key")
	}
	return a.tokens.verify(ctx, cred)
}
