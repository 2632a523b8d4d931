package api

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/platform/platform/auth"
)

// Policy is who may call a route: anyone (Public), or a principal holding Role. Every route
// declares one; the zero Policy is no declaration, and Handler refuses it.
type Policy struct {
	Public bool
	Role   auth.Role
}

// Public is the policy of the routes anyone may call: health and readiness, which say nothing
// sensitive.
var Public = Policy{Public: true}

// Needs is the policy of a route that needs role r.
func Needs(r auth.Role) Policy { return Policy{Role: r} }

// Check reports whether p declares exactly one thing: Public, or one known role.
func (p Policy) Check() error {
	switch {
	case p.Public && p.Role != "":
		return fmt.Errorf("public and role %s", p.Role)
	case p.Public:
		return nil
	case !slices.Contains(auth.Roles, p.Role):
		return fmt.Errorf("no policy (role %q)", p.Role)
	}
	return nil
}

func (p Policy) String() string {
	if p.Public {
		return "public"
	}
	return string(p.Role)
}

// Route is one route of the API and its policy.
type Route struct {
	Pattern string // as http.ServeMux reads it: "METHOD /path/{wildcard}"
	Policy  Policy
	serve   func(*server, http.ResponseWriter, *http.Request)
}

// routes is the API. A route is added here, with its policy, or not at all.
var routes = []Route{
	{"GET /healthz", Public, (*server).serveHealth},
	{"GET /readyz", Public, (*server).serveReady},
	{"GET /metrics", Needs(auth.Support), (*server).serveMetrics},
	{"GET /v1/history/{entityTypeId}/{identity}", Needs(auth.HistoryRead), (*server).serveHistory},
	{"POST /v1/notification-jobs", Needs(auth.NotificationsSend), (*server).serveCreateJob},
	{"POST /v1/notification-cancellations", Needs(auth.NotificationsSend), (*server).serveCancel},
	{"GET /v1/trace", Needs(auth.Support), (*server).serveTrace},
	// Support sees history rows through trace already: the timeline with its effects widens nothing.
	{"GET /v1/timeline/{entityTypeId}/{identity}", Needs(auth.Support), (*server).serveTimeline},
	{"GET /v1/attention", Needs(auth.Support), (*server).serveAttention},
	{"POST /v1/messages/mark-sent", Needs(auth.Admin), (*server).serveMarkSent},
	{"POST /v1/messages/resend", Needs(auth.Admin), (*server).serveResend},
	{"POST /v1/notification-jobs/cancel", Needs(auth.Admin), (*server).serveCancelJob},
	{"POST /v1/poison/{queue}/redrive", Needs(auth.Admin), (*server).serveRedrive},
	{"GET /v1/changes", Needs(auth.Support), (*server).serveChanges},
	{"GET /v1/settings/{businessUnitId}", Needs(auth.Support), (*server).serveSettings},
	{"GET /v1/messages", Needs(auth.Support), (*server).serveMessages},
	{"POST /v1/webhooks", Needs(auth.WebhooksManage), (*server).serveAddWebhook},
	{"GET /v1/webhooks", Needs(auth.WebhooksManage), (*server).serveListWebhooks},
	{"POST /v1/webhooks/{id}/disable", Needs(auth.WebhooksManage), (*server).serveDisableWebhook},
	{"POST /v1/webhooks/{id}/enable", Needs(auth.WebhooksManage), (*server).serveEnableWebhook},
	{"POST /v1/webhooks/{id}/rotate-secret", Needs(auth.WebhooksManage), (*server).serveRotateWebhookSecret},
	{"GET /v1/webhooks/{id}/deliveries", Needs(auth.WebhooksManage), (*server).serveWebhookDeliveries},
	{"POST /v1/webhooks/{id}/replay", Needs(auth.WebhooksManage), (*server).serveReplayWebhook},
	{"GET /v1/automations", Needs(auth.AutomationsManage), (*server).serveListAutomations},
	{"POST /v1/automations", Needs(auth.AutomationsManage), (*server).serveAddAutomation},
	{"GET /v1/automations/{id}", Needs(auth.AutomationsManage), (*server).serveGetAutomation},
	{"PUT /v1/automations/{id}", Needs(auth.AutomationsManage), (*server).serveUpdateAutomation},
	{"POST /v1/automations/{id}/enable", Needs(auth.AutomationsManage), (*server).serveEnableAutomation},
	{"POST /v1/automations/{id}/disable", Needs(auth.AutomationsManage), (*server).serveDisableAutomation},
	{"POST /v1/automations/{id}/test", Needs(auth.AutomationsManage), (*server).serveTestAutomation},
	{"GET /v1/automations/{id}/explain", Needs(auth.AutomationsManage), (*server).serveExplainAutomation},
	{"POST /v1/automations/{id}/replay", Needs(auth.AutomationsManage), (*server).serveReplayAutomation},
	{"GET /v1/runs", Needs(auth.AutomationsManage), (*server).serveListRuns},
	{"GET /v1/runs/{id}", Needs(auth.AutomationsManage), (*server).serveRun},
	{"POST /v1/runs/{id}/cancel", Needs(auth.AutomationsManage), (*server).serveCancelRun},
	{"POST /v1/runs/{id}/replay", Needs(auth.AutomationsManage), (*server).serveReplayRun},
}

// Routes lists the API's routes with their policies: the README's table and the tests that
// send every credential to every route read it.
func Routes() []Route { return slices.Clone(routes) }
