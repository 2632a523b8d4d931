package mappings

// The example domain of docs/contracts.md, "Example domain": a child-care / activities business.
// These ids are persisted in keys and rows: never renumber them.

// Entity types.
const (
	EntityAttendee             = 1
	EntityEmployee             = 2
	EntityIncident             = 3
	EntityBusinessUnitSettings = 4
	EntityConsumerAccount      = 5
)

// Event types.
const (
	EventCreateAttendee        = 11
	EventUpdateAttendee        = 12
	EventCreateEmployee        = 21
	EventUpdateEmployee        = 22
	EventSubmitIncident        = 31
	EventUpdateSettings        = 41
	EventCreateConsumerAccount = 51
)

// Notification types: 101-103 derived from events, 201-202 created directly.
const (
	NotificationAttendeeNewProfile = 101
	NotificationIncidentSubmitted  = 102
	NotificationSettingsUpdated    = 103
	NotificationWelcomeEmail       = 201
	NotificationPasswordReset      = 202
)

// RegisterExampleHistory registers a history rule for every example event type: one row on the
// entity's own timeline, and for Submit_Incident also one on the timeline of each attendee in
// payload.attendeeGuids.
func RegisterExampleHistory(r *HistoryRegistry) error {
	rules := []struct {
		eventTypeID int
		mapping     HistoryMapping
	}{
		{EventCreateAttendee, Hinted{Summary: "Attendee created"}},
		{EventUpdateAttendee, Hinted{Summary: "Attendee updated"}},
		{EventCreateEmployee, Hinted{Summary: "Employee created"}},
		{EventUpdateEmployee, Hinted{Summary: "Employee updated"}},
		{EventSubmitIncident, Multi{
			Hinted:         Hinted{Summary: "Incident submitted"},
			Related:        GUIDList("attendeeGuids", EntityAttendee),
			RelatedSummary: "Involved in a submitted incident",
		}},
		{EventUpdateSettings, Hinted{Summary: "Settings updated"}},
		{EventCreateConsumerAccount, Hinted{Summary: "Consumer account created"}},
	}
	for _, rule := range rules {
		if err := r.Register(rule.eventTypeID, rule.mapping); err != nil {
			return err
		}
	}
	return nil
}

// NotableSettings are the business-unit settings whose change users are told about.
var NotableSettings = []string{"openingHours", "holidayDates", "fees", "address", "contactPhone"}

// ExampleNotifications are the example notification types, each registered once with its
// path, its dedicated mapping (SettingsUpdated) and its renderer.
func ExampleNotifications() []NotificationType {
	return []NotificationType{
		{ID: NotificationAttendeeNewProfile, Name: "AttendeeNewProfile", Path: FromEvents, Render: &Renderer{
			Template:   "attendee-new-profile",
			Recipients: EmailField("guardianEmail"),
			Default: &Template{
				Subject: "A new profile for {{.Data.firstName}}",
				Text:    "Hello {{with .Recipient.Name}}{{.}}{{else}}there{{end}},\n\n{{.Data.firstName}} {{.Data.lastName}} now has a profile with us.\n",
				HTML:    "<p>Hello {{with .Recipient.Name}}{{.}}{{else}}there{{end}},</p><p>{{.Data.firstName}} {{.Data.lastName}} now has a profile with us.</p>",
			},
		}},
		{ID: NotificationIncidentSubmitted, Name: "IncidentSubmitted", Path: FromEvents, Render: &Renderer{
			Template:    "incident-submitted",
			Subscribers: true,
			Default: &Template{
				Subject: "Incident submitted: {{.Data.summary}}",
				Text:    "An incident was submitted in business unit {{.Job.BusinessUnitID}}:\n\n{{.Data.summary}}\n",
				HTML:    "<p>An incident was submitted in business unit {{.Job.BusinessUnitID}}:</p><p>{{.Data.summary}}</p>",
			},
		}},
		// SettingsUpdated: Update_Settings notifies only when a setting users are told about
		// changed (a dedicated mapping: no hint).
		{ID: NotificationSettingsUpdated, Name: "SettingsUpdated", Path: FromEvents,
			Mappings: map[int]NotificationMapping{EventUpdateSettings: ChangedFieldsMapping{Notable: NotableSettings}},
			Render: &Renderer{
				Template:    "settings-updated",
				Subscribers: true,
				Default: &Template{
					Subject: "Settings changed",
					Text:    "These settings changed: {{range $i, $f := .Data.changedFields}}{{if $i}}, {{end}}{{$f}}{{end}}.\n",
					HTML:    "<p>These settings changed: {{range $i, $f := .Data.changedFields}}{{if $i}}, {{end}}{{$f}}{{end}}.</p>",
				},
			}},
		{ID: NotificationWelcomeEmail, Name: "WelcomeEmail", Path: Direct, Render: &Renderer{
			Template: "welcome-email",
			Default: &Template{
				Subject: "Welcome{{with .Data.firstName}}, {{.}}{{end}}",
				Text:    "Welcome{{with .Data.firstName}}, {{.}}{{end}}! Your account is ready.\n",
				HTML:    "<p>Welcome{{with .Data.firstName}}, {{.}}{{end}}! Your account is ready.</p>",
			},
		}},
		{ID: NotificationPasswordReset, Name: "PasswordReset", Path: Direct, Render: &Renderer{
			Template: "password-reset",
			Default: &Template{
				Subject: "Reset your password",
				Text:    "Use this link to reset your password: {{.Data.resetUrl}}\n",
				HTML:    `<p><a href="{{.Data.resetUrl}}">Reset your password</a></p>`,
			},
		}},
	}
}
