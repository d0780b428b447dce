package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/store/postgres"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// The revocation rows: revocationProcs processes each make calls one after
// another; the parent, a Brake of its own on the same store, calls
// Brake.Halt, which writes the fleet's stop to the store and returns once
// it is written. Each process notes the moment (its wall clock, the same
// machine's) of its first call refused as halted; the latency is that
// moment minus the moment Halt was called, so it includes Halt's own
// write. Then Resume, and once every process calls again, the next
// trial.

const revocationProcs = 4

// revocationChild calls in a loop until stdin closes, printing "flowing"
// at its first successful call after a refusal (and the first of all),
// and "refused <unix ns>" at its first call refused as halted after one
// that succeeded.
func revocationChild(ctx context.Context, j job, stdin io.Reader, stdout io.Writer) error {
	st, err := postgres.Open(ctx, j.DSN, nil)
	if err != nil {
		return err
	}
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: j.Policy, Store: st, AdminSocket: "-",
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: j.Fake}})
	if err != nil {
		st.Close()
		return err
	}
	defer kb.Close()
	sc := client.New(stripeSecret, stripevendor.Backends(kb.HTTPClient(agent, keybrake.Stripe)))
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(done)
	}()
	flowing := false
	for i := 0; ; i++ {
		select {
		case <-done:
			return nil
		default:
		}
		_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(chargeID(i % charges)), Amount: stripego.Int64(1)})
		now := time.Now()
		d, denied := keybrake.AsDenial(err)
		switch {
		case err == nil && !flowing:
			flowing = true
			fmt.Fprintln(stdout, "flowing")
		case denied && d.Decision == keybrake.Revoked:
			if flowing {
				flowing = false
				fmt.Fprintf(stdout, "refused %d\n", now.UnixNano())
			}
			time.Sleep(time.Millisecond) // refused calls are instant: no busy loop
		case err != nil && !denied:
			return err
		}
	}
}

// revocation runs the trials in a fresh schema and returns the latency
// of each process in each trial, from the call of Halt and from its
// return (the stop written).
func (b *bench) revocation(trials int) ([]time.Duration, []time.Duration, error) {
	ctx := context.Background()
	dsn, drop, err := freshSchema(ctx, b.cfg.dsn)
	if err != nil {
		return nil, nil, err
	}
	defer drop()
	st, err := postgres.Open(ctx, dsn, nil)
	if err != nil {
		return nil, nil, err
	}
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: b.policy, Store: st, AdminSocket: "-",
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: b.fake}})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	defer kb.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	type proc struct {
		cmd   *exec.Cmd
		in    io.WriteCloser
		lines chan string
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.in.Close()
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				p.cmd.Process.Kill()
			}
		}
	}()
	spec, _ := json.Marshal(job{Variant: "revocation", Callers: 1, DSN: dsn, Fake: b.fake, Policy: b.policy})
	for i := 0; i < revocationProcs; i++ {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		p := &proc{cmd: cmd, in: in, lines: make(chan string, 16)}
		procs = append(procs, p)
		go func() {
			defer close(p.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
		}()
	}
	next := func(p *proc, want string) (string, error) {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("process %d exited", p.cmd.Process.Pid)
			}
			if !strings.HasPrefix(line, want) {
				return "", fmt.Errorf("process %d said %q, want %s", p.cmd.Process.Pid, line, want)
			}
			return strings.TrimSpace(strings.TrimPrefix(line, want)), nil
		case <-time.After(time.Minute):
			return "", fmt.Errorf("process %d said nothing for a minute, waiting for %s", p.cmd.Process.Pid, want)
		}
	}
	var lat, written []time.Duration
	for trial := 0; trial < trials; trial++ {
		for _, p := range procs {
			if _, err := next(p, "flowing"); err != nil {
				return nil, nil, err
			}
		}
		time.Sleep(20 * time.Millisecond) // every process in its loop, not just back
		t0 := time.Now()
		kb.Halt()
		t1 := time.Now()
		for _, p := range procs {
			v, err := next(p, "refused ")
			if err != nil {
				return nil, nil, err
			}
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, nil, err
			}
			lat = append(lat, time.Unix(0, ns).Sub(t0))
			written = append(written, time.Unix(0, ns).Sub(t1))
		}
		kb.Resume()
	}
	return lat, written, nil
}
