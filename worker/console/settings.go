package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/platform/platform/mappings"
	"github.com/platform/platform/worker/notify"
)

func init() {
	pages = append(pages, page{"GET /console/settings", (*console).serveSettings})
}

// settingsView is what the Settings page shows: a business unit's notification settings, read
// from GET /v1/settings/{bu}.
type settingsView struct {
	BU    string // as typed
	Units []int64
	Error string
	// Set when a unit was asked for and the API answered.
	Unit        int64
	Options     []optionRow
	Subscribers []notify.UnitSubscriber
	More        bool
	Types       []typeRow
}

type optionRow struct {
	Type     string
	Enabled  bool
	Channels string
	Delay    string
	Template string
}

type typeRow struct {
	Type, Kind, Comes, Recipients, Template string
	Seeded                                  bool
}

// serveSettings shows a business unit's NotificationOption and NotificationSubscriber rows,
// and which notification types are created directly, derived from events by their hint or by
// a dedicated mapping (the dual-path guardrail's sets), and whether the unit has an option for
// each. Read-only: settings are seeded with `platform seed`.
func (c *console) serveSettings(rw http.ResponseWriter, r *http.Request, s *session) {
	v := settingsView{BU: strings.TrimSpace(r.URL.Query().Get("bu"))}
	if !s.principal.AllUnits() {
		v.Units = s.principal.Units.IDs
		if v.BU == "" && len(v.Units) == 1 {
			v.BU = strconv.FormatInt(v.Units[0], 10)
		}
	}
	page := view{Title: "Settings", Nav: "settings", Data: &v}
	if v.BU == "" {
		c.render(rw, r, s, http.StatusOK, "settings", page)
		return
	}
	bu, err := strconv.ParseInt(v.BU, 10, 64)
	if err != nil || bu <= 0 {
		v.Error = "business unit: want a positive integer"
		c.render(rw, r, s, http.StatusBadRequest, "settings", page)
		return
	}
	var us notify.UnitSettings
	if err := c.call(r, s, http.MethodGet, "/v1/settings/"+strconv.FormatInt(bu, 10), nil, &us); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	page.Title = fmt.Sprintf("Settings of business unit %d", bu)
	v.Unit, v.Subscribers, v.More = bu, us.Subscribers, us.SubscribersMore
	defaults, templates := map[int]string{}, map[int]string{}
	for _, t := range us.Types {
		defaults[t.NotificationEventTypeID] = t.Template
	}
	for _, o := range us.Options {
		row := optionRow{Type: typeLabel(o.NotificationEventTypeID, o.NotificationType), Enabled: o.Enabled, Channels: strings.Join(o.Channels, ", "),
			Delay: "at once", Template: o.TemplateName}
		if o.DelaySeconds > 0 {
			row.Delay = (time.Duration(o.DelaySeconds) * time.Second).String()
		}
		if row.Template == "" && defaults[o.NotificationEventTypeID] != "" {
			row.Template = defaults[o.NotificationEventTypeID] + " (the type's default)"
		}
		templates[o.NotificationEventTypeID] = o.TemplateName
		v.Options = append(v.Options, row)
	}
	for _, t := range us.Types {
		row := typeRow{Type: typeLabel(t.NotificationEventTypeID, t.Name), Seeded: t.Seeded, Template: t.Template, Recipients: "the job's own, or from its data"}
		if tn := templates[t.NotificationEventTypeID]; tn != "" {
			row.Template = tn + " (this unit's option)"
		}
		if t.Subscribers {
			row.Recipients = "the job's own, else this unit's subscribers"
		}
		switch t.Kind {
		case mappings.KindDirect:
			row.Kind, row.Comes = "direct-only", "POST /v1/notification-jobs, platform notify, automation rules; an event's hint naming it is refused"
		case mappings.KindHint:
			row.Kind, row.Comes = "hint-derived", "events carrying notificationEventTypeId "+strconv.Itoa(t.NotificationEventTypeID)+"; a direct request for it is refused"
		case mappings.KindMapping:
			ets := make([]string, len(t.MappingEventTypes))
			for i, et := range t.MappingEventTypes {
				ets[i] = strconv.Itoa(et)
			}
			row.Kind, row.Comes = "mapping-derived", "events of type "+strings.Join(ets, ", ")+" that its mapping matches, and events carrying its hint; a direct request for it is refused"
		default:
			row.Kind = string(t.Kind)
		}
		v.Types = append(v.Types, row)
	}
	c.render(rw, r, s, http.StatusOK, "settings", page)
}

// typeLabel names a notification type: "102 IncidentSubmitted", or the id alone for one this
// worker does not register.
func typeLabel(id int, name string) string {
	if name == "" {
		return strconv.Itoa(id) + " (not registered)"
	}
	return strconv.Itoa(id) + " " + name
}
