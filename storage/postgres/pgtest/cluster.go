package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A throwaway cluster the tests start themselves when EnvVar is unset and
// PostgreSQL's server binaries are installed (Debian's postgresql-15: not
// on PATH), so `go test ./...` runs the Postgres tests without set-up.
// It lives in a temp directory, listens on a free loopback port, runs
// without fsync, and is stopped by Stop (call it from TestMain).
var (
	clusterOnce sync.Once
	clusterURL  string
	clusterWhy  string
	clusterStop func()
)

// binDir is where Debian installs the server binaries.
func binDir() string {
	if d := os.Getenv("WECOMBOT_PG_BIN"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

func startCluster() {
	bin := binDir()
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		clusterWhy = "no PostgreSQL server binaries in " + bin
		return
	}
	dir, err := os.MkdirTemp("", "wecombot-pgtest-")
	if err != nil {
		clusterWhy = err.Error()
		return
	}
	// initdb refuses to run as root: run the cluster as the postgres user.
	var wrap []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			clusterWhy = "running as root and there is no postgres user to run the cluster as"
			os.RemoveAll(dir)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			clusterWhy = err.Error()
			os.RemoveAll(dir)
			return
		}
		wrap = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		all := append(append([]string{}, wrap...), args...)
		out, err := exec.Command(all[0], all[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", filepath.Base(args[0]), err, out)
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		clusterWhy = err.Error()
		return
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	data := filepath.Join(dir, "data")
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		clusterWhy = err.Error()
		os.RemoveAll(dir)
		return
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB", port, dir)
	if err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start", "-o", opts); err != nil {
		clusterWhy = err.Error()
		os.RemoveAll(dir)
		return
	}
	clusterStop = func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	clusterURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, clusterURL)
	if err == nil {
		err = conn.Close(ctx)
	}
	if err != nil {
		clusterWhy = errors.Join(errors.New("the test cluster does not answer"), err).Error()
		clusterStop()
		clusterURL, clusterStop = "", nil
	}
}

// Stop stops the cluster the tests started, if any (call it from TestMain
// after m.Run).
func Stop() {
	if clusterStop != nil {
		clusterStop()
		clusterStop = nil
	}
}
