package bolt

import (
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// groupCommit shares one write transaction and one fsync among concurrent
// writers, without a fixed delay: the first caller with nothing committing
// commits at once (alone, when the store is idle); callers arriving while
// a group commits and syncs queue up and form the next group, which the
// first of them commits as soon as the disk is free. Under load groups grow
// with the fsync time; idle, an append waits for nothing but its own sync.
// (bbolt's DB.Batch instead waits MaxBatchDelay, 2 ms here, for company.)
//
// A function that fails is taken out of its group, which runs again
// without it (the functions must tolerate re-runs and change nothing
// outside the transaction); it gets its own error and is not run again. A
// failed commit fails the whole group.
type groupCommit struct {
	db *bbolt.DB

	mu      sync.Mutex
	pending []*gcCall
	busy    bool // a leader is committing
}

type gcCall struct {
	fn   func(*bbolt.Tx) error
	err  error
	done chan struct{} // closed when err is set
	lead chan struct{} // closed when this caller is to commit the next group
}

// maxGroup bounds the functions in one transaction.
const maxGroup = 1000

func (g *groupCommit) run(fn func(*bbolt.Tx) error) error {
	c := &gcCall{fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-c.lead: // the previous leader handed over: commit what queued
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	g.mu.Lock()
	group := g.pending[:min(len(g.pending), maxGroup)]
	g.pending = append([]*gcCall(nil), g.pending[len(group):]...)
	g.mu.Unlock()
	g.commit(group)
	g.mu.Lock()
	if len(g.pending) > 0 {
		close(g.pending[0].lead) // the next group formed while this one synced
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	<-c.done
	return c.err
}

// commit runs the group's functions in one transaction, taking out each
// that fails (and running the rest again) until the rest commit.
func (g *groupCommit) commit(group []*gcCall) {
	for len(group) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bbolt.Tx) error {
			denseAppends(tx)
			for i, c := range group {
				if err := c.fn(tx); err != nil {
					failed = i
					c.err = err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			close(group[failed].done)
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		for _, c := range group {
			c.err = err // nil, or the commit's failure for all
			close(c.done)
		}
		return
	}
}
