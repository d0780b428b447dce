package ui

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/approval"
)

// What "now" shows besides the counters reads records, which a page
// redrawing on every change must not do each time: the day's spend per
// hour and what the shadow policy decided otherwise (admin.Source.Status
// reads every record of the day), and the approvals still open (the held
// calls of the last day). Each is computed in the background, at most
// every so often, and the page shows the latest.

// spendEvery and approvalsEvery are how stale each may be.
const (
	spendEvery     = 10 * time.Second
	approvalsEvery = 2 * time.Second
)

// dayRecords is what the day's records say: spend and shadow.
type dayRecords struct {
	day    string
	spend  []admin.AgentSpend
	shadow []admin.ShadowAgent
}

// background keeps the latest value of compute, asked for at most every
// `every`, and never more than one computation at a time.
type background[T any] struct {
	every   time.Duration
	compute func(ctx context.Context) (T, error)
	what    string // for the log: "the day's spend per hour"

	mu      sync.Mutex
	have    bool
	at      time.Time // when the kept value was asked for
	value   T
	running bool
	failed  time.Time // when the last failed computation was asked for
}

// get returns the kept value (ok false when there is none yet) and starts
// computing it again when it is older than every.
func (b *background[T]) get(log *slog.Logger) (T, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running && (!b.have || time.Since(b.at) >= b.every) && time.Since(b.failed) >= b.every {
		b.running = true
		go b.run(log)
	}
	return b.value, b.have
}

func (b *background[T]) run(log *slog.Logger) {
	asked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := b.compute(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = false
	if err != nil {
		b.failed = asked
		log.Warn("keybrake ui: reading "+b.what+" failed", "err", err)
		return
	}
	b.have, b.at, b.value = true, asked, v
}

func newDayRecords(src admin.Source) *background[dayRecords] {
	return &background[dayRecords]{every: spendEvery, what: "the day's spend per hour", compute: func(ctx context.Context) (dayRecords, error) {
		st, err := src.Status(ctx)
		if err != nil {
			return dayRecords{}, err
		}
		return dayRecords{day: st.Day, spend: st.Spend, shadow: st.Shadow}, nil
	}}
}

// approvalLister is a Source that lists approvals (admin.Local, its
// Client, the command's sources).
type approvalLister interface {
	Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error)
}

func newOpenApprovals(l approvalLister, now func() time.Time) *background[[]*approval.Approval] {
	return &background[[]*approval.Approval]{every: approvalsEvery, what: "the open approvals", compute: func(ctx context.Context) ([]*approval.Approval, error) {
		return l.Approvals(ctx, now().Add(-approval.Lookback))
	}}
}
