package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
	"github.com/wecombot/wecombot/storage/storagetest"
)

func open(t *testing.T, clock *storagetest.Clock, ttl time.Duration) bot.Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.Database(t), Options{Now: clock.Now, DedupeTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storagetest.Run(t, open)
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
