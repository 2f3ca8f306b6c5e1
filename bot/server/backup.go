package server

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// backuper is a store that can stream a consistent snapshot of itself
// (storage/bolt: a read transaction's WriteTo).
type backuper interface {
	Backup(w io.Writer) (int64, error)
}

// BackupWriteTimeout bounds one backup download; the server's usual write
// timeout is far too short for a large file.
const BackupWriteTimeout = 30 * time.Minute

// apiBackup streams a consistent copy of the database from a read
// transaction: safe while serving, writers are not blocked. `wecombot
// backup` uses it when the server holds the file's lock.
func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request) {
	b, ok := s.o.Store.(backuper)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this storage backend cannot stream a backup: with PostgreSQL use pg_dump (docs/deploy.md)")
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(BackupWriteTimeout))
	start := s.o.Now()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="wecombot-%s.db"`, start.UTC().Format("20060102T150405Z")))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	n, err := b.Backup(w)
	if err != nil {
		s.log.Error().Err(err).Int64("bytes", n).Msg("backup failed mid-stream")
		// Cut the connection so the client sees a truncated body, not a short file.
		panic(http.ErrAbortHandler)
	}
	s.log.Info().Int64("bytes", n).Dur("took_ms", time.Since(start)).Str("remote", r.RemoteAddr).Msg("backup streamed")
}
