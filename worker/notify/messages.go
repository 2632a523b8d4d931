package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Windows of MessagesTo.
const (
	DefaultMessagesWindow = 7 * 24 * time.Hour
	MaxMessagesWindow     = 31 * 24 * time.Hour
	// MaxAddressMessages is how many messages one answer lists, newest first.
	MaxAddressMessages = 200
	// maxWhyTwoJobs bounds the job rows read to explain duplicates; past it, a job is
	// explained from its key.
	maxWhyTwoJobs = 100
)

// MessagesOptions select the messages of MessagesTo.
type MessagesOptions struct {
	// Since and Until bound when the messages were created: [Since, Until). Until defaults to
	// now, Since to DefaultMessagesWindow before Until; at most MaxMessagesWindow apart.
	Since, Until time.Time
	// Visible, when set, says whether the reader may see a business unit's messages; Units,
	// when not nil, lists the units it sees (the scan names them in its filter).
	Visible func(businessUnitID int64) bool
	Units   []int64
}

// AddressMessages are the messages to one email address in a window, and why some are two.
type AddressMessages struct {
	Address  string           `json:"address"`
	Since    time.Time        `json:"since"`
	Until    time.Time        `json:"until"`
	Messages []AddressMessage `json:"messages"`
	// More: more messages matched than are listed (the newest MaxAddressMessages are).
	More bool `json:"more,omitempty"`
	// Incomplete: the scan stopped before the end of the table; narrow the window.
	Incomplete bool `json:"incomplete,omitempty"`
	// Duplicates are the groups of two or more listed messages of one notification type.
	Duplicates []Duplicate `json:"duplicates"`
}

// AddressMessage is where one message is: never what it says.
type AddressMessage struct {
	MessageKey              string                `json:"messageKey"`
	JobKey                  string                `json:"jobKey"`
	NotificationEventTypeID int                   `json:"notificationEventTypeId"`
	NotificationType        string                `json:"notificationType,omitempty"` // its name, when registered
	BusinessUnitID          int64                 `json:"businessUnitId"`
	Channel                 string                `json:"channel"`
	Recipient               platform.Recipient    `json:"recipient"`
	State                   platform.MessageState `json:"state"`
	Attempts                int                   `json:"attempts"`
	ProviderID              string                `json:"providerId,omitempty"`
	CreatedAt               time.Time             `json:"createdAt"`
	CausedByRule            string                `json:"causedByRule,omitempty"`
}

// Duplicate is a group of messages to the address of one notification type, and why there
// is more than one.
type Duplicate struct {
	NotificationEventTypeID int      `json:"notificationEventTypeId"`
	NotificationType        string   `json:"notificationType,omitempty"`
	MessageKeys             []string `json:"messageKeys"` // oldest first
	Why
}

// MessagesTo lists the messages to an email address created in a window, newest first (at
// most MaxAddressMessages), and explains each group of two or more of one notification type
// (WhyTwo), reading the jobs of the group's messages. It scans table OutgoingMessages
// (tables.Messages.ToAddress): its cost is the table's size. An address that is not one, or
// a bad window, is platform.ErrInvalidInput.
func (s *Service) MessagesTo(ctx context.Context, address string, o *MessagesOptions) (*AddressMessages, error) {
	var opts MessagesOptions
	if o != nil {
		opts = *o
	}
	addr, err := emailAddress(address)
	if err != nil {
		return nil, err
	}
	until := cmp.Or(opts.Until, time.Now()).UTC()
	since := cmp.Or(opts.Since, until.Add(-DefaultMessagesWindow)).UTC()
	switch {
	case !since.Before(until):
		return nil, fmt.Errorf("%w: since: want before until", platform.ErrInvalidInput)
	case until.Sub(since) > MaxMessagesWindow:
		return nil, fmt.Errorf("%w: the window is %s long: at most 31 days", platform.ErrInvalidInput, until.Sub(since).Round(time.Hour))
	}
	res, err := s.d.Tables.Messages().ToAddress(ctx, tables.AddressQuery{Channel: platform.ChannelEmail, Address: addr,
		Since: since, Until: until, Units: opts.Units, Limit: MaxAddressMessages})
	if err != nil {
		return nil, err
	}
	out := &AddressMessages{Address: addr, Since: since, Until: until, More: res.More, Incomplete: res.Incomplete,
		Messages: []AddressMessage{}, Duplicates: []Duplicate{}}
	var shown []*platform.OutgoingMessage
	for _, m := range res.Messages {
		if opts.Visible != nil && !opts.Visible(m.BusinessUnitID) {
			continue
		}
		shown = append(shown, m)
		out.Messages = append(out.Messages, AddressMessage{MessageKey: platform.ShownKey(m.Key), JobKey: m.JobKey,
			NotificationEventTypeID: m.NotificationEventTypeID, NotificationType: s.typeName(m.NotificationEventTypeID),
			BusinessUnitID: m.BusinessUnitID, Channel: m.Recipient.Channel, Recipient: m.Recipient.Shown(), State: m.State,
			Attempts: m.Attempts, ProviderID: m.ProviderID, CreatedAt: m.CreatedAt, CausedByRule: m.CausedByRule})
	}
	out.Duplicates, err = s.duplicates(ctx, shown)
	return out, err
}

// duplicates groups ms (newest first) by notification type and explains each group of two or
// more, oldest message first; the groups come in the order of their newest message.
func (s *Service) duplicates(ctx context.Context, ms []*platform.OutgoingMessage) ([]Duplicate, error) {
	groups := map[int][]*platform.OutgoingMessage{}
	var order []int
	for _, m := range ms {
		if _, ok := groups[m.NotificationEventTypeID]; !ok {
			order = append(order, m.NotificationEventTypeID)
		}
		groups[m.NotificationEventTypeID] = append(groups[m.NotificationEventTypeID], m)
	}
	out := []Duplicate{}
	jobs := map[string]*platform.NotificationJob{}
	reads := 0
	for _, typ := range order {
		g := groups[typ]
		if len(g) < 2 {
			continue
		}
		slices.Reverse(g)
		d := Duplicate{NotificationEventTypeID: typ, NotificationType: s.typeName(typ)}
		for _, m := range g {
			d.MessageKeys = append(d.MessageKeys, platform.ShownKey(m.Key))
			if _, read := jobs[m.JobKey]; read || reads == maxWhyTwoJobs {
				continue
			}
			reads++
			job, _, err := s.jobs.Get(ctx, m.JobKey)
			switch {
			case errors.Is(err, platform.ErrNotFound):
				jobs[m.JobKey] = nil // explained from its key
			case err != nil:
				return nil, err
			default:
				jobs[m.JobKey] = job
			}
		}
		d.Why = WhyTwo(g, jobs)
		out = append(out, d)
	}
	return out, nil
}

func (s *Service) typeName(id int) string {
	t, _ := s.d.Types.Lookup(id)
	return t.Name
}

// emailAddress reads an email address as message keys hold it (lower case), refusing
// anything else: a display name, a list, a string with no @.
func emailAddress(address string) (string, error) {
	a := strings.TrimSpace(address)
	if a == "" {
		return "", fmt.Errorf("%w: address: required", platform.ErrInvalidInput)
	}
	if err := platform.CheckKeyLength("address", a); err != nil {
		return "", fmt.Errorf("%w: %v", platform.ErrInvalidInput, err)
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Address != a || p.Name != "" {
		return "", fmt.Errorf("%w: address: not an email address", platform.ErrInvalidInput)
	}
	return strings.ToLower(a), nil
}
