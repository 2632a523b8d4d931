package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/mappings"
)

var errNoTemplate = errors.New("no template")

// renderData is what a template sees: .Data (the job's event data), .Recipient and .Job.
type renderData struct {
	Data      map[string]any
	Recipient platform.Recipient
	Job       struct {
		Key                     string
		BusinessUnitID          int64
		NotificationEventTypeID int
	}
}

// templateStore reads templates from blob container notification-templates ({name}.json:
// {"subject":…,"text":…,"html":…}), falling back to a renderer's built-in default, and keeps
// what it read for a while so that a burst of jobs does not read the same blob each time.
type templateStore struct {
	blobs *blobs.Client
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedTemplate
}

type cachedTemplate struct {
	t  *mappings.Template // nil: no blob of that name
	at time.Time
}

func (s *templateStore) load(ctx context.Context, name string, r *mappings.Renderer) (*mappings.Template, error) {
	t, err := s.blob(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case t != nil:
		return t, nil
	case name == r.Template && r.Default != nil:
		return r.Default, nil
	}
	return nil, errNoTemplate
}

func (s *templateStore) blob(ctx context.Context, name string) (*mappings.Template, error) {
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && time.Since(c.at) < s.ttl {
		return c.t, nil
	}
	b, err := s.blobs.Get(ctx, platform.ContainerNotificationTemplates, name+".json")
	var t *mappings.Template
	switch {
	case errors.Is(err, platform.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		t = &mappings.Template{}
		if err := json.Unmarshal(b, t); err != nil || t.Subject == "" || t.Text == "" {
			return nil, platform.Permanent(errors.Join(errors.New("template "+name+".json: want {\"subject\":…,\"text\":…,\"html\":…}"), err))
		}
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string]cachedTemplate{}
	}
	s.cache[name] = cachedTemplate{t: t, at: time.Now()}
	s.mu.Unlock()
	return t, nil
}

// maxSubjectRunes bounds a subject: SMTP limits a header line to 998 bytes, and a subject is
// read in a list, not in full. Event data in a subject can be any length.
const maxSubjectRunes = 200

func clipSubject(s string) string {
	if utf8.RuneCountInString(s) <= maxSubjectRunes {
		return s
	}
	return string([]rune(s)[:maxSubjectRunes-1]) + "…"
}

// render fills a template. Subject and text are text/template; HTML is html/template, so data
// from events is escaped. A header line never carries a line break.
func render(t *mappings.Template, data renderData) (subject, text, html string, err error) {
	exec := func(name, src string) (string, error) {
		tt, err := parsed.text(name, src)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		err = tt.Execute(&b, data)
		return b.String(), err
	}
	if subject, err = exec("subject", t.Subject); err != nil {
		return
	}
	subject = clipSubject(strings.Join(strings.Fields(strings.NewReplacer("<no value>", "").Replace(subject)), " "))
	if text, err = exec("text", t.Text); err != nil {
		return
	}
	text = strings.ReplaceAll(text, "<no value>", "")
	if t.HTML != "" {
		ht, perr := parsed.html(t.HTML)
		if perr != nil {
			return "", "", "", perr
		}
		var b bytes.Buffer
		if err = ht.Execute(&b, data); err != nil {
			return
		}
		html = strings.ReplaceAll(b.String(), "&lt;no value&gt;", "")
	}
	return
}

// parsed holds templates parsed, by their source: parsing them (and html/template's escaping,
// which its first Execute does) cost more than filling them, for every email. A parsed template
// is never changed, and may be executed by many goroutines at once.
var parsed = parsedTemplates{texts: map[string]*texttemplate.Template{}, htmls: map[string]*htmltemplate.Template{}}

// maxParsedTemplates and maxParsedBytes (of source) bound parsedTemplates; when either would be
// passed, it starts again empty (templates are edited rarely: a full cache means many were, or
// were large).
const (
	maxParsedTemplates = 1024
	maxParsedBytes     = 16 << 20
)

type parsedTemplates struct {
	mu    sync.Mutex
	texts map[string]*texttemplate.Template // by name and source
	htmls map[string]*htmltemplate.Template // by source
	bytes int                               // of every source held
}

// room makes room for a source of n bytes; p.mu held.
func (p *parsedTemplates) room(n int) {
	if len(p.texts)+len(p.htmls) >= maxParsedTemplates || p.bytes+n > maxParsedBytes {
		clear(p.texts)
		clear(p.htmls)
		p.bytes = 0
	}
	p.bytes += n
}

func (p *parsedTemplates) text(name, src string) (*texttemplate.Template, error) {
	return parseOnce(p, p.texts, name+"\x00"+src, func() (*texttemplate.Template, error) {
		return texttemplate.New(name).Option("missingkey=zero").Parse(src)
	})
}

func (p *parsedTemplates) html(src string) (*htmltemplate.Template, error) {
	return parseOnce(p, p.htmls, src, func() (*htmltemplate.Template, error) {
		return htmltemplate.New("html").Option("missingkey=zero").Parse(src)
	})
}

// parseOnce is the template of key in m (one of p's maps), parsed by parse when it is not
// there. A template that does not parse is not kept.
func parseOnce[T any](p *parsedTemplates, m map[string]T, key string, parse func() (T, error)) (T, error) {
	var none T
	p.mu.Lock()
	t, ok := m[key]
	p.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := parse()
	if err != nil {
		return none, err
	}
	p.mu.Lock()
	if _, ok := m[key]; !ok {
		p.room(len(key))
	}
	m[key] = t
	p.mu.Unlock()
	return t, nil
}
