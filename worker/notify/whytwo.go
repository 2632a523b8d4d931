package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/platform/platform"
)

// Why answers "why did this address get two of one notification?" for a group of messages.
type Why struct {
	// Case is which answer it is: WhyOccurrences, WhyEvents, WhyPaths, WhyDirect (or
	// WhyOneJob, which storage cannot hold).
	Case string `json:"case"`
	// Explanation is the answer in one sentence, naming the events, jobs and rules.
	Explanation string `json:"explanation"`
}

// The cases of Why.
const (
	// WhyOccurrences: event-derived jobs of events that differ only in createdOn: the sender
	// published one entity's change more than once, each a business occurrence of its own.
	WhyOccurrences = "occurrences"
	// WhyEvents: event-derived jobs of different events (event types, entities or actions).
	WhyEvents = "events"
	// WhyPaths: one job derived from an event, another created directly or by an automation
	// rule — the dual-path case.
	WhyPaths = "paths"
	// WhyDirect: direct jobs only, created by requests that shared no Idempotency-Key (or by
	// automation rules).
	WhyDirect = "direct"
	// WhyPathsAcrossTypes: messages of different notification types created close together
	// (AcrossTypesWindow), one derived from an event and another created directly or by an
	// automation rule. The guardrail keeps each type on one path, so this is not one
	// notification sent twice; but two types telling the recipient one thing is the dual-path
	// case still ("welcome" sent directly by the signup service and "new profile" derived from
	// its event).
	WhyPathsAcrossTypes = "paths-types"
	// WhyOneJob: the messages are of one job; one key is one message per channel and address,
	// so two such rows cannot exist. Said rather than guessed at.
	WhyOneJob = "one-job"
)

// origin is where a message's job came from.
type origin struct {
	jobKey string
	event  *platform.EntityEvent // event-derived: the event its key names
	rule   string                // made by an automation rule's action
	// idempotent: a direct job keyed by its caller's Idempotency-Key.
	idempotent bool
}

// originOf reads where m's job came from: its row when read (job), else its key, which says as
// much: an event-derived key names its event, a direct one is notification-job:direct:… (an
// Idempotency-Key) or a UUID.
func originOf(m *platform.OutgoingMessage, job *platform.NotificationJob) origin {
	o := origin{jobKey: m.JobKey, rule: m.CausedByRule}
	eventKey := ""
	if job != nil {
		eventKey = job.EventKey
		if job.CausedByRule != "" {
			o.rule = job.CausedByRule
		}
	}
	if rest, ok := strings.CutPrefix(m.JobKey, "notification-job:"); ok && eventKey == "" {
		if strings.HasPrefix(rest, "direct:") {
			o.idempotent = true
		} else if _, ek, ok := strings.Cut(rest, ":"); ok {
			eventKey = ek
		}
	}
	if eventKey != "" {
		if ev, err := platform.ParseEventKey(eventKey); err == nil {
			o.event = ev
		}
	}
	return o
}

// WhyTwo explains msgs: two or more messages to one address of one notification type. One key
// cannot be two messages (the message key, from the job key, channel and address, is the
// dedupe), so two messages come from two jobs, and the jobs' keys and rows (jobs, by job key;
// one not read is explained from its key) say how each came to be: two occurrences of one
// entity's change, two events, two paths (an event and a direct request or automation rule),
// or two direct requests.
func WhyTwo(msgs []*platform.OutgoingMessage, jobs map[string]*platform.NotificationJob) Why {
	var origins []origin
	for _, m := range msgs {
		if slices.ContainsFunc(origins, func(o origin) bool { return o.jobKey == m.JobKey }) {
			continue
		}
		origins = append(origins, originOf(m, jobs[m.JobKey]))
	}
	if len(origins) < 2 {
		key := ""
		if len(origins) == 1 {
			key = origins[0].jobKey
		}
		return Why{WhyOneJob, fmt.Sprintf("One job (%s): one key is one message per channel and address — the key is the dedupe — so these are the same message.", key)}
	}
	var derived, direct, byRule []origin
	for _, o := range origins {
		switch {
		case o.rule != "":
			byRule = append(byRule, o)
		case o.event != nil:
			derived = append(derived, o)
		default:
			direct = append(direct, o)
		}
	}
	n := count(len(origins))
	switch {
	case len(direct) == 0 && len(byRule) == 0:
		if oneEntityChange(derived) {
			on := make([]string, len(derived))
			for i, o := range derived {
				on[i] = platform.FormatCreatedOn(o.event.CreatedOn)
			}
			slices.Sort(on) // the order they happened in, whichever was handled first
			return Why{WhyOccurrences, fmt.Sprintf("%s occurrences: the sender published this entity's change %s (createdOn %s) — each is its own occurrence, by design, with its own event key and job.",
				capital(n), times(len(derived)), list(on))}
		}
		events := make([]string, len(derived))
		for i, o := range derived {
			events[i] = describeEvent(o.event)
		}
		return Why{WhyEvents, fmt.Sprintf("%s events each asked for this notification: %s — each event derives its own job, by its hint (notificationEventTypeId) or a dedicated mapping; if only one should notify, take the hint off the other's call-site.",
			capital(n), list(events))}
	case len(derived) > 0:
		var paths []string
		keys := make([]string, len(derived))
		for i, o := range derived {
			keys[i] = o.event.Key()
		}
		paths = append(paths, fmt.Sprintf("%s derived from %s %s", count(len(derived)), noun(len(derived), "event", "events"), list(keys)))
		if len(direct) > 0 {
			paths = append(paths, fmt.Sprintf("%s created directly (POST /v1/notification-jobs or platform notify: %s %s)",
				count(len(direct)), noun(len(direct), "job", "jobs"), list(jobKeys(direct))))
		}
		for _, o := range byRule {
			paths = append(paths, fmt.Sprintf("one created by automation rule %s (CausedByRule %s: job %s)", o.rule, o.rule, o.jobKey))
		}
		lead := capital(count(len(paths))) + " paths"
		if len(origins) != len(paths) {
			lead = capital(n) + " jobs on " + count(len(paths)) + " paths"
		}
		return Why{WhyPaths, fmt.Sprintf("%s: %s — the dual-path case: a notification type comes from events or is created directly, never both; turn one of the paths off.",
			lead, strings.Join(paths, "; "))}
	}
	var each []string
	for _, o := range origins {
		switch {
		case o.rule != "":
			each = append(each, fmt.Sprintf("job %s by automation rule %s", o.jobKey, o.rule))
		case o.idempotent:
			each = append(each, fmt.Sprintf("job %s under an Idempotency-Key of its own", o.jobKey))
		default:
			each = append(each, fmt.Sprintf("job %s without an Idempotency-Key", o.jobKey))
		}
	}
	return Why{WhyDirect, fmt.Sprintf("%s direct requests (no shared Idempotency-Key): %s — direct notifications are at-least-once: a caller that retries must send the same Idempotency-Key to get one job.",
		capital(n), list(each))}
}

// AcrossTypesWindow is how close together messages of different types to one address must be
// created to be read as one occasion by WhyTwoAcrossTypes.
const AcrossTypesWindow = 10 * time.Minute

// AcrossTypes groups asc (messages to one address, oldest first) into the occasions
// WhyTwoAcrossTypes explains: a message that did not come from an event (created directly, or
// by a rule) and one of another type that did, created within AcrossTypesWindow of each
// other, are one occasion; occasions that share a message are one group. Groups of one are
// left out; each group is oldest first.
func AcrossTypes(asc []*platform.OutgoingMessage) [][]*platform.OutgoingMessage {
	derived := make([]bool, len(asc))
	for i, m := range asc {
		o := originOf(m, nil)
		derived[i] = o.event != nil && o.rule == ""
	}
	group := make([]int, len(asc)) // union-find over asc's indexes
	for i := range group {
		group[i] = i
	}
	root := func(i int) int {
		for group[i] != i {
			group[i] = group[group[i]]
			i = group[i]
		}
		return i
	}
	for i := range asc {
		for j := i + 1; j < len(asc) && asc[j].CreatedAt.Sub(asc[i].CreatedAt) <= AcrossTypesWindow; j++ {
			if derived[i] != derived[j] && asc[i].NotificationEventTypeID != asc[j].NotificationEventTypeID {
				group[root(j)] = root(i)
			}
		}
	}
	runs := map[int][]*platform.OutgoingMessage{}
	var roots []int
	for i, m := range asc {
		r := root(i)
		if _, ok := runs[r]; !ok {
			roots = append(roots, r)
		}
		runs[r] = append(runs[r], m)
	}
	var out [][]*platform.OutgoingMessage
	for _, r := range roots {
		if len(runs[r]) > 1 {
			out = append(out, runs[r])
		}
	}
	return out
}

// WhyTwoAcrossTypes explains msgs — to one address, of two or more notification types, created
// within AcrossTypesWindow — when they came by two paths: some derived from events, some
// created directly or by an automation rule. ok is false otherwise (events only, or direct
// only: different notifications, each on its own path). name names a type ("WelcomeEmail
// (201)").
func WhyTwoAcrossTypes(msgs []*platform.OutgoingMessage, jobs map[string]*platform.NotificationJob, name func(int) string) (Why, bool) {
	var derived, other bool
	var each []string
	var first, last time.Time
	for _, m := range msgs {
		if first.IsZero() || m.CreatedAt.Before(first) {
			first = m.CreatedAt
		}
		if m.CreatedAt.After(last) {
			last = m.CreatedAt
		}
		o := originOf(m, jobs[m.JobKey])
		switch {
		case o.rule != "":
			other = true
			each = append(each, fmt.Sprintf("%s by automation rule %s (job %s)", name(m.NotificationEventTypeID), o.rule, o.jobKey))
		case o.event != nil:
			derived = true
			each = append(each, fmt.Sprintf("%s derived from event %s", name(m.NotificationEventTypeID), o.event.Key()))
		default:
			other = true
			each = append(each, fmt.Sprintf("%s created directly (job %s)", name(m.NotificationEventTypeID), o.jobKey))
		}
	}
	if !derived || !other {
		return Why{}, false
	}
	within := "within " + last.Sub(first).Round(time.Second).String()
	if last.Sub(first) < time.Second {
		within = "within a second"
	}
	return Why{WhyPathsAcrossTypes, fmt.Sprintf("%s notifications of different types %s: %s — each type keeps to one path (the guardrail), so no notification went twice; but if they tell the recipient the same thing, this is the dual-path case across types: stop one of the two paths.",
		capital(count(len(msgs))), within, list(each))}, true
}

// oneEntityChange reports whether the events are one entity's change (event type, entity,
// action), told apart by createdOn only.
func oneEntityChange(os []origin) bool {
	first := os[0].event
	for _, o := range os[1:] {
		e := o.event
		if e.EventTypeID != first.EventTypeID || e.EntityTypeID != first.EntityTypeID || e.Identity() != first.Identity() || e.ActionTypeID != first.ActionTypeID {
			return false
		}
	}
	return true
}

func describeEvent(ev *platform.EntityEvent) string {
	return fmt.Sprintf("event %s (event type %d on entity %d/%s)", ev.Key(), ev.EventTypeID, ev.EntityTypeID, ev.Identity())
}

func jobKeys(os []origin) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.jobKey
	}
	return out
}

// list joins items as a sentence does: "a", "a and b", "a, b and c".
func list(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func count(n int) string {
	if n >= 0 && n < len(numbers) {
		return numbers[n]
	}
	return fmt.Sprint(n)
}

var numbers = []string{"no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}

func times(n int) string {
	switch n {
	case 2:
		return "twice"
	case 3:
		return "three times"
	}
	return count(n) + " times"
}

func noun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
