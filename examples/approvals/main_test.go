package main

import (
	"io"
	"testing"
)

func TestRun(t *testing.T) {
	res, err := run(io.Discard, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.retried != res.first {
		t.Errorf("retries wait for %s, want the first's %s", res.retried, res.first)
	}
	if res.other == res.first || res.after == res.first || res.after == res.other {
		t.Errorf("approvals %s, %s, %s: a different request, and the same one after use, need their own", res.first, res.other, res.after)
	}
	if res.moved != 1 {
		t.Errorf("%d transfers moved, want 1", res.moved)
	}
}
