package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestOrphanedServerDies(t *testing.T) {
	// The helper starts a server and exits without stopping it, as a
	// test binary killed by -timeout would: the server must die with it
	// (Pdeathsig).
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TESTENV_HELPER=orphan")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var pid int
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "server "); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatalf("no server pid in %q", out)
	}
	waitGone(t, pid)
}
