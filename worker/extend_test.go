package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/notify"
)

// pigeon is a delivery channel defined only here: a new channel is a type with Send and
// CheckAddress, and one registration (Config.Channels). Nothing of the worker changes.
type pigeon struct {
	mu   sync.Mutex
	sent []*platform.OutgoingMessage
}

func (p *pigeon) CheckAddress(_ context.Context, loft string) error {
	if !strings.HasPrefix(loft, "loft-") {
		return fmt.Errorf("%q is not a loft (want loft-N)", loft)
	}
	return nil
}

func (p *pigeon) Send(_ context.Context, m *platform.OutgoingMessage) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m)
	return fmt.Sprintf("pigeon %d", len(p.sent)), nil
}

func (p *pigeon) messages() []*platform.OutgoingMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*platform.OutgoingMessage(nil), p.sent...)
}

const (
	notifyLoftMoved       = 301 // direct
	notifyAttendeeRenamed = 302 // derived from Update_Attendee when lastName changed
)

// Each new notification type is one registration: its id, name and path, its mapping (for a
// type derived from events), and its renderer.
var newTypes = []mappings.NotificationType{
	{ID: notifyLoftMoved, Name: "LoftMoved", Path: mappings.Direct, Render: &mappings.Renderer{
		Template: "loft-moved", Default: &mappings.Template{Subject: "Your loft moved to {{.Data.where}}", Text: "See you at {{.Data.where}}."}}},
	{ID: notifyAttendeeRenamed, Name: "AttendeeRenamed", Path: mappings.FromEvents,
		Mappings: map[int]mappings.NotificationMapping{mappings.EventUpdateAttendee: mappings.ChangedFieldsMapping{Notable: []string{"lastName"}}},
		Render: &mappings.Renderer{Template: "attendee-renamed", Subscribers: true,
			Default: &mappings.Template{Subject: "Renamed: {{.Data.settings.lastName}}", Text: "An attendee is now called {{.Data.settings.lastName}}."}}},
}

func TestANewChannelAndNewNotificationTypesAreOneRegistrationEach(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, notifyLoftMoved, true, "pigeon", 0),
		option(42, notifyAttendeeRenamed, true, "pigeon", 0), subscriber(42, notifyAttendeeRenamed, "pigeon", "loft-9"))
	birds := &pigeon{}
	cfg := env.config()
	cfg.Channels = map[string]delivery.Channel{"pigeon": birds}
	cfg.NotificationTypes = append(mappings.ExampleNotifications(), newTypes...)
	w := env.start(cfg)
	ctx := context.Background()

	// The channel checks its addresses at the door, as the built-in ones do.
	_, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: notifyLoftMoved, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "pigeon", Address: "the roof"}}}, "")
	if !errors.Is(err, notify.ErrInvalidJob) || !strings.Contains(err.Error(), "not a loft") {
		t.Fatalf("a bad pigeon address: %v", err)
	}
	job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: notifyLoftMoved, BusinessUnitID: 42,
		EventData: []byte(`{"where":"the old mill"}`), Recipients: []platform.Recipient{{Channel: "pigeon", Address: "loft-7"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	renamed := `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"` + attendee + `","businessUnitId":42,` +
		`"createdOn":"2026-11-22T10:00:00Z","changedFields":["lastName"],"payload":{"lastName":"Byron"}}`
	send(t, w, renamed, renamed) // delivered twice: one notification
	drain(t, w)

	got := birds.messages()
	if len(got) != 2 {
		t.Fatalf("the pigeon carried %d messages, want 2: %+v", len(got), got)
	}
	subjects := []string{got[0].Subject, got[1].Subject}
	if !(strings.Contains(strings.Join(subjects, "|"), "Your loft moved to the old mill") && strings.Contains(strings.Join(subjects, "|"), "Renamed: Byron")) {
		t.Fatalf("subjects %q", subjects)
	}
	generated := onlyJob(t, trace(t, w, job.Key))
	if generated.State != platform.JobGenerated || len(generated.MessageKeys) != 1 {
		t.Fatalf("job %s (%s), messages %v", generated.State, generated.Reason, generated.MessageKeys)
	}
	tr := trace(t, w, generated.MessageKeys[0])
	if m := tr.Jobs[0].Messages[0]; m.State != platform.MessageSent || m.ProviderID != "pigeon 1" && m.ProviderID != "pigeon 2" {
		t.Fatalf("message %s by %q", m.State, m.ProviderID)
	}
}

// A registration that is not whole is refused when the worker is made, with one line naming
// the type: no renderer, both paths, an id twice.
func TestIncompleteNotificationRegistrationsAreRefusedNamingTheType(t *testing.T) {
	t.Parallel()
	render := &mappings.Renderer{Template: "t", Default: &mappings.Template{Subject: "s", Text: "t"}}
	for _, tc := range []struct {
		name string
		add  mappings.NotificationType
		want string
	}{
		{"no renderer", mappings.NotificationType{ID: 401, Name: "Mute", Path: mappings.Direct},
			"notification type 401 (Mute): no renderer"},
		{"mappings on a direct type", mappings.NotificationType{ID: 402, Name: "Both", Path: mappings.Direct, Render: render,
			Mappings: map[int]mappings.NotificationMapping{11: mappings.ChangedFieldsMapping{Notable: []string{"x"}}}},
			"notification type 402 (Both) is direct but has event mappings"},
		{"an id on the other path", mappings.NotificationType{ID: mappings.NotificationWelcomeEmail, Name: "WelcomeFromEvents", Path: mappings.FromEvents, Render: render},
			"notification type 201 (WelcomeFromEvents) is registered both as direct and as derived from events"},
		{"an id twice", mappings.NotificationType{ID: mappings.NotificationWelcomeEmail, Name: "WelcomeAgain", Path: mappings.Direct, Render: render},
			"notification type 201 (WelcomeAgain) is registered twice"},
		{"no path", mappings.NotificationType{ID: 403, Name: "Nowhere", Render: render},
			"notification type 403 (Nowhere): want a path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := worker.New(worker.Config{NotificationTypes: append(mappings.ExampleNotifications(), tc.add)})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line starting %q", err, tc.want)
			}
		})
	}
}
