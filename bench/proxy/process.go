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
	"path/filepath"
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

// hopLibraryEnv, set beside hopEnv to a directory, makes the hop process
// variant (b+'): the bare hop over the library's chain, on a Brake of its
// own in that directory (its policy and bbolt file), the way keybrake
// serve runs the chain but without the proxy's own work. It is the hop
// in the place serve's layer is: its own process, in front of a Brake.
const hopLibraryEnv = "KEYBRAKE_BENCH_HOP_LIBRARY"

var (
	hopProcessVariant        = variant{"hop-process", "(a') bare hop, own process", startHopProcess}
	hopLibraryProcessVariant = variant{"hop+library-process", "(b+') (b+) in its own process", startHopLibraryProcess}
)

// runHopChild serves the bare hop as startHop builds it (over the
// library's chain when dir is set), announces its address on stderr as
// keybrake serve does, and stops on SIGTERM.
func runHopChild(fake, dir string) error {
	u, err := url.Parse(fake)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	handler := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr}
	if dir != "" {
		b := &bench{fake: fake, policy: filepath.Join(dir, "keybrake.yaml")}
		kb, err := b.open(dir)
		if err != nil {
			return err
		}
		defer kb.Close()
		handler = hopOverLibrary(kb)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
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
	return startHopChild(b, "")
}

func startHopLibraryProcess(b *bench, dir string) (target, func(), error) {
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(policy), 0o600); err != nil {
		return target{}, nil, err
	}
	return startHopChild(b, dir)
}

// startHopChild runs this binary again as the hop of (a'), or of (b+')
// when dir is set.
func startHopChild(b *bench, dir string) (target, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return target{}, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), hopEnv+"="+b.fake, hopLibraryEnv+"="+dir)
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
