package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker/delivery"
)

// The actions support takes on what needs attention (role admin): mark an Unknown message
// sent, send a message once more, cancel a job not yet released, redrive poison. Each needs a
// reason, which goes into the row's trail and the request's audit line with the key acted on.
// A principal scoped to business units acts only on its units' messages and jobs (another
// unit's is "no such key", as in a trace); poison, which carries no dependable unit, only a
// principal that sees every unit redrives.

// maxReason bounds an action's reason, in characters.
const maxReason = 500

// CheckReason refuses the reason of a support action (the API's, the command line's) that is
// not UTF-8, empty, longer than 500 characters, or holds a character that is not printable:
// a control (a line break, a tab), a bidirectional control, or an invisible or formatting one
// (U+200B, U+FEFF, a soft hyphen, a line separator). It is written to logs and trails, where
// any of them could make a line read as something other than what it says.
func CheckReason(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("reason: not valid UTF-8")
	}
	if strings.TrimSpace(s) == "" {
		return errors.New("reason: required (say why, for the trail and the audit log)")
	}
	if n := utf8.RuneCountInString(s); n > maxReason {
		return fmt.Errorf("reason: %d characters: want at most %d", n, maxReason)
	}
	// Spaces of every kind (a no-break space pasted from a ticket) are spaces; line and
	// paragraph separators, zero-width and formatting characters are not.
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && !unicode.Is(unicode.Zs, r) })
	if i < 0 {
		return nil
	}
	switch r, _ := utf8.DecodeRuneInString(s[i:]); {
	case unicode.IsControl(r):
		return fmt.Errorf("reason: control character %U (a line break, a tab…) is not allowed: one line of text", r)
	case unicode.Is(unicode.Bidi_Control, r):
		return fmt.Errorf("reason: bidirectional control %U is not allowed: it reorders how the line reads", r)
	default:
		return fmt.Errorf("reason: character %U is not allowed: only visible characters and spaces", r)
	}
}

// isGUID reports whether s is a GUID in its 8-4-4-4-12 hexadecimal form, as Azure Storage
// (and Azurite) name queue messages.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// actionBody is the body of an action on a message or a job.
type actionBody struct {
	MessageKey string `json:"messageKey,omitempty"`
	JobKey     string `json:"jobKey,omitempty"`
	Reason     string `json:"reason"`
}

// readAction decodes and checks an action's body, whose key is field's; it notes the key and
// reason for the audit line. On failure it has answered 400.
func readAction(rw http.ResponseWriter, r *http.Request, field string) (key, reason string, ok bool) {
	var b actionBody
	if !decode(rw, r, 16<<10, &b) {
		return "", "", false
	}
	key = b.MessageKey
	other := b.JobKey
	if field == "jobKey" {
		key, other = b.JobKey, b.MessageKey
	}
	switch {
	case other != "":
		writeError(rw, http.StatusBadRequest, fmt.Sprintf(`body: want {"%s":…, "reason":…}`, field))
		return "", "", false
	case key == "":
		writeError(rw, http.StatusBadRequest, field+": required")
		return "", "", false
	}
	if err := platform.CheckKeyLength(field, key); err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return "", "", false
	}
	noteAction(r, platform.ShownKey(key), "")
	if err := CheckReason(b.Reason); err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return "", "", false
	}
	noteAction(r, platform.ShownKey(key), b.Reason)
	return key, b.Reason, true
}

// actor is request r's principal acting for reason. Its Visible notes, for the audit line, the
// business unit of a row the principal may see, when the row is read: before the action
// decides, so that a refusal (409) names the unit as a success does; another unit's row, "no
// such key", leaves none.
func actor(r *http.Request, reason string) delivery.Actor {
	p := principal(r)
	return delivery.Actor{By: p.ID, Reason: reason, Visible: func(unit int64) bool {
		if !p.Sees(unit) {
			return false
		}
		noteUnit(r, unit)
		return true
	}}
}

// actionError answers an action's failure: no such key (or another unit's) 404, a state the
// action does not take 409 naming it, storage 502.
func (d *server) actionError(rw http.ResponseWriter, what string, err error) {
	var se *delivery.StateError
	switch {
	case errors.As(err, &se):
		writeError(rw, http.StatusConflict, se.Error())
	case errors.Is(err, platform.ErrNotFound):
		writeError(rw, http.StatusNotFound, "no such key")
	case errors.Is(err, platform.ErrConflict):
		writeError(rw, http.StatusConflict, "it kept changing while this ran: read it again, then decide")
	default:
		d.storageError(rw, what, err)
	}
}

// serveMarkSent answers POST /v1/messages/mark-sent {"messageKey","reason"}: an Unknown
// message recorded Sent (support checked with the provider); nothing is sent. 409 naming the
// state for any other.
func (d *server) serveMarkSent(rw http.ResponseWriter, r *http.Request) {
	key, reason, ok := readAction(rw, r, "messageKey")
	if !ok {
		return
	}
	m, err := d.Distributor.MarkSent(r.Context(), key, actor(r, reason))
	if err != nil {
		d.actionError(rw, "mark message sent", err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"messageKey": platform.ShownKey(m.Key), "state": m.State})
}

// serveResend answers POST /v1/messages/resend {"messageKey","reason"}: an Unknown or Failed
// message sent once more. 409 naming the state for any other (Sent, Conflict, on its way).
func (d *server) serveResend(rw http.ResponseWriter, r *http.Request) {
	key, reason, ok := readAction(rw, r, "messageKey")
	if !ok {
		return
	}
	m, err := d.Distributor.Resend(r.Context(), key, actor(r, reason))
	if err != nil {
		d.actionError(rw, "send message again", err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"messageKey": platform.ShownKey(m.Key), "state": m.State})
}

// serveCancelJob answers POST /v1/notification-jobs/cancel {"jobKey","reason"}: a job not yet
// released to the generator (Created, Scheduled) Skipped with reason cancelled-by-support. 409 for one
// released or settled.
func (d *server) serveCancelJob(rw http.ResponseWriter, r *http.Request) {
	key, reason, ok := readAction(rw, r, "jobKey")
	if !ok {
		return
	}
	j, err := d.Notify.CancelJob(r.Context(), key, actor(r, reason))
	if err != nil {
		d.actionError(rw, "cancel notification job", err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"jobKey": j.Key, "state": j.State, "reason": j.Reason})
}

// serveRedrive answers POST /v1/poison/{queue}/redrive {"messageId"?,"reason"}: every poison
// message of the work queue moved back to it, or only messageId; 200 {"moved":N}. A work
// queue's name redrives each of its shards' poison back to its shard; a shard's name
// ("entity-events-3") that shard's only. An unknown
// queue, or a messageId not in its poison queue, is 404; a caller that does not see every
// business unit 403; a poison record the worker did not write (queues.LeftError), left where it
// is, 409 naming it and why, with {"moved":N} of the others when all were asked.
func (d *server) serveRedrive(rw http.ResponseWriter, r *http.Request) {
	queue := strings.TrimSuffix(r.PathValue("queue"), platform.PoisonSuffix)
	if _, _, ok := platform.SplitQueue(queue); !ok {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("no work queue %.100q: want one of %s, or one's shard (entity-events-3)", r.PathValue("queue"), strings.Join(platform.WorkQueues, ", ")))
		return
	}
	var b struct {
		MessageID string `json:"messageId,omitempty"`
		Reason    string `json:"reason"`
	}
	if !decode(rw, r, 16<<10, &b) {
		return
	}
	key := queue
	if b.MessageID != "" {
		if !isGUID(b.MessageID) { // nor does anything else reach the audit line or an error
			writeError(rw, http.StatusBadRequest, "messageId: want a poison message's id, a GUID as GET /v1/attention shows it")
			return
		}
		key += "/" + b.MessageID
	}
	noteAction(r, key, "")
	if err := CheckReason(b.Reason); err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	}
	noteAction(r, key, b.Reason)
	if !principal(r).AllUnits() {
		writeError(rw, http.StatusForbidden, "redriving poison needs a principal that sees every business unit: a poison message carries no dependable unit")
		return
	}
	var left *queues.LeftError
	if b.MessageID == "" {
		n, err := d.Queues.Redrive(r.Context(), queue)
		switch {
		case errors.As(err, &left):
			writeJSON(rw, http.StatusConflict, map[string]any{"error": fmt.Sprintf("moved %d, then: %v", n, left), "moved": n})
		case err != nil:
			d.serverError(rw, "redrive", fmt.Errorf("moved %d, then: %w", n, err), http.StatusBadGateway, fmt.Sprintf("moved %d, then failed", n))
		default:
			writeJSON(rw, http.StatusOK, map[string]int{"moved": n})
		}
		return
	}
	switch err := d.Queues.RedriveOne(r.Context(), queue, b.MessageID); {
	case errors.Is(err, platform.ErrNotFound):
		writeError(rw, http.StatusNotFound, "no such message in "+queue+"'s poison queue (redriven already?)")
	case errors.As(err, &left):
		writeError(rw, http.StatusConflict, left.Error())
	case err != nil:
		d.serverError(rw, "redrive one", err, http.StatusBadGateway, "not moved")
	default:
		writeJSON(rw, http.StatusOK, map[string]int{"moved": 1})
	}
}
