package main

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC)
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"90s", now.Add(-90 * time.Second)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"1d", now.Add(-day)},
		{"7d", now.Add(-7 * day)},
		{"2w", now.Add(-14 * day)},
		{"1d12h", now.Add(-36 * time.Hour)},
		{"1w2d", now.Add(-9 * day)},
		{"10 minutes", now.Add(-10 * time.Minute)},
		{"2 days", now.Add(-2 * day)},
		{"1 hour", now.Add(-time.Hour)},
		{"today", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{"Yesterday", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"now", now},
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
	} {
		got, err := parseWhen("since", tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "d", "1x", "1d3", "-1d", "-5m", "3 fortnights", "ten minutes", "1.5d", "2026-01-02"} {
		if got, err := parseWhen("since", in, now); err == nil {
			t.Errorf("parseWhen(%q) = %v, want an error", in, got)
		}
	}
}
