package bolt

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/wecombot/wecombot/bot/loadtest"
)

// BenchmarkDurableAppend prices what one ingest-log group costs the disk
// on this machine, apart from wecombot: an overwrite of a record in a
// preallocated file and its fdatasync (what flush does), and the two
// device operations that sync is made of where the disk has a write-back
// cache and no FUA (/sys/block/*/queue/fua 0): the data write (O_DIRECT)
// and the cache flush (fdatasync of a clean file). It reports wall time
// per operation and the process's CPU per operation (cpu-µs/op: on a
// virtual disk each device operation costs the guest CPU too). The ack
// path's ratio to the bare handler depends on these next to the CPU's
// speed (docs/performance.md, "Why the missed targets are missed").
func BenchmarkDurableAppend(b *testing.B) {
	const record, span = 1500, 8 << 20
	path := filepath.Join(b.TempDir(), "append")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, span), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	direct, err := syscall.Open(path, syscall.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		b.Skipf("O_DIRECT: %v", err)
	}
	defer syscall.Close(direct)
	buf := make([]byte, record)
	aligned := alignedBlock(2048) // O_DIRECT: a sector-aligned buffer and offset
	cases := []struct {
		name string
		op   func(off int64) error
	}{
		{"write+fdatasync", func(off int64) error {
			if _, err := f.WriteAt(buf, off); err != nil {
				return err
			}
			return fdatasync(f)
		}},
		{"o_direct_write", func(off int64) error {
			_, err := syscall.Pwrite(direct, aligned, off)
			return err
		}},
		{"flush_only", func(int64) error { return fdatasync(f) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := loadtest.ProcessCPU()
			var off int64
			for b.Loop() {
				if err := c.op(off); err != nil {
					b.Fatal(err)
				}
				off = (off + 2048) % (span - 4096)
			}
			b.ReportMetric(float64(loadtest.ProcessCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

// alignedBlock is n bytes starting on a 4096-byte boundary.
func alignedBlock(n int) []byte {
	raw := make([]byte, n+4096)
	skip := (4096 - int(uintptr(unsafe.Pointer(&raw[0]))&4095)) & 4095
	return raw[skip : skip+n]
}
