package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() {
	pages = append(pages,
		page{"POST /console/actions/mark-sent", (*console).serveMarkSent},
		page{"POST /console/actions/resend", (*console).serveResend},
		page{"POST /console/actions/cancel-job", (*console).serveCancelJob},
		page{"POST /console/actions/redrive", (*console).serveRedrive})
}

// The actions are forms on the Needs attention page (and elsewhere: cancel-job takes any job
// key). Each carries the session's CSRF token (checked by signedIn before these run), a
// reason, and a ticked "I confirm": the confirmation, without a script. Each acts by calling
// the API as the session's principal, so the API decides who may (admin, of the key's business
// unit), writes the trail step and the audit line; its refusal is shown in its own words.
// Done, each returns to the Needs attention page, which says what was done.

// actionForm reads an action form's key field, reason and confirmation; on failure it has
// rendered the error page.
func (c *console) actionForm(rw http.ResponseWriter, r *http.Request, s *session, field string) (key, reason string, ok bool) {
	key, reason = strings.TrimSpace(r.PostFormValue(field)), strings.TrimSpace(r.PostFormValue("reason"))
	switch {
	case field != "" && key == "":
		c.fail(rw, r, s, &apiError{Status: http.StatusBadRequest, Message: field + ": required"})
		return "", "", false
	case r.PostFormValue("confirm") != "on":
		c.fail(rw, r, s, &apiError{Status: http.StatusBadRequest, Message: "confirm: tick “I confirm” to act (nothing was done)"})
		return "", "", false
	}
	return key, reason, true
}

func (c *console) serveMarkSent(rw http.ResponseWriter, r *http.Request, s *session) {
	key, reason, ok := c.actionForm(rw, r, s, "messageKey")
	if !ok {
		return
	}
	if err := c.call(r, s, http.MethodPost, "/v1/messages/mark-sent", map[string]string{"messageKey": key, "reason": reason}, nil); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	c.done(rw, r, "/console/attention", "Marked sent (nothing was sent): "+key)
}

func (c *console) serveResend(rw http.ResponseWriter, r *http.Request, s *session) {
	key, reason, ok := c.actionForm(rw, r, s, "messageKey")
	if !ok {
		return
	}
	if err := c.call(r, s, http.MethodPost, "/v1/messages/resend", map[string]string{"messageKey": key, "reason": reason}, nil); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	c.done(rw, r, "/console/attention", "Sending once more: "+key)
}

func (c *console) serveCancelJob(rw http.ResponseWriter, r *http.Request, s *session) {
	key, reason, ok := c.actionForm(rw, r, s, "jobKey")
	if !ok {
		return
	}
	if err := c.call(r, s, http.MethodPost, "/v1/notification-jobs/cancel", map[string]string{"jobKey": key, "reason": reason}, nil); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	c.done(rw, r, "/console/attention", "Cancelled (Skipped, it will not be sent): "+key)
}

// serveRedrive redrives one poison message (messageId set) or all of a queue's.
func (c *console) serveRedrive(rw http.ResponseWriter, r *http.Request, s *session) {
	queue, reason, ok := c.actionForm(rw, r, s, "queue")
	if !ok {
		return
	}
	body := map[string]string{"reason": reason}
	if id := strings.TrimSpace(r.PostFormValue("messageId")); id != "" {
		body["messageId"] = id
	}
	var out struct {
		Moved int `json:"moved"`
	}
	// The queue is one of the API's fixed names, or the API answers 404: it is escaped anyway.
	if err := c.call(r, s, http.MethodPost, "/v1/poison/"+url.PathEscape(queue)+"/redrive", body, &out); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	what := fmt.Sprintf("Moved %d poison message(s) of %s back to the queue", out.Moved, queue)
	if id := body["messageId"]; id != "" {
		what = fmt.Sprintf("Moved poison message %s of %s back to the queue", id, queue)
	}
	c.done(rw, r, "/console/attention", what)
}
