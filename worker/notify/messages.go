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
	// Incomplete: the scan read its bound of requests and the table is larger: more messages
	// may match. A narrower window does not help: CreatedAt is not a key, so the scan reads
	// as much.
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
// is more than one; or (case paths-types) of several types close together that came by two
// paths: NotificationEventTypeID is then 0 and NotificationType names them all.
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
// more, oldest message first; the groups come in the order of their newest message. Then it
// explains messages of different types that came by two paths within AcrossTypesWindow of each
// other (WhyTwoAcrossTypes): the dual-path case across types.
func (s *Service) duplicates(ctx context.Context, ms []*platform.OutgoingMessage) ([]Duplicate, error) {
	jobs := map[string]*platform.NotificationJob{}
	reads := 0
	// read reads the jobs of g's messages, once each and at most maxWhyTwoJobs in all; a job
	// not read is explained from its key.
	read := func(g []*platform.OutgoingMessage) error {
		for _, m := range g {
			if _, done := jobs[m.JobKey]; done || reads == maxWhyTwoJobs {
				continue
			}
			reads++
			job, _, err := s.jobs.Get(ctx, m.JobKey)
			switch {
			case errors.Is(err, platform.ErrNotFound):
				jobs[m.JobKey] = nil
			case err != nil:
				return err
			default:
				jobs[m.JobKey] = job
			}
		}
		return nil
	}
	keys := func(g []*platform.OutgoingMessage) []string {
		out := make([]string, len(g))
		for i, m := range g {
			out[i] = platform.ShownKey(m.Key)
		}
		return out
	}
	groups := map[int][]*platform.OutgoingMessage{}
	var order []int
	for _, m := range ms {
		if _, ok := groups[m.NotificationEventTypeID]; !ok {
			order = append(order, m.NotificationEventTypeID)
		}
		groups[m.NotificationEventTypeID] = append(groups[m.NotificationEventTypeID], m)
	}
	out := []Duplicate{}
	for _, typ := range order {
		g := slices.Clone(groups[typ])
		if len(g) < 2 {
			continue
		}
		slices.Reverse(g)
		if err := read(g); err != nil {
			return nil, err
		}
		out = append(out, Duplicate{NotificationEventTypeID: typ, NotificationType: s.typeName(typ), MessageKeys: keys(g), Why: WhyTwo(g, jobs)})
	}
	asc := slices.Clone(ms)
	slices.Reverse(asc)
	for _, run := range AcrossTypes(asc) {
		if err := read(run); err != nil {
			return nil, err
		}
		if why, ok := WhyTwoAcrossTypes(run, jobs, s.typeLabel); ok {
			out = append(out, Duplicate{NotificationType: s.typeLabels(run), MessageKeys: keys(run), Why: why})
		}
	}
	return out, nil
}

// typeLabel names type id as support reads it: "WelcomeEmail (201)", or "type 201".
func (s *Service) typeLabel(id int) string {
	if n := s.typeName(id); n != "" {
		return fmt.Sprintf("%s (%d)", n, id)
	}
	return fmt.Sprintf("type %d", id)
}

// typeLabels names the types of ms, in order of first appearance, joined with "and".
func (s *Service) typeLabels(ms []*platform.OutgoingMessage) string {
	var ids []int
	for _, m := range ms {
		if !slices.Contains(ids, m.NotificationEventTypeID) {
			ids = append(ids, m.NotificationEventTypeID)
		}
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = s.typeLabel(id)
	}
	return list(names)
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
