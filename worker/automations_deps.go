package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/runs"
)

// automationDeps gives the automations concern its actions: the other concerns' own ways of
// creating a job, a delivery, a run or an event, each idempotent in its key.
func (w *Worker) automationDeps(types *mappings.NotificationRegistry) automations.Deps {
	return automations.Deps{
		Log: w.log, Store: w.settings, Decisions: w.tables.Decisions(), Claims: w.tables.Claims(), Blobs: w.blobs,
		Bus: w.tables.Changes(),
		Notify: func(ctx context.Context, a *automations.NotifyAction, bu int64, data json.RawMessage, key string, o automations.Origin) (string, error) {
			j, _, err := w.notify.CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: a.NotificationEventTypeID, BusinessUnitID: bu,
				EventData: data, Recipients: a.Recipients, CausedByRule: o.RuleID, ChainDepth: o.ChainDepth}, key)
			if err != nil {
				return "", err
			}
			return j.Key, nil
		},
		NotifyKey: func(a *automations.NotifyAction, bu int64, key string) string {
			return platform.DirectJobKey(a.NotificationEventTypeID, bu, key)
		},
		CheckNotify: func(a *automations.NotifyAction, bu int64) error {
			t, ok := types.Lookup(a.NotificationEventTypeID)
			if !ok || t.Path != mappings.Direct {
				return fmt.Errorf("%w: action.notify.notificationEventTypeId: %d is not a direct notification type (known: %v)",
					platform.ErrInvalidInput, a.NotificationEventTypeID, types.IDs(mappings.Direct))
			}
			return nil
		},
		Deliver: func(ctx context.Context, endpointID string, ev *platform.EntityEvent, key string, o automations.Origin) error {
			return w.webhooks.DeliverAs(ctx, endpointID, ev, key, o.RuleID, o.ChainDepth)
		},
		CheckEndpoint: w.webhooks.CheckEndpoint,
		StartRun: func(ctx context.Context, agent, key string, bu int64, input json.RawMessage, o automations.Origin) (string, error) {
			r, _, err := w.runs.Start(ctx, runs.StartRequest{Agent: agent, Key: key, BusinessUnitID: bu, Input: input,
				Origin: runs.Origin{RuleID: o.RuleID, RuleVersion: o.RuleVersion, EventKey: o.EventKey, CorrelationID: o.CorrelationID, ChainDepth: o.ChainDepth}})
			if err != nil {
				return "", err
			}
			return r.ID, nil
		},
		RunID:      runs.RunID,
		AgentKnown: func(agent string) bool { return w.runs != nil && w.runs.Known(agent) },
		Publish: func(ctx context.Context, ev *platform.EntityEvent) error {
			_, err := w.queues.Publish(ctx, ev)
			return err
		},
	}
}

// The settings database keeps the automation rules.

func (s *settingsDB) Rules(ctx context.Context) ([]settings.RuleRow, error) {
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	return db.Rules(ctx)
}

func (s *settingsDB) RuleVersions(ctx context.Context, id string) ([]settings.RuleRow, error) {
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	return db.RuleVersions(ctx, id)
}

func (s *settingsDB) PutRuleVersion(ctx context.Context, r settings.RuleRow) error {
	db, err := s.open()
	if err != nil {
		return err
	}
	return db.PutRuleVersion(ctx, r)
}
