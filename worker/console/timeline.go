package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/platform/platform/worker/api"
)

func init() {
	pages = append(pages, page{"GET /console/timeline", (*console).serveTimeline})
}

// timelineView is what the timeline page shows: a page of GET /v1/timeline, each row with the
// link to its trace and its effects.
type timelineView struct {
	EntityType string
	Identity   string
	Rows       []timelineRowView
	Older      string // the next page; "" on the last
	Newest     string // the first page, when this is a later one
}

type timelineRowView struct {
	api.TimelineRow
	Trace       string // the row's event's trace
	Highlight   bool   // the row Find came for (row=)
	AnswerClass string
}

// serveTimeline shows ?type=N&id=IDENTITY's timeline, newest first, a page of GET
// /v1/timeline at a time (after= its next token), each row linking to its event's trace with
// what the occurrence caused inline; the row whose history event key is row= is highlighted.
func (c *console) serveTimeline(rw http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	typ, id, after, row := strings.TrimSpace(q.Get("type")), strings.TrimSpace(q.Get("id")), q.Get("after"), q.Get("row")
	n, id, ok := entity(typ, id)
	if !ok {
		c.fail(rw, r, s, &apiError{Status: http.StatusBadRequest, Message: "type and id: want a positive entity type and the entity's GUID or positive id"})
		return
	}
	typ = strconv.Itoa(n)
	target := "/v1/timeline/" + url.PathEscape(typ) + "/" + url.PathEscape(id)
	if after != "" {
		target += "?after=" + url.QueryEscape(after)
	}
	var page api.TimelinePage
	if err := c.call(r, s, http.MethodGet, target, nil, &page); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	link := func(after string) string {
		v := url.Values{"type": {typ}, "id": {id}}
		if after != "" {
			v.Set("after", after)
		}
		if row != "" {
			v.Set("row", row)
		}
		return "/console/timeline?" + v.Encode()
	}
	v := timelineView{EntityType: typ, Identity: id}
	if page.Next != "" {
		v.Older = link(page.Next)
	}
	if after != "" {
		v.Newest = link("")
	}
	for _, item := range page.Items {
		rv := timelineRowView{TimelineRow: item, Trace: "/console/trace?key=" + url.QueryEscape(item.EventKey),
			Highlight: row != "" && strings.EqualFold(item.HistoryEventKey, row)}
		if item.Answer != nil {
			rv.AnswerClass = answerClass(item.Answer.Tone)
		}
		v.Rows = append(v.Rows, rv)
	}
	c.render(rw, r, s, http.StatusOK, "timeline", view{Title: "Timeline", Query: typ + " " + id, Data: v})
}
