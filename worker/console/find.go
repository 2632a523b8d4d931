package console

import (
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/platform/platform"
)

func init() {
	pages = append(pages,
		page{"GET /console/{$}", (*console).serveFind},
		page{"GET /console/find", (*console).serveFindQuery})
}

// serveFind is the console's home: one search box.
func (c *console) serveFind(rw http.ResponseWriter, r *http.Request, s *session) {
	c.render(rw, r, s, http.StatusOK, "find", view{Title: "Find", Nav: "find"})
}

// serveFindQuery takes whatever support has — an event, job, message or delivery key, a
// history event key, an entity (type and GUID or id), an email address — and goes to the page
// that answers for it.
func (c *console) serveFindQuery(rw http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		http.Redirect(rw, r, Prefix, http.StatusSeeOther)
		return
	}
	to, why := destination(q)
	if to == "" {
		c.render(rw, r, s, http.StatusBadRequest, "find", view{Title: "Find", Nav: "find", Query: q, Data: why})
		return
	}
	http.Redirect(rw, r, to, http.StatusSeeOther)
}

// destination is the page for query q, or "" and why none is.
func destination(q string) (to, why string) {
	if len(q) > 4*platform.MaxKeyLength {
		return "", "too long to be a key, an entity or an address"
	}
	if rest, ok := strings.CutPrefix(q, "entity-history:"); ok {
		// {eventTypeId}:{entityTypeId}:{identity}:{createdOn}:{actionTypeId}: the row's timeline.
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) == 3 {
			if typ, id, ok := entity(parts[1], strings.SplitN(parts[2], ":", 2)[0]); ok {
				return timeline(typ, id, q), ""
			}
		}
		return "", "a history event key reads entity-history:{eventTypeId}:{entityTypeId}:{entity}:{createdOn}:{actionTypeId}"
	}
	if strings.Contains(q, "@") && !strings.ContainsAny(q, "|: ") {
		if a, err := mail.ParseAddress(q); err == nil && a.Address == q {
			return "/console/messages?address=" + url.QueryEscape(strings.ToLower(q)), ""
		}
		return "", "not an email address"
	}
	if f := strings.FieldsFunc(q, func(r rune) bool { return r == ' ' || r == '/' }); len(f) == 2 {
		if typ, id, ok := entity(f[0], f[1]); ok {
			return timeline(typ, id, ""), ""
		}
	}
	if typ, id, ok := strings.Cut(q, ":"); ok && !strings.Contains(id, ":") {
		if typ, id, ok := entity(typ, id); ok {
			return timeline(typ, id, ""), ""
		}
	}
	return "/console/trace?key=" + url.QueryEscape(q), ""
}

// entity reads an entity type and identity (a GUID, or a positive integer id).
func entity(typ, id string) (int, string, bool) {
	t, err := strconv.Atoi(typ)
	if err != nil || t <= 0 {
		return 0, "", false
	}
	if g, err := platform.NormalizeGUID(id); err == nil && g != "" {
		return t, g, true
	}
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 {
		return t, id, true
	}
	return 0, "", false
}

func timeline(typ int, id, highlight string) string {
	u := "/console/timeline?type=" + strconv.Itoa(typ) + "&id=" + url.QueryEscape(id)
	if highlight != "" {
		u += "&row=" + url.QueryEscape(highlight)
	}
	return u
}
