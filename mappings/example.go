package mappings

// The example domain of DESIGN §8: a child-care / activities business. These ids are persisted
// in keys and rows: never renumber them.

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
