package main

import (
	"net/http"
	"net/http/httptest"
)

type server struct {
	url   string
	close func()
}

func httptestServer(h http.Handler) server {
	s := httptest.NewServer(h)
	return server{url: s.URL, close: s.Close}
}
