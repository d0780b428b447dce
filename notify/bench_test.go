package notify

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// baseline is the cheapest thing Offer could be: a non-blocking send of the
// same value on a channel of the same size that a goroutine drains, and an
// atomic count when it is full.
func baseline(b *testing.B) {
	q := make(chan occurrence, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-q:
			case <-stop:
				return
			}
		}
	}()
	var dropped atomic.Int64
	o := occurrence{key: key{kind: "capped", agent: "refund-bot", vendor: "stripe", rule: "r"}, reason: "x"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			select {
			case q <- o:
			default:
				dropped.Add(1)
			}
		}
	})
	b.StopTimer()
	close(stop)
	wg.Wait()
}

// baselineParallel times n baseline sends spread over GOMAXPROCS
// goroutines, the way RunParallel spreads b.N, for the ratio.
func baselineParallel(n int) time.Duration {
	q := make(chan occurrence, 1024)
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-q:
			case <-stop:
				return
			}
		}
	}()
	var dropped atomic.Int64
	o := occurrence{key: key{kind: "capped", agent: "refund-bot", vendor: "stripe", rule: "r"}, reason: "x"}
	procs := runtime.GOMAXPROCS(0)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-100) > -100 {
				for range 100 {
					select {
					case q <- o:
					default:
						dropped.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(stop)
	<-drained
	return el
}

func BenchmarkBaselineChannelSend(b *testing.B) { baseline(b) }

// BenchmarkOffer measures Offer from every P at once and reports its cost
// as a multiple of the baseline measured in the same run (x-baseline).
// "capped" is a storm of refusals (most of them dropped once the queue is
// full, like the baseline's sends); "allowed" is the path every allowed
// call takes.
func BenchmarkOffer(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    *audit.Record
	}{
		{"capped", &audit.Record{Agent: "refund-bot", Vendor: "stripe", Decision: policy.Capped,
			Rule: "agents.refund-bot.stripe.daily_cap", Code: "keybrake_daily_cap", Reason: "cap reached", Time: time.Now()}},
		{"allowed", &audit.Record{Agent: "refund-bot", Vendor: "stripe", Decision: policy.Allowed}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDispatcher(NotifierFunc(func(context.Context, Alert) error { return nil }), Options{})
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d.Offer(bc.r)
				}
			})
			b.StopTimer()
			base := baselineParallel(b.N)
			b.ReportMetric(float64(b.Elapsed())/float64(base), "x-baseline")
			s := d.Stats()
			b.ReportMetric(float64(s.Dropped)/float64(max(s.Offered, 1)), "dropped/offered")
			if err := d.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkLoopAdd is the loop's cost per record (its own goroutine, so
// not parallel): how fast a storm can be counted before Offer must drop.
// A storm is mostly one key; "alternating" defeats the last-lane shortcut.
func BenchmarkLoopAdd(b *testing.B) {
	keys := []key{
		{kind: "capped", agent: "refund-bot", vendor: "stripe", rule: "agents.refund-bot.stripe.daily_cap"},
		{kind: "blocked", agent: "mailer", vendor: "resend", rule: "agents.mailer.resend"},
	}
	for _, bc := range []struct {
		name string
		mask int
	}{{"one-key", 0}, {"alternating", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			d := &Dispatcher{opts: Options{Window: time.Minute, MaxWindow: time.Hour, Now: time.Now}, maxKeys: maxKeys}
			l := &loop{d: d, lanes: map[key]*lane{}}
			l.timer = time.NewTimer(time.Hour)
			defer l.timer.Stop()
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				l.add(occurrence{key: keys[i&bc.mask], code: "keybrake_daily_cap", reason: "cap"}, now)
			}
			b.StopTimer()
			var got int64
			for _, ln := range l.lanes {
				got += ln.burst.total
			}
			if got != int64(b.N) {
				b.Fatalf("counted %d of %d", got, b.N)
			}
		})
	}
}
