package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/platform/platform/worker/notify"
)

func init() {
	pages = append(pages, page{"GET /console/messages", (*console).serveMessages})
}

// messagesView is what the messages page shows: the filters as typed, and the API's answer
// (GET /v1/messages) once an address was given.
type messagesView struct {
	Address, Since, Until string
	Error                 string
	Found                 *notify.AddressMessages
	Why                   []whyPanel
	// InGroup marks the messages some "why two" panel names.
	InGroup map[string]bool
}

// whyPanel is one group of messages of one notification type, and why it is more than one.
type whyPanel struct {
	Type, Title, Tone, Explanation string
	Messages                       []notify.AddressMessage // oldest first
}

// whyTitles head the panels, by case, with the tone of what support should make of it: by
// design, worth a look, or a misconfiguration to fix.
var whyTitles = map[string][2]string{
	notify.WhyOccurrences:      {"Separate occurrences of one change — by design", "tone-wait"},
	notify.WhyEvents:           {"Separate events asked for it", "tone-warn"},
	notify.WhyPaths:            {"Two paths — the dual-path case", "tone-bad"},
	notify.WhyPathsAcrossTypes: {"Two types by two paths — the dual-path case, if they say the same thing", "tone-bad"},
	notify.WhyDirect:           {"Separate direct requests", "tone-warn"},
	notify.WhyOneJob:           {"One job", "tone-none"},
}

// serveMessages shows the messages sent to an email address in a window (dates, UTC; the last
// 7 days by default, at most 31), newest first, and at the top, for each notification type
// that reached the address more than once, why: two occurrences, two events, two paths or two
// direct requests, each message linked to its trace.
func (c *console) serveMessages(rw http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := &messagesView{Address: strings.TrimSpace(q.Get("address")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	page := view{Title: "Messages to an address", Nav: "find", Data: v}
	if v.Address == "" {
		c.render(rw, r, s, http.StatusOK, "messages", page)
		return
	}
	page.Query = v.Address
	api := url.Values{"address": {v.Address}}
	for _, f := range []struct {
		name, value string
		days        int // until is the end of its day
	}{{"since", v.Since, 0}, {"until", v.Until, 1}} {
		if f.value == "" {
			continue
		}
		d, err := time.Parse(time.DateOnly, f.value)
		if err != nil {
			v.Error = f.name + ": want a date (2026-11-22)"
			c.render(rw, r, s, http.StatusBadRequest, "messages", page)
			return
		}
		api.Set(f.name, d.AddDate(0, 0, f.days).Format(time.RFC3339))
	}
	var found notify.AddressMessages
	if err := c.call(r, s, http.MethodGet, "/v1/messages?"+api.Encode(), nil, &found); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			v.Error = ae.Message
			c.render(rw, r, s, http.StatusBadRequest, "messages", page)
			return
		}
		c.fail(rw, r, s, err)
		return
	}
	page.Title = "Messages to " + found.Address
	v.Found, v.InGroup = &found, map[string]bool{}
	byKey := map[string]notify.AddressMessage{}
	for _, m := range found.Messages {
		byKey[m.MessageKey] = m
	}
	for _, d := range found.Duplicates {
		t := whyTitles[d.Case]
		p := whyPanel{Type: d.NotificationType, Title: t[0], Tone: t[1], Explanation: d.Explanation}
		if d.NotificationEventTypeID != 0 { // one type; 0: several, named in NotificationType
			p.Type = typeLabel(d.NotificationEventTypeID, d.NotificationType)
		}
		if p.Title == "" {
			p.Title, p.Tone = "More than one", "tone-none"
		}
		for _, k := range d.MessageKeys {
			v.InGroup[k] = true
			p.Messages = append(p.Messages, byKey[k])
		}
		v.Why = append(v.Why, p)
	}
	c.render(rw, r, s, http.StatusOK, "messages", page)
}
