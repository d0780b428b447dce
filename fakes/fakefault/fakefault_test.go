package fakefault_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// answer is a fake's answer for a status: the status in the body, so a
// test can tell it from handle's.
func answer(status int) fakefault.Response {
	return fakefault.Response{Status: status, Body: []byte("fault " + strconv.Itoa(status))}
}

func handled() fakefault.Response {
	return fakefault.Response{Status: http.StatusOK, Body: []byte("handled")}
}

// panicText runs f and returns what it panicked with, "" if nothing.
func panicText(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

func TestAddRefusesUnusableFaults(t *testing.T) {
	tests := []struct {
		name string
		add  func(*fakefault.Faults)
		want string // the panic, "" for none
	}{
		{"success status", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Status: 200}, nil) }, "fakex: fault status 200 is not an error status"},
		{"status too high", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Status: 600}, nil) }, "fakex: fault status 600 is not an error status"},
		{"status before effect", func(fs *fakefault.Faults) { fs.Check(fakefault.Rule{Status: 399, Times: 1}) }, "fakex: fault status 399 is not an error status"},
		{"no effect", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Times: 1}, nil) }, "fakex: a fault needs a Status, a Delay or Hang"},
		{"negative delay", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Delay: -time.Second}, nil) }, "fakex: a fault needs a Status, a Delay or Hang"},
		{"scope zero times", func(fs *fakefault.Faults) { fs.On("", "").FailNext(0, 500) }, "fakex: fault for 0 requests"},
		{"scope times before status", func(fs *fakefault.Faults) { fs.On("", "").FailNext(-1, 200) }, "fakex: fault for -1 requests"},
		{"scope status", func(fs *fakefault.Faults) { fs.On("GET", "/").ExecuteThenFail(1, 302) }, "fakex: fault status 302 is not an error status"},
		{"lowest status", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Status: 400}, nil) }, ""},
		{"highest status", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Status: 599}, nil) }, ""},
		{"delay only", func(fs *fakefault.Faults) { fs.Add(fakefault.Rule{Delay: time.Nanosecond}, nil) }, ""},
		{"hang only", func(fs *fakefault.Faults) { fs.On("", "").HangNext(1) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			if got := panicText(func() { tt.add(fs) }); got != tt.want {
				t.Fatalf("panic %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTakeMatchesInOrderAndUsesUp(t *testing.T) {
	fs := fakefault.New("fakex", answer)
	fs.On("POST", "/v1/charges").FailNext(2, 500)
	fs.On("", "/v1/refunds").ExecuteThenFail(1, 502)
	fs.On("GET", "").DelayNext(1, time.Second)
	fs.Add(fakefault.Rule{Status: 503}, func() fakefault.Response { return answer(599) }) // every request, until Clear

	type want struct {
		status  int
		execute bool
		delay   time.Duration
	}
	steps := []struct {
		method, target string
		want           want
	}{
		{"POST", "/v1/charges", want{status: 500}},
		{"GET", "/v1/charges/ch_1", want{delay: time.Second}}, // the charges fault is for POST only
		{"POST", "/v1/charges/ch_1/capture", want{status: 500}},
		{"POST", "/v1/charges", want{status: 503}}, // the charges fault is used up
		{"POST", "/v1/refunds?charge=ch_1", want{status: 502, execute: true}},
		{"POST", "/v1/refunds", want{status: 503}},
		{"GET", "/v1/%72efunds", want{status: 503}}, // matched escaped: not /v1/refunds
		{"DELETE", "/", want{status: 503}},
	}
	for i, st := range steps {
		hit := fs.Take(httptest.NewRequest(st.method, st.target, nil))
		if hit == nil {
			t.Fatalf("step %d %s %s: no fault", i, st.method, st.target)
		}
		got := want{status: hit.Status, execute: hit.Execute, delay: hit.Delay}
		if got != st.want {
			t.Fatalf("step %d %s %s: %+v, want %+v", i, st.method, st.target, got, st.want)
		}
	}

	fs.Clear()
	if hit := fs.Take(httptest.NewRequest("POST", "/v1/charges", nil)); hit != nil {
		t.Fatalf("after Clear: %+v", hit.Rule)
	}
}

func TestAddWithoutAnswerUsesTheFakes(t *testing.T) {
	fs := fakefault.New("fakex", answer)
	fs.Add(fakefault.Rule{Status: 418, Times: 1}, nil)
	fs.Add(fakefault.Rule{Status: 429, Times: 1}, func() fakefault.Response { return answer(599) })
	for _, want := range []string{"fault 418", "fault 599"} {
		r := httptest.NewRequest("GET", "/", nil)
		res, handles, dropped := serve(fs, r, fs.Take(r))
		if string(res.Body) != want || handles != 0 || dropped {
			t.Fatalf("answered %q after %d handles (dropped %v), want %q", res.Body, handles, dropped, want)
		}
	}
}

func TestScopeSetsRule(t *testing.T) {
	tests := []struct {
		name string
		add  func(fakefault.Scope)
		want fakefault.Rule
	}{
		{"FailNext", func(sc fakefault.Scope) { sc.FailNext(3, 429) }, fakefault.Rule{Status: 429}},
		{"ExecuteThenFail", func(sc fakefault.Scope) { sc.ExecuteThenFail(3, 502) }, fakefault.Rule{Status: 502, Execute: true}},
		{"DelayNext", func(sc fakefault.Scope) { sc.DelayNext(3, time.Minute) }, fakefault.Rule{Delay: time.Minute}},
		{"HangNext", func(sc fakefault.Scope) { sc.HangNext(3) }, fakefault.Rule{Hang: true}},
		{"ExecuteThenHang", func(sc fakefault.Scope) { sc.ExecuteThenHang(3) }, fakefault.Rule{Execute: true, Hang: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			tt.add(fs.On("PUT", "/x"))
			want := tt.want
			want.Method, want.PathPrefix, want.Times = "PUT", "/x", 3
			for i := 0; i < 3; i++ {
				hit := fs.Take(httptest.NewRequest("PUT", "/x/1", nil))
				if hit == nil || hit.Rule != want {
					t.Fatalf("take %d: %+v, want %+v", i, hit, want)
				}
			}
			if hit := fs.Take(httptest.NewRequest("PUT", "/x/1", nil)); hit != nil {
				t.Fatalf("a fourth take: %+v", hit.Rule)
			}
		})
	}
}

// serve runs Serve as a handler would and reports what it answered, how
// many times handle ran, and whether the request was dropped.
func serve(fs *fakefault.Faults, r *http.Request, hit *fakefault.Hit) (res fakefault.Response, handles int, dropped bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			dropped = true
		}
	}()
	res = fs.Serve(r, hit, func() fakefault.Response {
		handles++
		return handled()
	})
	return res, handles, false
}

func TestServe(t *testing.T) {
	tests := []struct {
		name        string
		rule        *fakefault.Rule // nil: no fault
		wantBody    string
		wantHandles int
	}{
		{"no fault", nil, "handled", 1},
		{"fail", &fakefault.Rule{Status: 500}, "fault 500", 0},
		{"delay then handle", &fakefault.Rule{Delay: time.Millisecond}, "handled", 1},
		{"delay then fail", &fakefault.Rule{Delay: time.Millisecond, Status: 503}, "fault 503", 0},
		{"execute then fail", &fakefault.Rule{Execute: true, Status: 502}, "fault 502", 1},
		{"execute then delay", &fakefault.Rule{Execute: true, Delay: time.Millisecond}, "handled", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			r := httptest.NewRequest("GET", "/", nil)
			if tt.rule != nil {
				fs.Add(*tt.rule, func() fakefault.Response { return answer(tt.rule.Status) })
			}
			hit := fs.Take(r)
			if (hit != nil) != (tt.rule != nil) {
				t.Fatalf("hit %+v for rule %+v", hit, tt.rule)
			}
			res, handles, dropped := serve(fs, r, hit)
			if dropped {
				t.Fatal("dropped")
			}
			if string(res.Body) != tt.wantBody || handles != tt.wantHandles {
				t.Fatalf("answered %q after %d handles, want %q after %d", res.Body, handles, tt.wantBody, tt.wantHandles)
			}
		})
	}
}

func TestServeWaitsForDelay(t *testing.T) {
	const d = 30 * time.Millisecond
	for _, execute := range []bool{false, true} {
		t.Run(fmt.Sprint("execute=", execute), func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			fs.Add(fakefault.Rule{Delay: d, Execute: execute}, nil)
			r := httptest.NewRequest("GET", "/", nil)
			start := time.Now()
			var handledAt time.Duration
			res := fs.Serve(r, fs.Take(r), func() fakefault.Response {
				handledAt = time.Since(start)
				return handled()
			})
			total := time.Since(start)
			if string(res.Body) != "handled" || total < d {
				t.Fatalf("answered %q after %v, want handled after at least %v", res.Body, total, d)
			}
			if !execute && handledAt < d {
				t.Fatalf("handled after %v, before the delay of %v", handledAt, d)
			}
			if execute && handledAt >= d {
				t.Fatalf("handled after %v: the delay came first", handledAt)
			}
		})
	}
}

func TestServeDropsWhenClientGivesUp(t *testing.T) {
	tests := []struct {
		name        string
		rule        fakefault.Rule
		wantHandles int
	}{
		{"hang", fakefault.Rule{Hang: true, Status: 500}, 0},
		{"long delay", fakefault.Rule{Delay: time.Hour}, 0},
		{"execute then hang", fakefault.Rule{Execute: true, Hang: true}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			fs.Add(tt.rule, func() fakefault.Response { return answer(500) })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
			_, handles, dropped := serve(fs, r, fs.Take(r))
			if !dropped || handles != tt.wantHandles {
				t.Fatalf("dropped %v after %d handles, want dropped after %d", dropped, handles, tt.wantHandles)
			}
		})
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	fs := fakefault.New("fakex", answer)
	fs.On("", "").HangNext(3)
	const n = 3
	var wg sync.WaitGroup
	dropped := make(chan bool, n)
	for i := 0; i < n; i++ {
		r := httptest.NewRequest("GET", "/", nil) // no deadline: only Close ends the wait
		hit := fs.Take(r)
		if hit == nil {
			t.Fatal("no fault")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, d := serve(fs, r, hit)
			dropped <- d
		}()
	}
	select {
	case <-dropped:
		t.Fatal("a request was answered before Close")
	case <-time.After(20 * time.Millisecond):
	}
	fs.Close()
	fs.Close() // idempotent
	released := make(chan struct{})
	go func() {
		wg.Wait()
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the held requests")
	}
	close(dropped)
	for d := range dropped {
		if !d {
			t.Fatal("a held request was answered")
		}
	}

	// After Close, a request that draws a wait is dropped at once; one
	// that draws none is served.
	fs.Add(fakefault.Rule{Delay: time.Hour}, nil)
	r := httptest.NewRequest("GET", "/", nil)
	if _, _, d := serve(fs, r, fs.Take(r)); !d {
		t.Fatal("a delayed request after Close was answered")
	}
	fs.Clear()
	if res, _, d := serve(fs, r, fs.Take(r)); d || string(res.Body) != "handled" {
		t.Fatalf("after Close: dropped %v, answered %q", d, res.Body)
	}
}

func TestConcurrentTakesUseEachFaultOnce(t *testing.T) {
	fs := fakefault.New("fakex", answer)
	const faults, requests = 25, 100
	fs.On("", "").FailNext(faults, 500)
	var mu sync.Mutex
	hits := 0
	var wg sync.WaitGroup
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fs.Take(httptest.NewRequest("GET", "/", nil)) != nil {
				mu.Lock()
				hits++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if hits != faults {
		t.Fatalf("%d requests drew a fault, want %d", hits, faults)
	}
}

type entry struct {
	Method, Path string
	Status       int
	Body         []byte
}

func (e *entry) route() (string, string) { return e.Method, e.Path }

func (e entry) clone() entry {
	e.Body = append([]byte(nil), e.Body...)
	return e
}

func TestLog(t *testing.T) {
	var mu sync.Mutex
	log := fakefault.NewLog(&mu, (*entry).route, entry.clone)
	if log.Len() != 0 || len(log.Snapshot()) != 0 {
		t.Fatal("a new log is not empty")
	}
	mu.Lock()
	for _, e := range []entry{
		{Method: "POST", Path: "/emails"},
		{Method: "GET", Path: "/emails/1"},
		{Method: "POST", Path: "/emails"},
		{Method: "POST", Path: "/emails/batch"},
	} {
		log.Append(e)
	}
	i := log.Append(entry{Method: "POST", Path: "/emails"})
	log.At(i).Status = 429
	log.At(i).Body = []byte("{}")
	mu.Unlock()

	if n := log.Len(); n != 5 {
		t.Fatalf("Len %d, want 5", n)
	}
	counts := []struct {
		method, path string
		want         int
	}{
		{"POST", "/emails", 3},
		{"GET", "/emails/1", 1},
		{"GET", "/emails", 0},
		{"POST", "/emails/", 0},
		{"post", "/emails", 0},
	}
	for _, c := range counts {
		if got := log.Count(c.method, c.path); got != c.want {
			t.Errorf("Count(%s, %s) = %d, want %d", c.method, c.path, got, c.want)
		}
	}

	snap := log.Snapshot()
	if i != 4 || snap[4].Status != 429 || string(snap[4].Body) != "{}" {
		t.Fatalf("entry %d in the snapshot: %+v", i, snap[4])
	}
	snap[4].Body[0] = 'x'
	snap[4].Status = 0
	if again := log.Snapshot(); again[4].Status != 429 || string(again[4].Body) != "{}" {
		t.Fatalf("changing a snapshot changed the log: %+v", again[4])
	}
}

func TestLogWithoutCloneCopiesValues(t *testing.T) {
	var mu sync.Mutex
	log := fakefault.NewLog(&mu, (*entry).route, nil)
	mu.Lock()
	log.Append(entry{Method: "GET", Status: 200})
	mu.Unlock()
	snap := log.Snapshot()
	snap[0].Status = 500
	if log.Snapshot()[0].Status != 200 {
		t.Fatal("changing a snapshot changed the log")
	}
}

func TestLogTakesTheFakesLock(t *testing.T) {
	var mu sync.Mutex
	log := fakefault.NewLog(&mu, (*entry).route, nil)
	mu.Lock()
	done := make(chan int)
	go func() { done <- log.Len() }()
	select {
	case <-done:
		t.Fatal("Len did not wait for the lock")
	case <-time.After(20 * time.Millisecond):
	}
	log.Append(entry{})
	mu.Unlock()
	if n := <-done; n != 1 {
		t.Fatalf("Len %d, want 1", n)
	}
}

func TestResponseWrite(t *testing.T) {
	tests := []struct {
		name     string
		res      fakefault.Response
		wantType string
	}{
		{"default type", fakefault.Response{Status: 201, Body: []byte(`{"id":1}`)}, "application/json"},
		{"own type", fakefault.Response{Status: 502, Body: []byte("<html>"), Header: http.Header{"Content-Type": {"text/html"}}}, "text/html"},
		{"empty body", fakefault.Response{Status: 204, Header: http.Header{}}, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("Request-Id", "req_1")
			tt.res.Write(w, "application/json")
			got := w.Result()
			body, _ := io.ReadAll(got.Body)
			if got.StatusCode != tt.res.Status || string(body) != string(tt.res.Body) {
				t.Fatalf("%d %q, want %d %q", got.StatusCode, body, tt.res.Status, tt.res.Body)
			}
			if ct := got.Header.Get("Content-Type"); ct != tt.wantType {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantType)
			}
			if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(len(tt.res.Body)) {
				t.Errorf("Content-Length %q, want %d", cl, len(tt.res.Body))
			}
			if got.Header.Get("Request-Id") != "req_1" {
				t.Error("a header set before Write was lost")
			}
		})
	}
}

// testFake is a fake with nothing but faults. drew reports each request
// that drew a fault, once it has.
type testFake struct {
	fs     *fakefault.Faults
	drew   chan struct{}
	closed chan struct{}
}

func newTestFake() *testFake {
	return &testFake{fs: fakefault.New("fakex", answer), drew: make(chan struct{}, 10), closed: make(chan struct{})}
}

func (f *testFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hit := f.fs.Take(r)
	if hit != nil {
		f.drew <- struct{}{}
	}
	res := f.fs.Serve(r, hit, handled)
	res.Write(w, "text/plain")
}

func (f *testFake) Close() {
	f.fs.Close()
	close(f.closed)
}

func TestStartedServerAnswers(t *testing.T) {
	f := newTestFake()
	url := fakefault.Start(t, f)
	f.fs.On("GET", "/fail").FailNext(1, 503)
	for _, c := range []struct {
		path, want string
		status     int
	}{{"/fail", "fault 503", 503}, {"/fail", "handled", 200}, {"/", "handled", 200}} {
		res, err := http.Get(url + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || string(body) != c.want {
			t.Fatalf("GET %s: %d %q, want %d %q", c.path, res.StatusCode, body, c.status, c.want)
		}
	}
}

func TestStartReleasesHeldRequestsAtTheEnd(t *testing.T) {
	f := newTestFake()
	errc := make(chan error, 1)
	t.Run("serve", func(t *testing.T) {
		url := fakefault.Start(t, f)
		f.fs.On("", "").HangNext(1)
		go func() {
			res, err := http.Get(url)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		select {
		case <-f.drew:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the fake")
		}
	})
	// The subtest's cleanup has run, and returned: closing the
	// httptest.Server before the fake would have waited for the held
	// handler for ever.
	select {
	case <-f.closed:
	default:
		t.Fatal("the fake was not closed")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the held request was answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not released")
	}
}

func BenchmarkTake(b *testing.B) {
	fs := fakefault.New("fakex", answer)
	for i := 0; i < 10; i++ {
		fs.On("POST", "/v1/other"+strconv.Itoa(i)).FailNext(1, 500) // never matched: the cost of a scan
	}
	r := httptest.NewRequest("GET", "/v1/charges/ch_1", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if fs.Take(r) != nil {
				b.Error("drew a fault")
			}
		}
	})
}
