package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// Size is the size in bytes a Backup writes now.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Check walks every page of the file and reports the first inconsistency
// (bbolt's consistency check), for verifying a backup before restoring it.
func (s *Store) Check(ctx context.Context) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) == 5 {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s is inconsistent: %w", s.path, errors.Join(errs...))
		}
		for _, b := range [][]byte{bucketEvents, bucketMembers, bucketOutbox, bucketMeta} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s is not a wecombot database (no %s bucket)", s.path, b)
			}
		}
		return nil
	})
}

// Summary counts what the file holds, for backup and restore reports.
type Summary struct {
	Members int
	Events  bot.EventStats
	Outbox  bot.OutboxStats
	Bytes   int64
}

// Summarize counts members, events and outbox actions.
func (s *Store) Summarize(ctx context.Context) (Summary, error) {
	var sum Summary
	var err error
	if sum.Events, err = s.EventStats(ctx); err != nil {
		return sum, err
	}
	if sum.Outbox, err = s.OutboxStats(ctx); err != nil {
		return sum, err
	}
	err = s.View(ctx, func(tx bot.Tx) error {
		sum.Members, err = tx.MemberCount()
		return err
	})
	sum.Bytes = s.Size()
	return sum, err
}
