// Package watch tells its owner when files it follows may have changed.
//
// It watches the directories of the files, not the files: editors and
// deploy tools replace a file by renaming another over it, which kills a
// watch on the file itself, and Kubernetes swaps a ConfigMap by re-pointing
// a "..data" symlink, which shows only as an event on another name in the
// directory. So any event in a watched directory triggers a check, with no
// filtering by name; the owner reads and hashes the files itself and
// decides whether anything changed. A periodic poll triggers the same check
// as a backstop for file systems without inotify (NFS, SMB, FUSE), for
// exhausted watch limits and for lost events. See shared notes/fsnotify.md.
package watch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Config says what to follow and whom to tell.
type Config struct {
	// Files are the paths to follow. They may be symlinks and need not
	// exist yet; their directories must.
	Files []string
	// Poll is how often Check runs regardless of events. Zero means
	// 250 ms; negative means never.
	Poll time.Duration
	// NoEvents turns off fsnotify; the poll alone then triggers checks.
	NoEvents bool
	// Debounce is how long Check waits after an event for the burst it
	// starts to end (an in-place write is two events, the first on an
	// empty file). Zero means 2 ms. A burst longer than ten times
	// Debounce is checked anyway.
	Debounce time.Duration
	// Check is called from the watcher's goroutine, never concurrently
	// with itself. It returns how soon it wants to be called again even
	// without an event (a file that looked half-written), or zero.
	Check func() (again time.Duration)
	// Report receives watcher failures; the watcher recreates itself and
	// the poll goes on. nil drops them.
	Report func(error)
}

// Watcher follows files until Close. Its zero value is not usable; Start
// returns one.
type Watcher struct {
	cfg  Config
	dirs []string

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start begins watching and returns once the watch is in place, so a change
// made after Start returns is seen.
func Start(cfg Config) (*Watcher, error) {
	if cfg.Check == nil {
		return nil, errors.New("watch: Config.Check is required")
	}
	if cfg.Poll == 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 2 * time.Millisecond
	}
	if cfg.Report == nil {
		cfg.Report = func(error) {}
	}
	w := &Watcher{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	seen := map[string]bool{}
	for _, f := range cfg.Files {
		d := filepath.Dir(f)
		if !seen[d] {
			seen[d] = true
			w.dirs = append(w.dirs, d)
		}
	}
	var fw *fsnotify.Watcher
	if !cfg.NoEvents {
		var err error
		if fw, err = w.newNotify(); err != nil {
			return nil, err
		}
	}
	go w.run(fw)
	return w, nil
}

func (w *Watcher) newNotify() (*fsnotify.Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	for _, d := range w.dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watch: directory %s: %w", d, err)
		}
	}
	return fw, nil
}

// relevant reports whether an event may concern a followed file. Any
// create, remove or rename in the directory may (an editor's or deploy
// tool's replacement, a ConfigMap's "..data" swap), as may anything on a
// followed name or a "..name"; what is not is a plain write or chmod of
// another file, such as the database beside the policy, which writes on
// every call and would otherwise keep the debounce from ever settling.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if !ev.Op.Has(fsnotify.Write) && !ev.Op.Has(fsnotify.Chmod) {
		return true
	}
	base := filepath.Base(ev.Name)
	if strings.HasPrefix(base, "..") {
		return true
	}
	for _, f := range w.cfg.Files {
		if filepath.Base(f) == base {
			return true
		}
	}
	return false
}

// Close stops the watcher and waits for its goroutine to end, including a
// Check in progress.
func (w *Watcher) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

// never is a channel no one sends on, for timers that are off.
var never <-chan time.Time

func (w *Watcher) run(fw *fsnotify.Watcher) {
	defer close(w.done)
	defer func() {
		if fw != nil {
			fw.Close()
		}
	}()
	var poll <-chan time.Time
	if w.cfg.Poll > 0 {
		t := time.NewTicker(w.cfg.Poll)
		defer t.Stop()
		poll = t.C
	}
	// settle fires Debounce after the last event of a burst; deadline
	// bounds a burst that never ends; again is the check Check asked for.
	settle, deadline, again := never, never, never
	var settleT, deadlineT, againT *time.Timer
	stopTimer := func(t *time.Timer) {
		if t != nil {
			t.Stop()
		}
	}
	defer func() { stopTimer(settleT); stopTimer(deadlineT); stopTimer(againT) }()

	check := func() {
		stopTimer(settleT)
		stopTimer(deadlineT)
		settle, deadline = never, never
		stopTimer(againT)
		again = never
		if d := w.cfg.Check(); d > 0 {
			againT = time.NewTimer(d)
			again = againT.C
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	rewatch := never
	var rewatchT *time.Timer
	defer func() { stopTimer(rewatchT) }()
	attach := func() {
		events, errs = nil, nil
		if fw != nil {
			events, errs = fw.Events, fw.Errors
		}
	}
	attach()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-events:
			if ok && !w.relevant(ev) {
				continue
			}
			if !ok {
				fw = nil
				attach()
				rewatchT = time.NewTimer(w.cfg.Debounce)
				rewatch = rewatchT.C
				continue
			}
			stopTimer(settleT)
			settleT = time.NewTimer(w.cfg.Debounce)
			settle = settleT.C
			if deadline == never {
				deadlineT = time.NewTimer(10 * w.cfg.Debounce)
				deadline = deadlineT.C
			}
		case err, ok := <-errs:
			if !ok {
				continue
			}
			// An overflow lost events: check everything. Any other
			// error: rebuild the watcher, and check meanwhile.
			w.cfg.Report(fmt.Errorf("watch: %w", err))
			if !errors.Is(err, fsnotify.ErrEventOverflow) && fw != nil {
				fw.Close()
				fw = nil
				attach()
				rewatchT = time.NewTimer(w.cfg.Debounce)
				rewatch = rewatchT.C
			}
			check()
		case <-rewatch:
			rewatch = never
			nfw, err := w.newNotify()
			if err != nil {
				w.cfg.Report(err)
				rewatchT = time.NewTimer(time.Second)
				rewatch = rewatchT.C
				continue
			}
			fw = nfw
			attach()
			check()
		case <-settle:
			check()
		case <-deadline:
			check()
		case <-again:
			check()
		case <-poll:
			check()
		}
	}
}
