//go:build unix

package keys

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadRefusesAFIFO: opening a FIFO waits for a writer, so Load looks
// before it opens.
func TestLoadRefusesAFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	if _, err := Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("error %v", err)
	}
}
