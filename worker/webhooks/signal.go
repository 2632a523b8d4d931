package webhooks

import (
	"context"

	"github.com/platform/platform/tables"
)

// SignalTopic is the change-bus topic (tables.Changes.PutSignal) that announces a change of
// webhook endpoints: every replica polls the bus each second, and rereads its endpoints when
// it reads one. The refresh every CacheTTL stays as a backstop (a signal lost to a failed
// write or read).
const SignalTopic = "webhook-endpoints"

// AnnounceOn makes Add and Disable announce their change on bus, so that every replica (the
// command line's change included) sees it within about a second. Without it, only this
// process sees a change at once, the others within their CacheTTL.
func (s *Service) AnnounceOn(bus *tables.Changes) { s.bus = bus }

// EndpointsChanged rereads the endpoints now: a change was announced (SignalTopic).
func (s *Service) EndpointsChanged(ctx context.Context) {
	if err := s.cache.reload(ctx); err != nil && ctx.Err() == nil {
		s.log.WithError(err).Warn("webhook endpoints: reread after a change failed; using the last list until the next refresh")
	}
}

// changed follows a change of endpoints made here: announced to every replica, then read at
// once by this one. The change is stored: a failed announcement is not the caller's error
// (retrying would add the endpoint twice), so it is logged, and the others see the change
// within their CacheTTL.
func (s *Service) changed(ctx context.Context) error {
	if s.bus != nil {
		if err := s.bus.PutSignal(ctx, SignalTopic); err != nil {
			s.log.WithError(err).Warn("webhook endpoints: announcing a change on the change bus failed; other replicas see it within their cache TTL")
		}
	}
	return s.cache.reload(ctx)
}
