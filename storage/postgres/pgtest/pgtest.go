// Package pgtest gives tests a fresh PostgreSQL database: on the cluster
// named by WECOMBOT_TEST_DATABASE_URL, else on a throwaway cluster it starts
// itself from the installed server binaries, else it skips them with one
// line saying how to run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the cluster the Postgres tests use.
const EnvVar = "WECOMBOT_TEST_DATABASE_URL"

// SkipMessage is the one line a skipped Postgres test prints.
const SkipMessage = "Postgres tests skipped: set " + EnvVar + ` or install postgresql-15 (eval "$(.ci/postgres start)" starts a throwaway cluster and prints the variable; .ci/postgres stop removes it)`

// URL returns the test cluster's URL: EnvVar, else a cluster started for
// this test binary; it skips t when there is neither.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvVar); u != "" {
		return u
	}
	clusterOnce.Do(startCluster)
	if clusterURL == "" {
		t.Skip(SkipMessage + " — " + clusterWhy)
	}
	return clusterURL
}

// Database creates an empty database on the test cluster, drops it when t
// ends, and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	base := URL(t)
	raw := make([]byte, 6)
	_, _ = rand.Read(raw)
	name := "wbtest_" + hex.EncodeToString(raw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s=%s: %v", EnvVar, base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs one statement on the database at dbURL (test set-up and checks).
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", sql, err))
	}
}
