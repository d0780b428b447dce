package keybrake

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/keybrake/keybrake/internal/transport"
)

// The chain writes a refusal as transport.Details and AsDenial reads it as
// a Denial: the two must carry the same fields under the same names.
func TestDenialMatchesItsWireForm(t *testing.T) {
	fields := func(v any) map[string]string {
		out := map[string]string{}
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			out[f.Name] = f.Tag.Get("json") + " " + f.Type.String()
		}
		return out
	}
	got, want := fields(Denial{}), fields(transport.Details{})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("keybrake.Denial fields %v\ntransport.Details fields %v", got, want)
	}
	d := transport.Details{Decision: Capped, Code: "keybrake_daily_cap", Rule: "r", CallID: 7}
	back, err := decodeDenial(mustJSON(t, d))
	if err != nil || back.RequestID() != d.RequestID() || back.Code != d.Code {
		t.Fatalf("decodeDenial = %+v, %v", back, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
