package ui

import (
	"net/http"
	"strconv"

	"github.com/keybrake/keybrake/audit"
)

type recordsAnswer struct {
	Records   []*audit.Record `json:"records"`
	Total     int             `json:"total"`
	Truncated bool            `json:"truncated"`
}

func (s *Server) records(w http.ResponseWriter, r *http.Request) {
	q, err := s.window(r.URL.Query(), "agent", "vendor", "decision", "customer", "limit")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := q.Limit
	if limit == 0 {
		limit = defaultRecords
	}
	q.Limit = 0 // counted to the end, kept to limit
	ans := recordsAnswer{Records: []*audit.Record{}}
	err = s.opts.Source.Query(r.Context(), q, func(rec *audit.Record) error {
		ans.Total++
		if len(ans.Records) < limit {
			ans.Records = append(ans.Records, rec)
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the records: "+err.Error())
		return
	}
	ans.Truncated = ans.Total > len(ans.Records)
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) record(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, "a record ID is a positive integer")
		return
	}
	var found *audit.Record
	err = s.opts.Source.Query(r.Context(), audit.Query{After: id - 1, Limit: 1}, func(rec *audit.Record) error {
		if rec.ID == id {
			found = rec
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the record: "+err.Error())
		return
	}
	if found == nil {
		writeError(w, http.StatusNotFound, "no record "+strconv.FormatUint(id, 10)+" (pruned, or never written)")
		return
	}
	writeJSON(w, http.StatusOK, found)
}
