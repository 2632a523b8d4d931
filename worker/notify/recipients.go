package notify

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
)

// checkRecipient is the one check every recipient passes, whatever its source: a direct job
// (refused with the job), a mapping reading event data or a subscriber row (refused alone, as
// a recorded skip). It returns r normalised, if its channel accepts the address (email: one
// bare address, no display name or domain literal; no control characters on any channel) and
// its message key fits in a table key.
func (s *Service) checkRecipient(ctx context.Context, jobKey string, r platform.Recipient) (platform.Recipient, error) {
	r = r.Normalize()
	if err := s.d.Channels.CheckRecipient(ctx, r); err != nil {
		return r, err
	}
	if n := platform.KeyLength(platform.MessageKey(jobKey, r)); n > platform.MaxKeyLength {
		return r, fmt.Errorf("address: too long: its message key would be %d characters once escaped for Azure Tables, at most %d", n, platform.MaxKeyLength)
	}
	return r, nil
}

// maxRefusalSteps bounds the steps a job's trail gives refused recipients (the trail keeps
// its last 30 steps; the rest are counted in one step).
const maxRefusalSteps = 10

// recipients are the job's own, else the renderer's from the data, else the business unit's
// subscribers: normalised, without duplicates or empty addresses, each checked. The refused
// ones come back as the steps that record them in the job's trail.
func (s *Service) recipients(ctx context.Context, job *platform.NotificationJob, r *mappings.Renderer, data map[string]any) ([]platform.Recipient, []platform.Step, error) {
	var out []platform.Recipient
	switch {
	case len(job.Recipients) > 0:
		out = job.Recipients
	case r.Recipients != nil:
		// From event data: a bare address, never a display name the event's writer chose.
		for _, rec := range r.Recipients(data) {
			rec.Name = ""
			out = append(out, rec)
		}
	case r.Subscribers:
		subs, err := s.d.Settings.Subscribers(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
		if err != nil {
			return nil, nil, err
		}
		for _, sub := range subs {
			out = append(out, platform.Recipient{Channel: sub.Channel, Address: sub.Address, Name: sub.DisplayName})
		}
	}
	seen := map[string]bool{}
	var uniq []platform.Recipient
	var refused []platform.Step
	for i, r := range out {
		r = r.Normalize()
		if r.Address == "" || seen[r.Channel+"|"+r.Address] {
			continue
		}
		seen[r.Channel+"|"+r.Address] = true
		checked, err := s.checkRecipient(ctx, job.Key, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if transient(err) {
				return nil, nil, err // a resolver that timed out says nothing about the address: retry
			}
			refused = append(refused, platform.NewStep("generator", "recipient refused", fmt.Sprintf("recipients[%d]: %v", i, err)))
			continue
		}
		uniq = append(uniq, checked)
	}
	if len(refused) > maxRefusalSteps {
		more := len(refused) - maxRefusalSteps + 1
		refused = append(refused[:maxRefusalSteps-1], platform.NewStep("generator", "recipient refused", fmt.Sprintf("and %d more", more)))
	}
	return uniq, refused, nil
}

// transient reports an error of the resolver rather than of the address (a webhook URL's host
// lookup that timed out or failed for now): the job is retried, not the recipient refused.
func transient(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTimeout || de.IsTemporary)
}
