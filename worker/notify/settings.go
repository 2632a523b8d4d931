package notify

import (
	"context"
	"slices"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/settings"
)

// MaxUnitSubscribers is how many subscribers UnitSettings lists.
const MaxUnitSubscribers = 1000

// UnitSettings are a business unit's notification settings as support reads them: its
// NotificationOption and NotificationSubscriber rows, and every registered notification type
// with the path its jobs come by (the dual-path guardrail's sets) and whether the unit has an
// option for it.
type UnitSettings struct {
	BusinessUnitID int64            `json:"businessUnitId"`
	Options        []UnitOption     `json:"options"`
	Subscribers    []UnitSubscriber `json:"subscribers"`
	// SubscribersMore: the unit has more than MaxUnitSubscribers subscribers; the first are
	// listed.
	SubscribersMore bool       `json:"subscribersMore,omitempty"`
	Types           []UnitType `json:"types"`
}

// UnitOption is one NotificationOption row.
type UnitOption struct {
	NotificationEventTypeID int      `json:"notificationEventTypeId"`
	NotificationType        string   `json:"notificationType,omitempty"` // its name; none for a type not registered
	Enabled                 bool     `json:"enabled"`
	Channels                []string `json:"channels"`
	DelaySeconds            int      `json:"delaySeconds"`
	TemplateName            string   `json:"templateName,omitempty"` // none: the type's default
}

// UnitSubscriber is one NotificationSubscriber row; a webhook address is redacted, as a trace
// shows recipients (its query may carry a credential).
type UnitSubscriber struct {
	NotificationEventTypeID int    `json:"notificationEventTypeId"`
	NotificationType        string `json:"notificationType,omitempty"`
	Channel                 string `json:"channel"`
	Address                 string `json:"address"`
	DisplayName             string `json:"displayName,omitempty"`
}

// UnitType is a registered notification type, for one business unit.
type UnitType struct {
	NotificationEventTypeID int    `json:"notificationEventTypeId"`
	Name                    string `json:"name"`
	// Kind is direct (created directly only), hint (derived from events by their hint) or
	// mapping (derived by dedicated mappings of MappingEventTypes, and by a hint).
	Kind              mappings.Kind `json:"kind"`
	MappingEventTypes []int         `json:"mappingEventTypes,omitempty"`
	Template          string        `json:"template"` // the default template
	// Subscribers: without recipients of its own, a job of the type goes to the unit's
	// subscribers.
	Subscribers bool `json:"subscribers,omitempty"`
	// Seeded: the unit has a NotificationOption row for the type; without one, its jobs are
	// skipped (option-not-seeded).
	Seeded bool `json:"seeded"`
}

// UnitSettings reads the notification settings of businessUnitID.
func (s *Service) UnitSettings(ctx context.Context, businessUnitID int64) (*UnitSettings, error) {
	opts, err := s.d.Settings.UnitOptions(ctx, businessUnitID)
	if err != nil {
		return nil, err
	}
	subs, more, err := s.d.Settings.UnitSubscribers(ctx, businessUnitID, MaxUnitSubscribers)
	if err != nil {
		return nil, err
	}
	out := &UnitSettings{BusinessUnitID: businessUnitID, Options: []UnitOption{}, Subscribers: []UnitSubscriber{}, SubscribersMore: more,
		Types: []UnitType{}}
	for _, o := range opts {
		channels := o.Channels
		if channels == nil {
			channels = []string{}
		}
		out.Options = append(out.Options, UnitOption{NotificationEventTypeID: o.NotificationTypeID, NotificationType: s.typeName(o.NotificationTypeID),
			Enabled: o.IsEnabled, Channels: channels, DelaySeconds: o.DelaySeconds, TemplateName: o.TemplateName})
	}
	for _, sub := range subs {
		r := platform.Recipient{Channel: sub.Channel, Address: sub.Address}.Shown()
		out.Subscribers = append(out.Subscribers, UnitSubscriber{NotificationEventTypeID: sub.NotificationTypeID, NotificationType: s.typeName(sub.NotificationTypeID),
			Channel: r.Channel, Address: r.Address, DisplayName: sub.DisplayName})
	}
	for _, t := range s.d.Types.Types() {
		out.Types = append(out.Types, UnitType{NotificationEventTypeID: t.ID, Name: t.Name, Kind: t.Kind(), MappingEventTypes: t.MappingEventTypes(),
			Template: t.Render.Template, Subscribers: t.Render.Subscribers,
			Seeded: slices.ContainsFunc(opts, func(o settings.UnitOption) bool { return o.NotificationTypeID == t.ID })})
	}
	return out, nil
}
