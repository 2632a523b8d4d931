// Package console is the support console: web pages, served by the worker under /console/,
// that answer what support asks — where did this event go, why did this email not send, why
// did the customer get two, what needs attention — and the few actions that settle what is
// stuck (redrive poison, mark an Unknown message sent or send it again, cancel a job).
//
// The console is a client of the API, in process: every page reads, and every action acts,
// by serving an API request (package api) carrying the signed-in principal's own credential.
// So the console shows and does exactly what that principal may through the API: the same
// roles (support to look, admin to act), the same business-unit scoping (another unit's key
// is "no such key"), the same audit line for every action. It holds no storage client and
// makes no decision of its own about who may see what.
//
// Pages are rendered on the server with html/template (every value escaped for where it
// lands); styles and the one script are embedded files: no build step, no CDN, no inline
// script, under a Content-Security-Policy that allows nothing else. Actions are HTML forms,
// each with a CSRF token bound to the session, refused from another origin.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform/auth"
)

// Deps are what the console serves from, wired by the host.
type Deps struct {
	Log logrus.FieldLogger
	// API is the worker's API handler (package api): every page reads through it.
	API http.Handler
	// Auth says who a session's credential is: the API's own authenticator.
	Auth *auth.Authenticator
	// Key is the key, shared by every replica, that seals session cookies and signs CSRF
	// tokens (blobs.Client.Key).
	Key func(ctx context.Context) ([]byte, error)
	// SessionLifetime bounds a session (default 8h); a token's own expiry ends it sooner.
	SessionLifetime time.Duration
}

// Prefix is where the console is served.
const Prefix = "/console/"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// console serves the pages over Deps.
type console struct {
	Deps
	sessions *sessions
	pages    map[string]*template.Template
}

// Handler serves the console under Prefix.
func Handler(d Deps) http.Handler {
	if d.SessionLifetime <= 0 {
		d.SessionLifetime = 8 * time.Hour
	}
	c := &console{Deps: d, sessions: &sessions{key: d.Key, lifetime: d.SessionLifetime}, pages: parsePages()}
	static, _ := fs.Sub(staticFiles, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/login", c.serveLogin)
	mux.HandleFunc("POST /console/login", c.serveSignIn)
	mux.HandleFunc("POST /console/logout", c.signedIn((*console).serveSignOut))
	for _, p := range pages {
		mux.HandleFunc(p.pattern, c.signedIn(p.serve))
	}
	return headers(mux)
}

// page is one route of the console: its pattern (as http.ServeMux reads it), and its handler,
// which runs for a signed-in principal only (signedIn).
type page struct {
	pattern string
	serve   func(*console, http.ResponseWriter, *http.Request, *session)
}

// pages are the console's routes: each page's file adds its own, in an init function, so a
// page is one Go file and one template.
var pages []page

// view is what every page template gets: the page's own data in Data.
type view struct {
	Title string
	Nav   string // the nav entry to mark current
	// Principal is who is signed in; CSRF the token its forms carry.
	Principal *auth.Principal
	CSRF      string
	Query     string // the search box's text
	Flash     string // one line saying what the last action did
	Data      any
}

// render writes page name with v, answering status. A template that fails is a 500 logged with
// a request id: a half-written page is never sent (it is rendered to a buffer first).
func (c *console) render(rw http.ResponseWriter, r *http.Request, s *session, status int, name string, v view) {
	t, ok := c.pages[name]
	if !ok {
		panic("console: no page template " + name)
	}
	if s != nil {
		v.Principal, v.CSRF = s.principal, s.csrf
	}
	if v.Flash == "" {
		v.Flash = takeFlash(rw, r)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		id := ulid.Make().String()
		c.Log.WithError(err).WithFields(logrus.Fields{"requestId": id, "page": name}).Error("console: render")
		http.Error(rw, "internal error (render "+name+"); request id "+id, http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write([]byte(b.String()))
}

// problem is what the error page says: the status, and the API's own words.
type problem struct {
	Status    int
	Message   string
	RequestID string
}

// fail renders the error page for err: an API refusal (apiError) with its status and message,
// anything else as a 500 logged with a request id.
func (c *console) fail(rw http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	p := problem{Status: http.StatusInternalServerError}
	switch {
	case errors.As(err, &ae):
		p.Status, p.Message, p.RequestID = ae.Status, ae.Message, ae.RequestID
	default:
		p.RequestID = ulid.Make().String()
		p.Message = "internal error"
		c.Log.WithError(err).WithField("requestId", p.RequestID).Error("console")
	}
	if p.Status == http.StatusUnauthorized {
		c.sessions.clear(rw, r)
		http.Redirect(rw, r, "/console/login?expired=1", http.StatusSeeOther)
		return
	}
	c.render(rw, r, s, p.Status, "error", view{Title: fmt.Sprintf("%d %s", p.Status, http.StatusText(p.Status)), Data: p})
}

// parsePages parses each page template with the layout, once.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFiles, n))
	}
	return out
}
