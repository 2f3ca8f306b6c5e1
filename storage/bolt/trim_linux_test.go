package bolt

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/storagetest"
)

// mappedKB is the resident size of this process's mapping of path
// (/proc/self/smaps), in kB.
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && fields[len(fields)-1] == path
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			kb += n
		}
	}
	return kb
}

// storeWithMembers opens a store in a temporary directory with n members
// (closed at the test's end) and returns it and its file's path.
func storeWithMembers(t *testing.T, o Options, n int) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wecombot.db")
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Update(context.Background(), func(tx bot.Tx) error {
		for i := range n {
			if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%06d", i), Name: fmt.Sprintf("会员%d", i), Tags: []string{"vip"}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// TestTrimMappingDropsResidentPages: reading the members faults the file's
// pages into the process; a trim drops them from its memory map, and the
// members read back the same.
func TestTrimMappingDropsResidentPages(t *testing.T) {
	t.Parallel()
	const n = 5000
	s, path := storeWithMembers(t, Options{NoSync: true, TrimEvery: -1}, n)
	ctx := context.Background()
	read := func() int {
		count := 0
		if err := s.View(ctx, func(tx bot.Tx) error {
			return tx.Members("", func(m *bot.Member) bool {
				if m.Name == fmt.Sprintf("会员%d", count) {
					count++
				}
				return true
			})
		}); err != nil {
			t.Fatal(err)
		}
		return count
	}
	if got := read(); got != n {
		t.Fatalf("read %d members, want %d", got, n)
	}
	before := mappedKB(t, path)
	if before < 256 {
		t.Fatalf("reading %d members left %d kB of the file mapped: the test reads too little", n, before)
	}
	if err := s.trimMapping(); err != nil {
		t.Fatal(err)
	}
	if after := mappedKB(t, path); after > before/10 {
		t.Errorf("after the trim %d kB mapped (before %d kB)", after, before)
	}
	if got := read(); got != n {
		t.Errorf("after the trim read %d members, want %d", got, n)
	}
}

// TestTrimHoldsTheMapBudget: with a budget of 256 KiB checked every 5 ms,
// reading many members (which maps far more of the file than that) makes
// the store trim on its own: the file's mapped pages drop back under a
// quarter of what the reads mapped, and the counter says it trimmed.
func TestTrimHoldsTheMapBudget(t *testing.T) {
	t.Parallel()
	s, path := storeWithMembers(t, Options{NoSync: true, TrimEvery: 5 * time.Millisecond, MapBudget: 256 << 10}, 20000)
	ctx := context.Background()
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < 4<<20 {
		t.Fatalf("file %v bytes (%v): the test needs one much larger than the budget", fi.Size(), err)
	}
	// A full read maps the whole file (its pages and their neighbours)
	// unless the store trims: after it, a trim has run and the mapping
	// holds no more than a few budgets.
	if err := s.View(ctx, func(tx bot.Tx) error {
		return tx.Members("", func(*bot.Member) bool { return true })
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		kb := mappedKB(t, path)
		if s.Trims() > 0 && kb < 1024 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d trims; the file's mapping holds %d kB of %d kB, budget 256 kB", s.Trims(), kb, fi.Size()>>10)
		}
	}
}

// TestTrimWhileServing: trims every millisecond while writers grow the
// file (bbolt remaps it) and readers read: every write lands, every read
// sees whole members.
func TestTrimWhileServing(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "wecombot.db"), Options{NoSync: true, TrimEvery: time.Millisecond, MapBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Update(ctx, func(tx bot.Tx) error {
					for j := range 200 {
						if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%d_%06d_%03d", w, i, j), Name: strings.Repeat("名", 50)}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		if err := s.View(ctx, func(tx bot.Tx) error {
			return tx.Members("", func(m *bot.Member) bool {
				if m.Name != strings.Repeat("名", 50) {
					t.Errorf("member %s read as %q", m.ExternalUserID, m.Name)
					return false
				}
				return true
			})
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	storagetest.CheckMemberIndex(t, s)
}
