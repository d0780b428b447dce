package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns: the parent's end, to
// read what the child writes, and the child's, to be its stdout. It is
// the kernel's own /dev/ptmx, no terminal emulator involved.
func openPTY(t *testing.T, cols int) (parent, child *os.File) {
	t.Helper()
	parent, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal on this machine: %v", err)
	}
	fd := int(parent.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	child, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(child.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Close(); child.Close() })
	return parent, child
}

// onTerminal runs keybrake with its stdout on a terminal of cols columns
// and returns what it wrote there.
func onTerminal(t *testing.T, cols int, env []string, args ...string) string {
	t.Helper()
	parent, child := openPTY(t, cols)
	cmd := exec.Command(bin, args...)
	env = append([]string{"COLUMNS=", "NO_COLOR=", "TERM=xterm"}, env...)
	cmd.Env = append(os.Environ(), env...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = child, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&out, parent) // ends with EIO once the child has exited
		close(done)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, errb.String())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal never closed")
	}
	// The terminal turns \n into \r\n.
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

func TestAuditOnATerminal(t *testing.T) {
	d := newLogDB(t)
	// A wide pane: the table (not JSON), as wide as the pane, with whole
	// reasons, coloured.
	out := onTerminal(t, 220, nil, "audit", "--db", d.path, "--since", "5m")
	if !strings.HasPrefix(out, "TIME (UTC)") {
		t.Fatalf("not a table on a terminal:\n%s", out)
	}
	if !strings.Contains(out, "spend today to 535.00 USD, over its") {
		t.Errorf("the reason is cut short of 220 columns:\n%s", out)
	}
	if wide := onTerminal(t, 320, nil, "audit", "--db", d.path, "--decision", "capped"); !strings.Contains(wide, "over its daily cap of 500.00 USD;") {
		t.Errorf("the reason is cut on 320 columns:\n%s", wide)
	}
	if !strings.Contains(out, ansiYellow+"capped 402") || !strings.Contains(out, ansiGreen+"allowed 200") {
		t.Errorf("decisions not coloured:\n%q", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(stripANSI(l)); n > 220 {
			t.Errorf("a line of %d columns on 220", n)
		}
	}

	// NO_COLOR: the same table without colour.
	plain := onTerminal(t, 220, []string{"NO_COLOR=1"}, "audit", "--db", d.path, "--since", "5m")
	if strings.Contains(plain, "\x1b[") || stripANSI(out) != plain {
		t.Errorf("NO_COLOR:\n%q\nwant\n%q", plain, stripANSI(out))
	}

	// A narrow pane: the ID and the time go, the decision, the amounts
	// and the start of the reason stay; nothing wraps.
	narrow := onTerminal(t, 90, []string{"NO_COLOR=1"}, "audit", "--db", d.path, "--since", "5m")
	lines := strings.Split(strings.TrimSuffix(narrow, "\n"), "\n")
	if h := lines[0]; strings.Contains(h, "ID") || strings.Contains(h, "TIME") || !strings.Contains(h, "DECISION") ||
		!strings.Contains(h, "AMOUNT") || !strings.Contains(h, "REASON") {
		t.Errorf("header on 90 columns: %q", h)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 90 {
			t.Errorf("a line of %d columns on 90: %q", n, l)
		}
	}
	if !strings.Contains(narrow, "450.00 USD") || !strings.Contains(narrow, "keybrake_daily_cap") {
		t.Errorf("amount or reason lost on 90 columns:\n%s", narrow)
	}
}

// stripANSI removes the colour sequences the table writes.
func stripANSI(s string) string {
	for _, c := range []string{ansiReset, ansiRed, ansiYellow, ansiBold, ansiGreen} {
		s = strings.ReplaceAll(s, c, "")
	}
	return s
}
