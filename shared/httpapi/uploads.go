package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// DefaultActiveWindow is how long after its last chunk an upload still
// counts as in progress.
const DefaultActiveWindow = time.Minute

// Uploads tracks the uploads in progress in each namespace, in this process,
// and with Max set turns away new ones over the limit.
//
// An upload is in progress from its first chunk while a chunk of it is being
// received or one was received less than Window ago; it stops being in
// progress when its last chunk makes it ready, or when its only requests so
// far were refused. With Max > 0, the first chunk of an upload that is not in
// progress and that the server has no record of (a new upload) is refused
// with 429 and Retry-After while its namespace already has Max in progress.
// Chunks of uploads in progress, and of uploads the server already knows
// (one resumed after a pause or a restart), always pass, and the test GET
// and the status request are never limited.
//
// Uploads is an upload.Admission: the service asks it before it stores a
// chunk. The embedded server uses one Uploads; on AWS every Lambda instance
// would have its own, so the limit is a local-mode setting.
type Uploads struct {
	// Max is the most new uploads in progress per namespace; 0 means no limit.
	Max int
	// Window is how long an upload with no chunk arriving still counts;
	// 0 means DefaultActiveWindow.
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	byNS   map[string]map[string]*activity
	pruned time.Time
}

type activity struct {
	inflight int
	last     time.Time
	accepted bool // a chunk of it was taken
}

func (u *Uploads) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Uploads) window() time.Duration {
	if u.Window > 0 {
		return u.Window
	}
	return DefaultActiveWindow
}

func (a *activity) active(now time.Time, window time.Duration) bool {
	return a.inflight > 0 || now.Sub(a.last) < window
}

// TooManyUploads is the refusal of a new upload over the limit.
type TooManyUploads struct {
	Max        int
	RetryAfter time.Duration
}

func (e *TooManyUploads) Error() string {
	return fmt.Sprintf("%d uploads are already in progress, the most allowed at once; try again in %s", e.Max, e.RetryAfter)
}

// Admit is called (by the upload service, whose Admission it is) before a
// chunk of info is stored; state tells whether the server knows the upload.
// The returned end must be called once the chunk is taken or refused, with
// whether it was taken and whether it made the upload ready.
func (u *Uploads) Admit(ctx context.Context, info upload.Info, st upload.State) (end func(ok, ready bool), err error) {
	ns, key := info.Namespace, info.Key
	u.mu.Lock()
	if a := u.get(ns, key); a != nil && a.active(u.now(), u.window()) {
		a.inflight++
		u.mu.Unlock()
		return u.ender(ns, key), nil
	}
	u.mu.Unlock()

	track := true
	if u.Max > 0 {
		if st.PastReceiving() {
			// A late duplicate of a finished upload: let it through, it
			// changes nothing, and it is not in progress.
			track = false
		}
		if st != upload.StateUnknown {
			u.mu.Lock()
			defer u.mu.Unlock()
			if track {
				u.add(ns, key)
				return u.ender(ns, key), nil
			}
			return func(bool, bool) {}, nil
		}
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	now, window := u.now(), u.window()
	u.prune(now)
	if a := u.get(ns, key); a != nil && a.active(now, window) {
		a.inflight++ // another chunk of it was admitted meanwhile
		return u.ender(ns, key), nil
	}
	if u.Max > 0 {
		n, soonest := 0, window
		for _, a := range u.byNS[ns] {
			if a.active(now, window) {
				n++
				if a.inflight == 0 {
					soonest = min(soonest, window-now.Sub(a.last))
				}
			}
		}
		if n >= u.Max {
			return nil, &TooManyUploads{Max: u.Max, RetryAfter: max(soonest.Round(time.Second), time.Second)}
		}
	}
	u.add(ns, key)
	return u.ender(ns, key), nil
}

func (u *Uploads) get(ns, key string) *activity { return u.byNS[ns][key] }

// add counts a chunk in flight for the upload; the caller holds mu.
func (u *Uploads) add(ns, key string) {
	if u.byNS == nil {
		u.byNS = map[string]map[string]*activity{}
	}
	m := u.byNS[ns]
	if m == nil {
		m = map[string]*activity{}
		u.byNS[ns] = m
	}
	a := m[key]
	if a == nil {
		a = &activity{}
		m[key] = a
	}
	a.inflight++
	a.last = u.now()
}

func (u *Uploads) ender(ns, key string) func(ok, ready bool) {
	var once sync.Once
	return func(ok, ready bool) {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			a := u.get(ns, key)
			if a == nil {
				return
			}
			a.inflight--
			a.last = u.now()
			if ok {
				a.accepted = true
			}
			if ready || (!a.accepted && a.inflight == 0) {
				u.remove(ns, key)
			}
		})
	}
}

func (u *Uploads) remove(ns, key string) {
	delete(u.byNS[ns], key)
	if len(u.byNS[ns]) == 0 {
		delete(u.byNS, ns)
	}
}

// prune forgets uploads idle past the window, at most once per window;
// the caller holds mu.
func (u *Uploads) prune(now time.Time) {
	window := u.window()
	if now.Sub(u.pruned) < window {
		return
	}
	u.pruned = now
	for ns, m := range u.byNS {
		for key, a := range m {
			if !a.active(now, window) {
				u.remove(ns, key)
			}
		}
	}
}

// InProgress is how many uploads are in progress, all namespaces together.
func (u *Uploads) InProgress() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	now, window := u.now(), u.window()
	n := 0
	for _, m := range u.byNS {
		for _, a := range m {
			if a.active(now, window) {
				n++
			}
		}
	}
	return n
}

// retryAfter is the Retry-After header value for d, in whole seconds.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(max((d+time.Second-1)/time.Second, 1))))
}
