package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// hopEnv, set to the fake's URL, makes this binary the bare hop of
// variant (a'): the baseline for keybrake serve, which is a process of its
// own too. Between processes every hop pays what in-process variants do
// not: the other process's threads are woken by the kernel, not by the Go
// scheduler of the same runtime. Comparing serve with a hop in the
// client's own process would charge serve for being a process.
const hopEnv = "KEYBRAKE_BENCH_HOP"

var hopProcessVariant = variant{"hop-process", "(a') bare hop, own process", startHopProcess}

// runHopChild serves the bare hop as startHop builds it, announces its
// address on stderr as keybrake serve does, and stops on SIGTERM.
func runHopChild(fake string) error {
	u, err := url.Parse(fake)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr},
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
	}
	fmt.Fprintf(os.Stderr, "serving agents on http://%s\n", ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func startHopProcess(b *bench, _ string) (target, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return target{}, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), hopEnv+"="+b.fake)
	addr, stop, err := startProcess(cmd)
	if err != nil {
		return target{}, nil, fmt.Errorf("the hop process: %w", err)
	}
	c := client()
	return target{client: c, base: addr, auth: "Bearer " + stripeSecret}, closing(c, stop), nil
}

// startProcess starts cmd, a server that announces "serving agents on
// URL" on stderr, and returns that URL and how to stop it (SIGTERM, then
// wait).
func startProcess(cmd *exec.Cmd) (string, func(), error) {
	served := &announcement{addr: make(chan string, 1)}
	cmd.Stderr = served
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}
	select {
	case addr := <-served.addr:
		return addr, stop, nil
	case err := <-exited:
		return "", nil, fmt.Errorf("exited before it served: %v\n%s", err, served.text())
	case <-time.After(10 * time.Second):
		stop()
		return "", nil, fmt.Errorf("did not say where it serves within 10 s:\n%s", served.text())
	}
}
