package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// ErrNoServer is returned, wrapped, by a Client's methods when nothing
// answers on the socket: it does not exist, or no process listens on it (a
// leftover of an agent that stopped). Nothing was read; the caller may read
// the database file instead.
var ErrNoServer = errors.New("admin: no server answers on the socket")

// DialTimeout bounds connecting to the socket. A unix socket either
// accepts or refuses at once; the bound is for a listener that has stopped
// accepting.
const DialTimeout = time.Second

// HeaderTimeout bounds the wait for the answer to begin, for /audit and
// /status: a server that accepted and then says nothing is taken for
// stuck. /verify reads the whole store and is bounded by its context only.
const HeaderTimeout = 10 * time.Second

// Client talks to a socket Serve'd by a Brake. It holds no connection
// between requests. It is safe for concurrent use.
type Client struct {
	path          string
	hc            *http.Client
	headerTimeout time.Duration
}

var _ Source = (*Client)(nil)

// Dial returns a Client of the socket at path. It does not connect: each
// request does, and fails with ErrNoServer when nothing answers.
func Dial(path string) *Client {
	d := &net.Dialer{Timeout: DialTimeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, &noServerError{path: path, err: err}
			}
			return c, nil
		},
		// No idle connection outlives a request: a CLI makes one or two.
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}, headerTimeout: HeaderTimeout}
}

// Path is the socket's path.
func (c *Client) Path() string { return c.path }

// get sends GET path and returns the response once its status is 200. The
// caller closes the body and then calls done. headerTimeout > 0 bounds the
// wait for the response headers only.
func (c *Client) get(ctx context.Context, path string, headerTimeout time.Duration) (resp *http.Response, done func(), err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if headerTimeout > 0 {
		timer = time.AfterFunc(headerTimeout, func() { cancel(errHeaderTimeout) })
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://keybrake"+path, nil)
	if err != nil {
		cancel(nil)
		return nil, nil, err
	}
	resp, err = c.hc.Do(req)
	if timer != nil && !timer.Stop() && err == nil {
		// The timer fired as the answer came: the body is unusable.
		resp.Body.Close()
		err = errHeaderTimeout
	}
	if err != nil {
		cancel(nil)
		var ns *noServerError
		switch {
		case errors.As(err, &ns):
			return nil, nil, ns
		case errors.Is(context.Cause(ctx), errHeaderTimeout) || errors.Is(err, errHeaderTimeout):
			return nil, nil, fmt.Errorf("admin: GET %s: the server on %s accepted but did not answer within %v", path, c.path, headerTimeout)
		}
		return nil, nil, fmt.Errorf("admin: GET %s on %s: %w", path, c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel(nil)
		return nil, nil, fmt.Errorf("admin: GET %s on %s: %s: %s", path, c.path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, func() { cancel(nil) }, nil
}

var errHeaderTimeout = errors.New("admin: no answer in time")

// noServerError is a failed connection: ErrNoServer, with the reason.
type noServerError struct {
	path string
	err  error
}

func (e *noServerError) Error() string {
	return ErrNoServer.Error() + ": " + e.path + ": " + e.err.Error()
}

func (e *noServerError) Is(target error) bool { return target == ErrNoServer }
func (e *noServerError) Unwrap() error        { return e.err }

// Audit streams the records q selects to fn, oldest first; with follow it
// keeps the connection and passes on new records as the server finds them
// (see Follow), until ctx ends (it then returns ctx.Err()), fn returns an
// error (returned), or the server ends the stream. A stream cut short or
// ended by an error on the server's side returns an error, so a partial
// answer is never taken for a whole one.
func (c *Client) Audit(ctx context.Context, q audit.Query, follow bool, fn func(*audit.Record) error) error {
	resp, done, err := c.get(ctx, "/audit?"+EncodeQuery(q, follow), c.headerTimeout)
	if err != nil {
		return err
	}
	defer done()
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var r audit.Record
		err := dec.Decode(&r)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("admin: reading the audit stream from %s: %w", c.path, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if msg := resp.Trailer.Get(TrailerError); msg != "" {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("admin: the audit stream from %s ended with an error: %s", c.path, msg)
	}
	return nil
}

// Query implements Source: Audit without following.
func (c *Client) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	return c.Audit(ctx, q, false, fn)
}

// Status implements Source.
func (c *Client) Status(ctx context.Context) (*Status, error) { return c.status(ctx, "/status") }

// Glance implements Source.
func (c *Client) Glance(ctx context.Context) (*Status, error) {
	return c.status(ctx, "/status?spend=false")
}

func (c *Client) status(ctx context.Context, path string) (*Status, error) {
	resp, done, err := c.get(ctx, path, c.headerTimeout)
	if err != nil {
		return nil, err
	}
	defer done()
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("admin: reading the status from %s: %w", c.path, err)
	}
	return &s, nil
}

// Verify implements Source. A broken chain comes back as the
// *store.ChainError the server's store returned, with its report.
func (c *Client) Verify(ctx context.Context) (store.VerifyReport, error) {
	resp, done, err := c.get(ctx, "/verify", 0)
	if err != nil {
		return store.VerifyReport{}, err
	}
	defer done()
	defer resp.Body.Close()
	var res verifyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return store.VerifyReport{}, fmt.Errorf("admin: reading the verify report from %s: %w", c.path, err)
	}
	rep := store.VerifyReport(res.Report)
	if ce := res.ChainError; ce != nil {
		return rep, &store.ChainError{Problem: ce.Problem, Entry: ce.Entry, Record: ce.Record, Detail: ce.Detail}
	}
	return rep, nil
}
