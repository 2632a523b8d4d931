package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker/api"
)

func init() {
	pages = append(pages, page{"GET /console/attention", (*console).serveAttention})
}

// attentionView is what the Needs attention page shows: the API's answer, the window it
// covers, and whether the principal may act on it.
type attentionView struct {
	api.Attention
	Window  string   // the window as asked ("" the default)
	Windows []window // the windows offered
	Admin   bool
	Poison  []poisonQueue
	Notes   []string // the API's notes but the one the poison section says itself
}

type window struct {
	Value, Label string
	Current      bool
}

// poisonQueue is one work queue's poison section, with a trace link for each message whose
// body names a key.
type poisonQueue struct {
	api.AttentionPoison
	Rows []poisonRow
}

type poisonRow struct {
	api.PoisonSummary
	TraceKey string // the event, job or message key the body names; "" when none
}

// serveAttention is the Needs attention page: jobs in Conflict or Failed, messages Unknown,
// Failed or Conflict, and poison messages per queue, with the actions an admin may take on
// each (actions.go).
func (c *console) serveAttention(rw http.ResponseWriter, r *http.Request, s *session) {
	since := strings.TrimSpace(r.URL.Query().Get("since"))
	target := "/v1/attention"
	if since != "" {
		target += "?since=" + url.QueryEscape(since)
	}
	var a api.Attention
	if err := c.call(r, s, http.MethodGet, target, nil, &a); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	v := attentionView{Attention: a, Window: since, Admin: s.principal.Has(auth.Admin)}
	asked := true
	for _, w := range []window{{"24h", "last 24 hours", false}, {"", "last 7 days", false}, {"31d", "last 31 days", false}} {
		w.Current = w.Value == since
		asked = asked && !w.Current
		v.Windows = append(v.Windows, w)
	}
	if asked { // a window of the caller's own (?since=3d), which the API took
		v.Windows = append(v.Windows, window{Value: since, Label: "since " + since, Current: true})
	}
	for _, n := range a.Notes {
		if !strings.HasPrefix(n, "poison queues are shown only") {
			v.Notes = append(v.Notes, n)
		}
	}
	for _, q := range a.Poison {
		pq := poisonQueue{AttentionPoison: q}
		for _, it := range q.Items {
			pq.Rows = append(pq.Rows, poisonRow{PoisonSummary: it, TraceKey: namedKey(it.About)})
		}
		v.Poison = append(v.Poison, pq)
	}
	c.render(rw, r, s, http.StatusOK, "attention", view{Title: "Needs attention", Nav: "attention", Data: v})
}

// namedKey is the key a poison message's identification names ("event K", "job K",
// "message K"), to trace it; "" for anything else.
func namedKey(about string) string {
	for _, p := range []string{"event ", "job ", "message "} {
		if k, ok := strings.CutPrefix(about, p); ok && k != "" && !strings.HasSuffix(k, "…") {
			return k
		}
	}
	return ""
}
