package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
)

var (
	_ bot.Cluster = (*Store)(nil)
	_ bot.Locker  = (*Store)(nil)
)

// defaultLeaseTTL is how long a node's partition leases last without a
// heartbeat: a dead node's partitions move to the survivors after this.
const defaultLeaseTTL = 5 * time.Second

// NodeID implements bot.Cluster.
func (s *Store) NodeID() string { return s.o.NodeID }

// Partition implements bot.Cluster.
func (s *Store) Partition(ev *bot.Event) int { return Partition(ev) }

func (s *Store) leaseTTL() time.Duration {
	if s.o.LeaseTTL > 0 {
		return s.o.LeaseTTL
	}
	return defaultLeaseTTL
}

func interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }

// Heartbeat implements bot.Cluster. Lease times are the database's clock.
func (s *Store) Heartbeat(ctx context.Context) ([]int, error) {
	ttl := interval(s.leaseTTL())
	me := s.o.NodeID
	var owned []int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		owned = owned[:0]
		if _, err := tx.Exec(ctx, `INSERT INTO nodes (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()`, me); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nodes WHERE seen_at < now() - $1::interval * 10`, ttl); err != nil {
			return err
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE seen_at > now() - $1::interval`, ttl).Scan(&live); err != nil {
			return err
		}
		fair := int(math.Ceil(float64(Partitions) / float64(max(live, 1))))
		rows, err := tx.Query(ctx, `UPDATE partitions SET lease_until = now() + $2::interval WHERE owner = $1 AND lease_until > now() RETURNING p`, me, ttl)
		if err != nil {
			return err
		}
		mine, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i] < mine[j] })
		if len(mine) > fair {
			// Give back the extra ones so a node that joined gets its share.
			if _, err := tx.Exec(ctx, `UPDATE partitions SET owner = NULL, lease_until = NULL WHERE owner = $1 AND p = ANY($2)`, me, mine[fair:]); err != nil {
				return err
			}
			mine = mine[:fair]
		} else if len(mine) < fair {
			rows, err := tx.Query(ctx, `UPDATE partitions SET owner = $1, lease_until = now() + $2::interval
				WHERE p IN (SELECT p FROM partitions WHERE owner IS NULL OR lease_until <= now() ORDER BY p LIMIT $3 FOR UPDATE SKIP LOCKED)
				RETURNING p`, me, ttl, fair-len(mine))
			if err != nil {
				return err
			}
			took, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				return err
			}
			mine = append(mine, took...)
		}
		for _, p := range mine {
			owned = append(owned, int(p))
		}
		return nil
	})
	sort.Ints(owned)
	return owned, err
}

// Leave implements bot.Cluster.
func (s *Store) Leave(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE partitions SET owner = NULL, lease_until = NULL WHERE owner = $1`, s.o.NodeID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, s.o.NodeID)
		return err
	})
}

// PendingEventsIn implements bot.Cluster.
func (s *Store) PendingEventsIn(ctx context.Context, parts []int, after uint64, limit int) ([]bot.Event, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM events WHERE NOT processed AND seq > $1 AND part = ANY($2) ORDER BY seq LIMIT $3`, int64(after), parts, limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// UpdateOwned implements bot.Cluster: the lease row is read FOR SHARE in
// the transaction, so a takeover (an UPDATE of that row) waits for it to
// commit, and a transaction that starts after the lease lapsed or moved
// commits nothing.
func (s *Store) UpdateOwned(ctx context.Context, part int, fn func(bot.Tx) error) error {
	return s.Update(ctx, func(tx bot.Tx) error {
		t := tx.(*pgTx)
		var owner *string
		err := t.row(`SELECT owner FROM partitions WHERE p = $1 AND lease_until > now() FOR SHARE`, []any{part}, &owner)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (owner == nil || *owner != s.o.NodeID)) {
			return bot.ErrNotOwner
		}
		if err != nil {
			return err
		}
		return fn(tx)
	})
}

// ClaimDue implements bot.Cluster: FOR UPDATE SKIP LOCKED, so nodes
// claiming at once take different actions without waiting on each other.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]bot.Action, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
		UPDATE outbox o SET lease_owner = $3, lease_until = now() + $4::interval
		FROM (SELECT id FROM outbox WHERE status = 'pending' AND due_at <= $1 AND (lease_until IS NULL OR lease_until <= now())
			ORDER BY urgent DESC, due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) pick
		WHERE o.id = pick.id
		RETURNING o.id, o.body, o.state`, now, limit, s.o.NodeID, interval(lease))
	if err != nil {
		return nil, err
	}
	out, err := scanActions(rows)
	claimOrder(out)
	return out, err
}

// Listen implements bot.Cluster on LISTEN/NOTIFY: appends notify
// wecombot_events, enqueues wecombot_outbox, both at commit.
func (s *Store) Listen(ctx context.Context, onEvent, onOutbox func()) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, onEvent, onOutbox)
		if ctx.Err() != nil {
			return
		}
		if s.o.Log != nil {
			s.o.Log("listen for wake-ups", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, onEvent, onOutbox func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN wecombot_events; LISTEN wecombot_outbox`); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: stop listening on it first.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `UNLISTEN *`)
	}()
	// Anything appended while not listening is picked up by this wake-up.
	onEvent()
	onOutbox()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case "wecombot_events":
			onEvent()
		case "wecombot_outbox":
			onOutbox()
		}
	}
}

// lockKey maps a lock name to an advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("wecombot:" + name))
	return int64(h.Sum64())
}

// Lock implements bot.Locker with a session advisory lock held on a
// connection taken from the pool until release (so a crashed node's locks
// go with its connections).
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := lockKey(name)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// Unsure whether the lock is still held: drop the connection, which releases it.
			_ = conn.Conn().Close(context.Background())
		}
		conn.Release()
	}, nil
}

// defaultNodeID is host-pid, unique among live nodes.
func defaultNodeID() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "node"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
