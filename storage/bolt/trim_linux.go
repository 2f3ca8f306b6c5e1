package bolt

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"

	bbolt "go.etcd.io/bbolt"
)

// trimMapping drops the file's pages from this process's page tables
// (madvise MADV_DONTNEED over bbolt's read-only shared mapping). bbolt
// reads through the mapping; every page fault there maps up to 16
// neighbouring cached pages too (the kernel's fault-around — MADV_RANDOM
// does not turn it off), so a million members' random reads left most
// of the file resident in the process (a 1.7 GB file: 1.3 GB RssFile
// after 20,000 random page reads here). The pages stay in the page cache
// and the next read maps them again (a minor fault); nothing is lost,
// since bbolt never writes through the mapping. The read transaction
// holds bbolt's mapping lock, so the file cannot be remapped meanwhile;
// the mapping's extent is read from /proc/self/maps (bbolt maps more
// than the file holds, and never less than its pages).
func (s *Store) trimMapping() error {
	return s.db.View(func(*bbolt.Tx) error {
		start := s.db.Info().Data
		size, err := mappingSize(start)
		if err != nil || size == 0 {
			return err
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, size, syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
}

// mappingSize is the length of this process's mapping that starts at
// start (0 when there is none).
func mappingSize(start uintptr) (uintptr, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.IndexByte(line, '-')
		j := bytes.IndexByte(line, ' ')
		if i < 0 || j < i {
			continue
		}
		lo, err1 := strconv.ParseUint(string(line[:i]), 16, 64)
		hi, err2 := strconv.ParseUint(string(line[i+1:j]), 16, 64)
		if err1 == nil && err2 == nil && uintptr(lo) == start && hi > lo {
			return uintptr(hi - lo), nil
		}
	}
	return 0, sc.Err()
}

// fileResident reads this process's file-backed resident memory from
// /proc/self/statm (its third field: resident shared pages, i.e. RssFile
// plus RssShmem), kept open and re-read from the start each time.
type fileResident struct {
	f    *os.File
	buf  []byte
	page int64
}

func openFileResident() *fileResident {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return &fileResident{}
	}
	return &fileResident{f: f, buf: make([]byte, 128), page: int64(os.Getpagesize())}
}

// read is the file-backed resident memory in bytes (0 when unknown).
func (r *fileResident) read() int64 {
	if r.f == nil {
		return 0
	}
	n, err := r.f.ReadAt(r.buf, 0)
	if n == 0 && err != nil {
		return 0
	}
	fields := bytes.Fields(r.buf[:n])
	if len(fields) < 3 {
		return 0
	}
	pages, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * r.page
}

func (r *fileResident) close() {
	if r.f != nil {
		_ = r.f.Close()
	}
}
