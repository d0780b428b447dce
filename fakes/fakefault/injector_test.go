package fakefault_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// The methods a Server gets from its Injector add the faults their names
// say: a number of uses for the Next ones, every request until
// ClearFaults for Delay and Hang.
func TestInjectorAddsRules(t *testing.T) {
	tests := []struct {
		name  string
		add   func(fakefault.Injector)
		want  fakefault.Rule
		takes int // how many requests it strikes; 0: every one
	}{
		{"FailNext", func(in fakefault.Injector) { in.FailNext(2, 429) }, fakefault.Rule{Status: 429, Times: 2}, 2},
		{"ExecuteThenFail", func(in fakefault.Injector) { in.ExecuteThenFail(1, 502) }, fakefault.Rule{Status: 502, Execute: true, Times: 1}, 1},
		{"Delay", func(in fakefault.Injector) { in.Delay(time.Minute) }, fakefault.Rule{Delay: time.Minute}, 0},
		{"Hang", func(in fakefault.Injector) { in.Hang() }, fakefault.Rule{Hang: true}, 0},
		{"On", func(in fakefault.Injector) { in.On("POST", "/v1/").HangNext(1) }, fakefault.Rule{Method: "POST", PathPrefix: "/v1/", Hang: true, Times: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			tt.add(fs.Injector())
			strikes := tt.takes
			if strikes == 0 {
				strikes = 5 // "every one": more than any Times above
			}
			for i := 0; i < strikes; i++ {
				hit := fs.Take(httptest.NewRequest("POST", "/v1/refunds", nil))
				if hit == nil || hit.Rule != tt.want {
					t.Fatalf("take %d: %+v, want %+v", i, hit, tt.want)
				}
			}
			if tt.takes > 0 {
				if hit := fs.Take(httptest.NewRequest("POST", "/v1/refunds", nil)); hit != nil {
					t.Fatalf("one take too many: %+v", hit.Rule)
				}
			}
		})
	}
}

func TestInjectorClearFaults(t *testing.T) {
	fs := fakefault.New("fakex", answer)
	in := fs.Injector()
	in.Hang()
	in.FailNext(3, 500)
	in.ClearFaults()
	if hit := fs.Take(httptest.NewRequest("GET", "/", nil)); hit != nil {
		t.Fatalf("after ClearFaults: %+v", hit.Rule)
	}
}

func TestInjectorRefusesBrokenSetups(t *testing.T) {
	tests := []struct {
		name string
		add  func(fakefault.Injector)
		want string
	}{
		{"FailNext zero", func(in fakefault.Injector) { in.FailNext(0, 500) }, "fakex: fault for 0 requests"},
		{"FailNext success", func(in fakefault.Injector) { in.FailNext(1, 200) }, "fakex: fault status 200 is not an error status"},
		{"ExecuteThenFail redirect", func(in fakefault.Injector) { in.ExecuteThenFail(1, 302) }, "fakex: fault status 302 is not an error status"},
		{"Delay zero", func(in fakefault.Injector) { in.Delay(0) }, "fakex: a fault needs a Status, a Delay or Hang"},
		{"Delay negative", func(in fakefault.Injector) { in.Delay(-time.Second) }, "fakex: a fault needs a Status, a Delay or Hang"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fakefault.New("fakex", answer)
			if got := panicText(func() { tt.add(fs.Injector()) }); got != tt.want {
				t.Fatalf("panic %q, want %q", got, tt.want)
			}
		})
	}
}
