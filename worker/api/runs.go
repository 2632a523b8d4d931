package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/runs"
)

// MaxRuns is the most runs one GET /v1/runs answers (and runs list prints).
const MaxRuns = 1000

// serveListRuns answers GET /v1/runs?agent=A&state=S&businessUnitId=N&limit=N: the runs of the
// principal's business units, newest first. A businessUnitId not the caller's is 404.
func (d *server) serveListRuns(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := tables.RunFilter{Agent: q.Get("agent"), State: tables.RunState(q.Get("state")), Limit: 50, Visible: principal(r).Visible()}
	if f.Agent != "" {
		if err := runs.CheckAgentName(f.Agent); err != nil {
			writeError(rw, http.StatusBadRequest, "agent: "+err.Error())
			return
		}
	}
	if f.State != "" && !slices.Contains(tables.RunStates, f.State) {
		writeError(rw, http.StatusBadRequest, fmt.Sprintf("state: want one of %v", tables.RunStates))
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxRuns {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("limit: want 1-%d", MaxRuns))
			return
		}
		f.Limit = n
	}
	if s := q.Get("businessUnitId"); s != "" {
		bu, err := strconv.ParseInt(s, 10, 64)
		if err != nil || bu <= 0 {
			writeError(rw, http.StatusBadRequest, "businessUnitId: want a positive integer")
			return
		}
		if !principal(r).Sees(bu) {
			writeError(rw, http.StatusNotFound, fmt.Sprintf("businessUnitId %d: no such business unit", bu))
			return
		}
		f.BusinessUnitID = bu
	}
	list, err := d.Runs.List(r.Context(), f)
	if err != nil {
		d.storageError(rw, "list runs", err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"items": list})
}

// serveRun answers GET /v1/runs/{id}: who started the run, its attempts, lease, timings and
// result or error.
func (d *server) serveRun(rw http.ResponseWriter, r *http.Request) {
	if run, ok := d.runOf(rw, r); ok {
		writeJSON(rw, http.StatusOK, run)
	}
}

// serveCancelRun cancels a run (again: 200, unchanged); one that ended otherwise is 409.
func (d *server) serveCancelRun(rw http.ResponseWriter, r *http.Request) {
	run, ok := d.runOf(rw, r)
	if !ok {
		return
	}
	run, err := d.Runs.Cancel(r.Context(), run.ID)
	switch {
	case errors.Is(err, runs.ErrFinished):
		writeError(rw, http.StatusConflict, err.Error())
	case err != nil:
		d.storageError(rw, "cancel run", err)
	default:
		writeJSON(rw, http.StatusOK, run)
	}
}

// serveReplayRun starts the run's next generation: 201 with the new run.
func (d *server) serveReplayRun(rw http.ResponseWriter, r *http.Request) {
	run, ok := d.runOf(rw, r)
	if !ok {
		return
	}
	next, err := d.Runs.Replay(r.Context(), run.ID)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		d.storageError(rw, "replay run", err)
	default:
		writeJSON(rw, http.StatusCreated, next)
	}
}

// runOf reads the run the path's {id} names if it belongs to one of the principal's business
// units, and notes its unit for the audit line. Another unit's run answers 404 exactly as one
// that does not exist; ok is false once an answer was written.
func (d *server) runOf(rw http.ResponseWriter, r *http.Request) (*runs.Run, bool) {
	id := r.PathValue("id")
	run, err := d.Runs.Get(r.Context(), id)
	switch {
	case errors.Is(err, platform.ErrNotFound) || (err == nil && !principal(r).Sees(run.BusinessUnitID)):
		writeError(rw, http.StatusNotFound, "no run "+id)
		return nil, false
	case err != nil:
		d.storageError(rw, "read run", err)
		return nil, false
	}
	noteUnit(r, run.BusinessUnitID)
	return run, true
}
