package dirstore

import "sync"

// syncer is what groupSync flushes: an *os.File.
type syncer interface{ Sync() error }

// groupSync lets the writers of one file share fsyncs. Every chunk must be
// durable before it is counted, but an fsync flushes the whole file, so when
// several chunks of an upload are written at once one fsync can cover them
// all. A writer whose bytes are written joins the next fsync that starts
// after that moment: it starts one if none is running, and otherwise waits
// for the running one to end and shares the one that follows.
type groupSync struct {
	mu   sync.Mutex
	cur  *syncRound // running
	next *syncRound // starts when cur ends; everyone who arrives meanwhile shares it
	refs int        // writers using this groupSync (the Store's map keeps it while > 0)
}

type syncRound struct {
	start chan struct{} // closed when the round may begin
	done  chan struct{} // closed when its fsync returned
	err   error
}

// Sync returns once an fsync of f's file that began after the call has ended.
func (g *groupSync) Sync(f syncer) error {
	g.mu.Lock()
	if g.cur == nil {
		r := &syncRound{done: make(chan struct{})}
		g.cur = r
		g.mu.Unlock()
		return g.run(r, f)
	}
	if r := g.next; r != nil {
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &syncRound{start: make(chan struct{}), done: make(chan struct{})}
	g.next = r
	g.mu.Unlock()
	<-r.start
	return g.run(r, f)
}

// run does round r's fsync with the leader's file (any descriptor of the
// file flushes the same data), then hands over to the next round.
func (g *groupSync) run(r *syncRound, f syncer) error {
	r.err = f.Sync()
	g.mu.Lock()
	g.cur, g.next = g.next, nil
	if g.cur != nil {
		close(g.cur.start)
	}
	g.mu.Unlock()
	close(r.done)
	return r.err
}

// syncGroups keeps a groupSync per file (a staging file, a directory) while
// someone is syncing it, so that every writer of the same file finds the
// same one.
type syncGroups struct {
	mu sync.Mutex
	m  map[string]*groupSync
}

// sync makes the file named name durable, sharing the fsync with the other
// writers of that name; f is an open descriptor of it.
func (s *syncGroups) sync(name string, f syncer) error {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*groupSync{}
	}
	g := s.m[name]
	if g == nil {
		g = &groupSync{}
		s.m[name] = g
	}
	g.refs++
	s.mu.Unlock()
	err := g.Sync(f)
	s.mu.Lock()
	if g.refs--; g.refs == 0 {
		delete(s.m, name)
	}
	s.mu.Unlock()
	return err
}

// active is how many files have a groupSync now.
func (s *syncGroups) active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
