package fakefault_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// A fake's ServeHTTP draws a fault for each request and lets Serve decide
// whether its own work runs and which answer goes back.
type fakeAPI struct{ faults *fakefault.Faults }

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hit := f.faults.Take(r)
	res := f.faults.Serve(r, hit, func() fakefault.Response {
		return fakefault.Response{Status: http.StatusOK, Body: []byte(`{"ok":true}`)}
	})
	res.Write(w, "application/json")
}

func Example() {
	// The fake renders its own error body for a status.
	api := &fakeAPI{faults: fakefault.New("fakeapi", func(status int) fakefault.Response {
		return fakefault.Response{Status: status, Body: []byte(fmt.Sprintf(`{"error":%d}`, status))}
	})}
	ts := httptest.NewServer(api)
	defer ts.Close()
	defer api.faults.Close() // runs first: releases requests held by a Hang

	api.faults.On("POST", "/v1/").FailNext(1, http.StatusServiceUnavailable)
	for _, method := range []string{"GET", "POST", "POST"} {
		req, _ := http.NewRequest(method, ts.URL+"/v1/charges", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(method, res.StatusCode, string(body))
	}
	// Output:
	// GET 200 {"ok":true}
	// POST 503 {"error":503}
	// POST 200 {"ok":true}
}
