package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
)

// ScanProvider is the bounded scan-repair path of a source without an outbox: it lists the
// events of a time window, a batch at a time, so that what may have been missed can be
// published again. Safe because every effect is keyed: an event published twice has its
// effects once.
type ScanProvider interface {
	// Name identifies the provider and its watermark.
	Name() string
	// Window is the most time one scan covers, BatchSize the most events it returns, Lag how
	// far behind now the scan stays (so it never races writes still in flight).
	Window() time.Duration
	BatchSize() int
	Lag() time.Duration
	// Scan lists up to limit events with createdOn in [from, to), oldest first, and the
	// instant the next scan starts from: the last event's time when the batch was full (a
	// provider must return every event at that instant in one batch), else to.
	Scan(ctx context.Context, from, to time.Time, limit int) (events []*platform.EntityEvent, next time.Time, err error)
}

// ScanResult is what one scan-repair run did.
type ScanResult struct {
	Provider  string    `json:"provider"`
	From      time.Time `json:"from"`
	Watermark time.Time `json:"watermark"`
	Published int       `json:"published"`
}

// scanRepair runs provider p from its watermark (or since, when given) up to now − lag, a
// window and a batch at a time, publishing every event and advancing the watermark with an
// ETag-conditional update after each batch: two runners never both advance it, and a crash
// repeats at most one batch.
func (s *Service) scanRepair(ctx context.Context, p ScanProvider, since time.Time) (ScanResult, error) {
	res := ScanResult{Provider: p.Name()}
	wm, etag, err := s.wm.Get(ctx, p.Name())
	if err != nil {
		return res, err
	}
	if !since.IsZero() {
		wm = since
	}
	if wm.IsZero() {
		wm = time.Now().Add(-p.Window()) // first run: one window back
	}
	res.From, res.Watermark = wm, wm
	end := time.Now().Add(-p.Lag())
	for wm.Before(end) {
		to := wm.Add(p.Window())
		if to.After(end) {
			to = end
		}
		events, next, err := p.Scan(ctx, wm, to, p.BatchSize())
		if err != nil {
			return res, fmt.Errorf("scan %s [%s, %s): %w", p.Name(), wm.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		for _, ev := range events {
			if _, err := s.queues.Publish(ctx, ev); err != nil {
				return res, err
			}
			res.Published++
		}
		if !next.After(wm) {
			next = to // a provider that cannot move forward must not loop
		}
		if etag, err = s.wm.Advance(ctx, p.Name(), next, etag); err != nil {
			if errors.Is(err, platform.ErrConflict) {
				s.log.WithField("provider", p.Name()).Info("scan-repair: another runner advanced the watermark; stopping")
				return res, nil
			}
			return res, err
		}
		wm, res.Watermark = next, next
	}
	s.log.WithFields(logrus.Fields{"provider": p.Name(), "published": res.Published, "watermark": wm}).Info("scan-repair done")
	return res, nil
}

// ScanRepair runs the named provider (all when name is "") once, from since when it is not
// zero, else from each provider's watermark.
func (s *Service) ScanRepair(ctx context.Context, name string, since time.Time) ([]ScanResult, error) {
	var out []ScanResult
	found := false
	providers := append([]ScanProvider{EventLogProvider{Log: s.eventLog, Blobs: s.blobs, Logger: s.log}}, s.cfg.ScanProviders...)
	for _, p := range providers {
		if name == "" && p.Name() == "event-log" {
			continue // a full replay: only when asked for by name
		}
		if name != "" && p.Name() != name {
			continue
		}
		found = true
		r, err := s.scanRepair(ctx, p, since)
		out = append(out, r)
		if err != nil {
			return out, err
		}
	}
	if !found && name != "" {
		var names []string
		for _, p := range providers {
			names = append(names, p.Name())
		}
		return nil, fmt.Errorf("%w: no scan provider %q (known: %v)", platform.ErrInvalidInput, name, names)
	}
	return out, nil
}

// EventLogProvider re-publishes the events of PlatformEventLog: the repair path when events
// were materialized but their effects may be missing (a queue lost, a poison message fixed).
type EventLogProvider struct {
	Log *tables.EventLog
	// Blobs stores again, under its business unit's scoped name, the payload of a row written
	// before scoped claim-check names (blobs.Client.RescopeEventPayload).
	Blobs *blobs.Client
	// Logger hears of the rows skipped (default: logrus's standard logger).
	Logger logrus.FieldLogger
}

func (EventLogProvider) Name() string          { return "event-log" }
func (EventLogProvider) Window() time.Duration { return time.Hour }
func (EventLogProvider) BatchSize() int        { return 500 }
func (EventLogProvider) Lag() time.Duration    { return time.Minute }

// Scan implements ScanProvider over the log's day partitions (the window is the SourceKey's
// time, when the event was materialized).
func (p EventLogProvider) Scan(ctx context.Context, from, to time.Time, limit int) ([]*platform.EntityEvent, time.Time, error) {
	recs, err := p.Log.Scan(ctx, from, to, limit)
	if err != nil {
		return nil, time.Time{}, err
	}
	out := make([]*platform.EntityEvent, 0, len(recs))
	for _, r := range recs {
		ev, err := p.event(ctx, r)
		if blobs.IsPayloadRefused(err) || platform.IsPermanent(err) {
			// One row that can never be published must not stop the scan (nor its watermark):
			// it is skipped, and support is told.
			log := p.Logger
			if log == nil {
				log = logrus.StandardLogger()
			}
			log.WithError(err).WithField("sourceKey", r.SourceKey).Error("scan-repair: event-log row skipped: it can never be published")
			continue
		}
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("log row %s: %w", r.SourceKey, err)
		}
		out = append(out, ev)
	}
	next := to
	if len(recs) == limit {
		t, _ := platform.SourceKeyTime(recs[len(recs)-1].SourceKey)
		next = t.Add(time.Millisecond)
	}
	return out, next, nil
}

// event is the event of log row r, its payload stored under its business unit's scoped name
// if the row was written before scoped names.
func (p EventLogProvider) event(ctx context.Context, r tables.LogRecord) (*platform.EntityEvent, error) {
	ev, err := platform.DecodeStoredEvent([]byte(r.PayloadJSON))
	if err != nil || p.Blobs == nil {
		return ev, err
	}
	return p.Blobs.RescopeEventPayload(ctx, ev)
}
