package ui

import (
	"time"

	"github.com/keybrake/keybrake/internal/approval"
)

// The page's approvals: the held calls waiting for a person, each with
// exactly what it lets through, approved or denied from the page (with
// --allow-actions) as `keybrake approve ID` and `keybrake deny ID` do.

// pageApproval is an open approval as the page shows it.
type pageApproval struct {
	ID     string    `json:"id"`
	State  string    `json:"state"` // pending or approved
	Agent  string    `json:"agent"`
	Vendor string    `json:"vendor"`
	Rule   string    `json:"rule"`
	What   string    `json:"what"` // exactly what it lets through, once
	Asked  time.Time `json:"asked"`
	Until  time.Time `json:"until"` // it expires then
	By     string    `json:"by,omitempty"`
}

func pageApprovalOf(a *approval.Approval, now time.Time) pageApproval {
	p := pageApproval{ID: a.ID, State: string(a.State(now)), Agent: a.Request.Agent, Vendor: a.Request.Vendor,
		Rule: a.Request.Rule, What: a.Describe(), Asked: a.Request.Time, Until: a.Request.Time.Add(approval.DefaultTTL)}
	if d := a.Decision; d != nil {
		p.By, p.Until = d.By, d.Until
	}
	return p
}
