package policy

import (
	"time"

	_ "time/tzdata" // timezone: names a zone on any machine, with or without /usr/share/zoneinfo
)

// Days, weeks and months are counted in the policy's time zone: a day is
// the local date, however many hours it has (23 or 25 on the days the
// clocks change); a week runs Monday to Sunday; a month is a calendar
// month. A counter's key names its period by its LAST day, so that a
// store's Prune, which drops the counters of days gone by, never drops a
// week or a month still running.

// Zone is the policy's time zone: UTC unless it names one.
func (p *Policy) Zone() *time.Location {
	if p == nil || p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Day is the day ("2006-01-02") that t falls on in the policy's time
// zone: the day Limits counts a call made at t against.
func (p *Policy) Day(t time.Time) string { return t.In(p.Zone()).Format(time.DateOnly) }

// civil reads a day Limits validated.
func civil(day string) time.Time {
	return time.Date(number(day[0:4]), time.Month(number(day[5:7])), number(day[8:10]), 12, 0, 0, 0, time.UTC)
}

// weekOf returns the Monday and Sunday of day's week.
func weekOf(day string) (monday, sunday string) {
	d := civil(day)
	back := (int(d.Weekday()) + 6) % 7 // days since Monday
	m := d.AddDate(0, 0, -back)
	return m.Format(time.DateOnly), m.AddDate(0, 0, 6).Format(time.DateOnly)
}

// monthOf returns the first and last days of day's month.
func monthOf(day string) (first, last string) {
	d := civil(day)
	f := time.Date(d.Year(), d.Month(), 1, 12, 0, 0, 0, time.UTC)
	return f.Format(time.DateOnly), f.AddDate(0, 1, -1).Format(time.DateOnly)
}

// PeriodEnd is when the period of a day, week or month limit whose
// Period is last (its last day) ends in zone: the next day's midnight,
// which the clock change may put 23 or 25 hours after the last day's.
func PeriodEnd(last string, zone *time.Location) time.Time {
	if !validDay(last) {
		return time.Time{}
	}
	d := civil(last).AddDate(0, 0, 1)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, zone)
}
