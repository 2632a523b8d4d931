package notify_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// WhyTwo tells each way one address gets two messages of one type, naming what it read: the
// events' createdOn, the event keys, the direct job and the rule.
func TestWhyTwo(t *testing.T) {
	const (
		guid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
		at1  = "2026-11-22T10:00:00.0000000Z"
		at2  = "2026-11-22T10:05:00.0000000Z"
	)
	ev1 := "11:1:" + guid + ":" + at1 + ":1"
	ev2 := "11:1:" + guid + ":" + at2 + ":1"
	other := "31:3:501:" + at1 + ":4"
	derived := func(eventKey string) *platform.NotificationJob {
		return &platform.NotificationJob{Key: platform.EventJobKey(101, eventKey), NotificationEventTypeID: 101, EventKey: eventKey}
	}
	direct := func(key, rule string) *platform.NotificationJob {
		return &platform.NotificationJob{Key: key, NotificationEventTypeID: 101, CausedByRule: rule}
	}
	const uuid1, uuid2 = "0b0e7d5c-3c4f-4b6a-9c1e-2f3a4b5c6d7e", "1c1e7d5c-3c4f-4b6a-9c1e-2f3a4b5c6d7f"
	idem := platform.DirectJobKey(201, 42, "order-7")
	for _, tc := range []struct {
		name string
		jobs []*platform.NotificationJob
		read bool // the jobs' rows were read (else: explained from their keys)
		want string
		says []string
	}{
		{"two occurrences", []*platform.NotificationJob{derived(ev1), derived(ev2)}, true, notify.WhyOccurrences,
			[]string{"Two occurrences", "published this entity's change twice", "createdOn " + at1 + " and " + at2, "by design"}},
		{"two occurrences, from the keys alone", []*platform.NotificationJob{derived(ev1), derived(ev2)}, false, notify.WhyOccurrences,
			[]string{"Two occurrences", at1 + " and " + at2}},
		{"three occurrences", []*platform.NotificationJob{derived(ev1), derived(ev2), derived(strings.Replace(ev2, "10:05", "10:09", 1))}, true, notify.WhyOccurrences,
			[]string{"Three occurrences", "three times"}},
		{"two events", []*platform.NotificationJob{derived(ev1), derived(other)}, true, notify.WhyEvents,
			[]string{"Two events each asked for this notification", "event " + ev1 + " (event type 11 on entity 1/" + guid + ")", "event " + other + " (event type 31 on entity 3/501)"}},
		{"one event, one direct", []*platform.NotificationJob{derived(ev1), direct(uuid1, "")}, true, notify.WhyPaths,
			[]string{"Two paths", "one derived from event " + ev1, "one created directly (POST /v1/notification-jobs", "job " + uuid1, "dual-path", "turn one of the paths off"}},
		{"one event, one direct, from the keys alone", []*platform.NotificationJob{derived(ev1), direct(idem, "")}, false, notify.WhyPaths,
			[]string{"Two paths", "derived from event " + ev1, "job " + idem}},
		{"one event, one by a rule", []*platform.NotificationJob{derived(ev1), direct(uuid1, "rul01")}, true, notify.WhyPaths,
			[]string{"Two paths", "one created by automation rule rul01 (CausedByRule rul01: job " + uuid1 + ")"}},
		{"two occurrences and a direct job", []*platform.NotificationJob{derived(ev1), derived(ev2), direct(uuid1, "")}, true, notify.WhyPaths,
			[]string{"Three jobs on two paths", "two derived from events " + ev1 + " and " + ev2 + "; one created directly"}},
		{"two direct", []*platform.NotificationJob{direct(uuid1, ""), direct(uuid2, "")}, true, notify.WhyDirect,
			[]string{"Two direct requests (no shared Idempotency-Key)", "job " + uuid1 + " without an Idempotency-Key", "job " + uuid2}},
		{"direct and a rule's", []*platform.NotificationJob{direct(idem, ""), direct(uuid2, "rul02")}, true, notify.WhyDirect,
			[]string{"Two direct requests", "job " + idem + " under an Idempotency-Key of its own", "job " + uuid2 + " by automation rule rul02"}},
		{"one job", []*platform.NotificationJob{direct(uuid1, ""), direct(uuid1, "")}, true, notify.WhyOneJob,
			[]string{"One job (" + uuid1 + ")", "the key is the dedupe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []*platform.OutgoingMessage
			jobs := map[string]*platform.NotificationJob{}
			for i, j := range tc.jobs {
				m := &platform.OutgoingMessage{JobKey: j.Key, NotificationEventTypeID: 101, Recipient: platform.Recipient{Channel: "email", Address: "ada@example.com"},
					CreatedAt: time.Date(2026, 11, 22, 10, i, 0, 0, time.UTC)}
				m.Key = platform.MessageKey(j.Key, m.Recipient)
				if tc.read {
					jobs[j.Key] = j
				} else {
					m.CausedByRule = j.CausedByRule
				}
				msgs = append(msgs, m)
			}
			got := notify.WhyTwo(msgs, jobs)
			if got.Case != tc.want {
				t.Errorf("case %q, want %q: %s", got.Case, tc.want, got.Explanation)
			}
			for _, s := range tc.says {
				if !strings.Contains(got.Explanation, s) {
					t.Errorf("the explanation does not say %q:\n%s", s, got.Explanation)
				}
			}
		})
	}
}

// Messages of different types close together are a duplicate only when they came by two
// paths: an event's and a direct request's (or a rule's).
func TestWhyTwoAcrossTypes(t *testing.T) {
	name := func(id int) string {
		return map[int]string{101: "AttendeeNewProfile (101)", 201: "WelcomeEmail (201)"}[id]
	}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	derived := &platform.OutgoingMessage{Key: "a", NotificationEventTypeID: 101, CreatedAt: at,
		JobKey: "notification-job:101:11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.0000000Z:1"}
	direct := &platform.OutgoingMessage{Key: "b", NotificationEventTypeID: 201, CreatedAt: at.Add(3 * time.Second),
		JobKey: "3b241101-e2bb-4255-8caf-4136c566a962"}
	byRule := &platform.OutgoingMessage{Key: "c", NotificationEventTypeID: 201, CreatedAt: at.Add(time.Minute),
		JobKey: "notification-job:direct:00112233445566778899aabbccddeeff", CausedByRule: "rul01"}
	other := &platform.OutgoingMessage{Key: "d", NotificationEventTypeID: 201, CreatedAt: at,
		JobKey: "notification-job:201:12:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.0000000Z:2"}
	why, ok := notify.WhyTwoAcrossTypes([]*platform.OutgoingMessage{derived, direct}, nil, name)
	if !ok || why.Case != notify.WhyPathsAcrossTypes || !strings.Contains(why.Explanation, "Two notifications of different types within 3s") ||
		!strings.Contains(why.Explanation, "AttendeeNewProfile (101) derived from event 11:1:") || !strings.Contains(why.Explanation, "WelcomeEmail (201) created directly (job 3b241101") {
		t.Errorf("event and direct: %v %+v", ok, why)
	}
	if why, ok := notify.WhyTwoAcrossTypes([]*platform.OutgoingMessage{derived, byRule}, nil, name); !ok || !strings.Contains(why.Explanation, "by automation rule rul01") {
		t.Errorf("event and rule: %v %+v", ok, why)
	}
	if why, ok := notify.WhyTwoAcrossTypes([]*platform.OutgoingMessage{derived, other}, nil, name); ok {
		t.Errorf("two events, each its own type: explained as %+v, want no duplicate", why)
	}
}

// Occasions are found pair by pair, not in runs from a first message: two event-derived
// messages of two types 9 minutes apart, then a direct one 2 minutes after the second, group
// the second with the direct one; the first (10+ minutes before the direct) stays alone.
func TestAcrossTypesPairsAnEventsMessageWithADirectOneNearIt(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := func(key string, typ int, after time.Duration) *platform.OutgoingMessage {
		return &platform.OutgoingMessage{Key: key, NotificationEventTypeID: typ, CreatedAt: at.Add(after),
			JobKey: fmt.Sprintf("notification-job:%d:11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.0000000Z:1", typ)}
	}
	a, b := ev("a", 101, 0), ev("b", 102, 9*time.Minute)
	c := &platform.OutgoingMessage{Key: "c", NotificationEventTypeID: 201, CreatedAt: at.Add(11 * time.Minute), JobKey: "3b241101-e2bb-4255-8caf-4136c566a962"}
	groups := notify.AcrossTypes([]*platform.OutgoingMessage{a, b, c})
	if len(groups) != 1 || len(groups[0]) != 2 || groups[0][0] != b || groups[0][1] != c {
		var got [][]string
		for _, g := range groups {
			var keys []string
			for _, m := range g {
				keys = append(keys, m.Key)
			}
			got = append(got, keys)
		}
		t.Fatalf("groups %v, want [[b c]]", got)
	}
	if groups := notify.AcrossTypes([]*platform.OutgoingMessage{a, b}); len(groups) != 0 {
		t.Errorf("two events' messages of two types: %d groups, want none (each type on its own path)", len(groups))
	}
}
