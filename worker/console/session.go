package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/auth"
)

// A session is a signed-in browser: the credential it signed in with (an API key or a bearer
// token, sealed in an HttpOnly, SameSite=Lax cookie: the page's scripts never see it) and
// the principal that credential is now. Every request authenticates the credential again with
// the API's authenticator, so a revoked key or an expired token ends the session at once.
type session struct {
	credential string // "" when authentication is off (the anonymous principal)
	principal  *auth.Principal
	csrf       string
}

const cookieName = "platform_console"

// sessions seal and open session cookies (AES-256-GCM under a key every replica shares) and
// derive each session's CSRF token.
type sessions struct {
	key      func(ctx context.Context) ([]byte, error)
	lifetime time.Duration

	mu      sync.Mutex
	csrfKey []byte
	aead    cipher.AEAD
}

// load reads the shared key once and derives from it one key to seal cookies and another to
// sign CSRF tokens: no key serves two algorithms.
func (s *sessions) load(ctx context.Context) (cipher.AEAD, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead != nil {
		return s.aead, s.csrfKey, nil
	}
	key, err := s.key(ctx)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(derive(key, "console-session-seal"))
	if err != nil {
		return nil, nil, err
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, nil, err
	}
	s.csrfKey = derive(key, "console-csrf")
	return s.aead, s.csrfKey, nil
}

// derive is the 32-byte key for purpose under key (HMAC-SHA256 as a PRF).
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// cookie is what a session cookie seals.
type cookie struct {
	Credential string `json:"c"`
	Expires    int64  `json:"e"` // unix seconds
}

// open returns the credential of r's session cookie; "" when it has none, or one that is not
// a cookie this console sealed, or expired.
func (s *sessions) open(ctx context.Context, r *http.Request) (credential, sealed string, err error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return "", "", nil
	}
	aead, _, err := s.load(ctx)
	if err != nil {
		return "", "", err
	}
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return "", "", nil
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(cookieName))
	if err != nil {
		return "", "", nil
	}
	var c cookie
	if json.Unmarshal(plain, &c) != nil || c.Credential == "" || time.Now().Unix() >= c.Expires {
		return "", "", nil
	}
	return c.Credential, ck.Value, nil
}

// maxCookie bounds a cookie's name and value together: a browser drops a larger cookie
// without a word (4096 bytes in Chromium and Firefox), and the session would end at the next
// page with no reason given.
const maxCookie = 4096

// errTooLarge is a credential too large to keep in a cookie: an Entra ID token with many
// group claims, say. An API key always fits.
type errTooLarge struct{ credential, cookie int }

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("this credential (%d bytes) is too large for a browser to keep in its session cookie (%d bytes, at most %d): "+
		"sign in with an API key, or a token with fewer claims", e.credential, e.cookie, maxCookie)
}

// set gives the browser a session cookie for credential; an *errTooLarge when the browser
// could not keep it.
func (s *sessions) set(ctx context.Context, rw http.ResponseWriter, r *http.Request, credential string) error {
	aead, _, err := s.load(ctx)
	if err != nil {
		return err
	}
	plain, _ := json.Marshal(cookie{Credential: credential, Expires: time.Now().Add(s.lifetime).Unix()})
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	value := base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(cookieName)))
	if n := len(cookieName) + 1 + len(value); n > maxCookie {
		return &errTooLarge{credential: len(credential), cookie: n}
	}
	http.SetCookie(rw, &http.Cookie{Name: cookieName, Value: value,
		Path: Prefix, MaxAge: int(s.lifetime / time.Second), HttpOnly: true, Secure: secure(r), SameSite: sessionSameSite})
	return nil
}

// sessionSameSite is Lax, not Strict: a link to a console page in a ticket or a chat (a
// navigation from another site) must open the page, not the sign-in form. Lax sends the
// cookie on such a GET only; no GET acts, and every POST needs the session's CSRF token and
// a same-origin request (signedIn).
const sessionSameSite = http.SameSiteLaxMode

// clear ends the browser's session.
func (s *sessions) clear(rw http.ResponseWriter, r *http.Request) {
	http.SetCookie(rw, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: sessionSameSite})
}

// csrf is the token a session's forms carry: an HMAC of its sealed cookie (of "" when
// authentication is off), which a page of another site can neither read nor make.
func (s *sessions) csrf(ctx context.Context, sealed string) (string, error) {
	_, key, err := s.load(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("console-csrf\x00"))
	m.Write([]byte(sealed))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// secure reports whether the session cookie must be Secure: always, except over plain HTTP to
// a loopback address (make run), where not every browser would send a Secure cookie back.
func secure(r *http.Request) bool {
	return r.TLS != nil || !auth.IsLoopbackHost(hostOf(r))
}

func hostOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = strings.Trim(r.Host, "[]")
	}
	return host
}

// forwardedHTTPS reports whether a proxy in front says the browser spoke HTTPS to it: the
// first X-Forwarded-Proto, or the first Forwarded element's proto, is https (any case). Only
// a hint for sign-in's advice: the cookie is Secure off loopback whatever it says.
func forwardedHTTPS(r *http.Request) bool {
	first := func(v string) string { f, _, _ := strings.Cut(v, ","); return strings.TrimSpace(f) }
	if strings.EqualFold(first(r.Header.Get("X-Forwarded-Proto")), "https") {
		return true
	}
	for _, pair := range strings.Split(first(r.Header.Get("Forwarded")), ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}

// signedIn runs next for a signed-in principal: the session's credential authenticated again
// now (or, with authentication off, the anonymous principal on a loopback host). Without one,
// a GET goes to the sign-in page and anything else is 401. A POST must come from a console
// page: same origin, and the session's CSRF token.
func (c *console) signedIn(next func(*console, http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		credential, sealed, err := c.sessions.open(ctx, r)
		if err != nil {
			c.fail(rw, r, nil, err)
			return
		}
		authorization := ""
		if credential != "" {
			authorization = "Bearer " + credential
		}
		p, err := c.Auth.Authenticate(ctx, authorization)
		switch {
		case errors.Is(err, auth.ErrUnavailable):
			c.fail(rw, r, nil, &apiError{Status: http.StatusServiceUnavailable, Message: "authentication unavailable"})
			return
		case err != nil && r.Method == http.MethodGet:
			if credential != "" {
				c.sessions.clear(rw, r)
			}
			q := url.Values{"next": {r.URL.RequestURI()}}
			if credential != "" {
				q.Set("expired", "1")
			}
			http.Redirect(rw, r, "/console/login?"+q.Encode(), http.StatusSeeOther)
			return
		case err != nil:
			http.Error(rw, "sign in first", http.StatusUnauthorized)
			return
		case p == auth.Anonymous && !auth.IsLoopbackHost(hostOf(r)):
			http.Error(rw, "authentication is off: the console is served only on a loopback address", http.StatusForbidden)
			return
		}
		s := &session{credential: credential, principal: p}
		if s.csrf, err = c.sessions.csrf(ctx, sealed); err != nil {
			c.fail(rw, r, nil, err)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(rw, r.Body, maxForm)
			if err := crossOrigin.Check(r); err != nil {
				http.Error(rw, "refused: a console form must be sent from a console page", http.StatusForbidden)
				return
			}
			if got := r.PostFormValue("csrf"); !hmac.Equal([]byte(got), []byte(s.csrf)) {
				c.Log.WithFields(logrus.Fields{"principal": p.ID, "path": r.URL.Path}).Warn("console: form without its session's CSRF token refused")
				http.Error(rw, "refused: this form's token is not this session's (reload the page and try again)", http.StatusForbidden)
				return
			}
		}
		next(c, rw, r, s)
	}
}

// maxForm bounds a console form: a key, a reason and a token.
const maxForm = 64 << 10

// crossOrigin refuses a browser's unsafe request made by a page of another origin.
var crossOrigin = http.NewCrossOriginProtection()

// loginView is what the sign-in page says.
type loginView struct {
	AuthOff bool
	Expired bool
	Error   string
	Next    string // the console page to go on to once signed in
}

// nextPage is where sign-in goes on to: the console page next names, or Find. Only a path
// under the console's prefix is followed (never another site, "//host" or "/\\host").
func nextPage(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "/console/login") {
		return Prefix
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, Prefix) {
		return Prefix
	}
	return next
}

// serveLogin shows the sign-in form. With authentication off there is nothing to sign in to.
func (c *console) serveLogin(rw http.ResponseWriter, r *http.Request) {
	off := false
	if p, err := c.Auth.Authenticate(r.Context(), ""); err == nil && p == auth.Anonymous {
		off = true
	}
	q := r.URL.Query()
	c.render(rw, r, nil, http.StatusOK, "login", view{Title: "Sign in",
		Data: loginView{AuthOff: off, Expired: q.Get("expired") != "", Next: nextPage(q.Get("next"))}})
}

// maxCredential bounds a pasted credential: a JWT with many claims is a few KB.
const maxCredential = 16 << 10

// serveSignIn checks a pasted credential (an API key, or a bearer token for the API's
// audience) with the API's authenticator and, when it is one, starts a session with it. Only
// a principal that holds the support role (or admin) may use the console.
func (c *console) serveSignIn(rw http.ResponseWriter, r *http.Request) {
	if err := crossOrigin.Check(r); err != nil {
		http.Error(rw, "refused: sign in from the console's own page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(rw, r.Body, maxCredential+1024)
	credential := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("credential")), "Bearer "))
	refuse := func(status int, msg string) {
		c.Log.WithFields(logrus.Fields{"remote": r.RemoteAddr, "reason": msg}).Info("console: sign-in refused")
		c.render(rw, r, nil, status, "login", view{Title: "Sign in", Data: loginView{Error: msg, Next: nextPage(r.PostFormValue("next"))}})
	}
	if secure(r) && r.TLS == nil && !forwardedHTTPS(r) {
		// The session cookie is Secure here: over plain HTTP the browser would drop it, and
		// every page would come back to this form without a word.
		refuse(http.StatusBadRequest, "the console needs HTTPS on an address other than loopback: put TLS in front of the worker (Container Apps' ingress does), or open it on 127.0.0.1")
		return
	}
	if credential == "" || len(credential) > maxCredential {
		refuse(http.StatusBadRequest, "paste an API key (plk_…) or a bearer token")
		return
	}
	p, err := c.Auth.Authenticate(r.Context(), "Bearer "+credential)
	switch {
	case errors.Is(err, auth.ErrUnavailable):
		c.fail(rw, r, nil, &apiError{Status: http.StatusServiceUnavailable, Message: "authentication unavailable"})
		return
	case err != nil:
		refuse(http.StatusUnauthorized, auth.Reason(err))
		return
	case !p.Has(auth.Support):
		refuse(http.StatusForbidden, "the console needs role support (or admin) to look; this credential has "+rolesOf(p))
		return
	}
	var tooLarge *errTooLarge
	if err := c.sessions.set(r.Context(), rw, r, credential); errors.As(err, &tooLarge) {
		refuse(http.StatusBadRequest, tooLarge.Error())
		return
	} else if err != nil {
		c.fail(rw, r, nil, err)
		return
	}
	c.Log.WithFields(logrus.Fields{"principal": p.ID, "remote": r.RemoteAddr}).Info("console: signed in")
	http.Redirect(rw, r, nextPage(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *console) serveSignOut(rw http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.clear(rw, r)
	c.Log.WithField("principal", s.principal.ID).Info("console: signed out")
	http.Redirect(rw, r, "/console/login", http.StatusSeeOther)
}

func rolesOf(p *auth.Principal) string {
	if len(p.Roles) == 0 {
		return "no role"
	}
	rs := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		rs[i] = string(r)
	}
	return strings.Join(rs, ", ")
}
