package main

// Disk fault tests on the built binary: the data directory sits on a small
// ext4 file system the test makes (a loop-mounted image), which it fills up
// or turns read-only (ext4's own emergency remount, as after an I/O error).
// They need root to mount; elsewhere they skip saying so. CI runs as root.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// smallFS is a loop-mounted ext4 file system of sizeMB.
type smallFS struct {
	img, dir string
}

func mountSmallFS(t *testing.T, sizeMB int) *smallFS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small file system for the disk-full / read-only test (CI runs as root)")
	}
	base := t.TempDir()
	fs := &smallFS{img: filepath.Join(base, "fs.img"), dir: filepath.Join(base, "mnt")}
	if err := os.Mkdir(fs.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(fs.img)
	if err == nil {
		err = f.Truncate(int64(sizeMB) << 20)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", fs.img).CombinedOutput(); err != nil {
		t.Skipf("cannot make an ext4 image here (mkfs.ext4: %v %s): skipping the disk fault test", err, out)
	}
	fs.mount(t, true)
	t.Cleanup(func() { fs.unmount() })
	return fs
}

func (fs *smallFS) mount(t *testing.T, skipOnError bool) {
	t.Helper()
	out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", fs.img, fs.dir).CombinedOutput()
	if err != nil {
		if skipOnError {
			t.Skipf("cannot loop-mount a file system here (%v %s): skipping the disk fault test", err, out)
		}
		t.Fatalf("mount: %v %s", err, out)
	}
}

func (fs *smallFS) unmount() {
	_ = exec.Command("umount", fs.dir).Run()
}

// fill writes a filler file until the file system is full.
func (fs *smallFS) fill(t *testing.T) string {
	t.Helper()
	path := filepath.Join(fs.dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				_ = f.Sync()
				return path
			}
			t.Fatalf("fill: %v", err)
		}
	}
}

// turnReadOnly makes ext4 fail as after an I/O error: with errors=remount-ro
// it remounts itself read-only (emergency_ro) under the running process.
func (fs *smallFS) turnReadOnly(t *testing.T) {
	t.Helper()
	src, err := exec.Command("findmnt", "-n", "-o", "SOURCE", fs.dir).Output()
	if err != nil {
		t.Fatalf("findmnt: %v", err)
	}
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(src))), "trigger_fs_error")
	if err := os.WriteFile(trigger, []byte("1"), 0o200); err != nil {
		t.Skipf("this kernel cannot turn ext4 read-only on demand (%v): skipping", err)
	}
	eventuallyT(t, "the file system to be read-only", 5*time.Second, func() bool {
		return os.WriteFile(filepath.Join(fs.dir, "probe"), []byte("x"), 0o600) != nil
	})
}

// repair unmounts, checks and remounts the file system read-write.
func (fs *smallFS) repair(t *testing.T) {
	t.Helper()
	fs.unmount()
	// e2fsck exits 1 when it fixed something: fine.
	if out, err := exec.Command("e2fsck", "-f", "-y", fs.img).CombinedOutput(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() > 2 {
			t.Fatalf("e2fsck: %v %s", err, out)
		}
	}
	fs.mount(t, false)
}

// expectUnhealthy waits (bounded) for /healthz to answer 503 naming the
// store; it reports, and the test goes on to check what was lost.
func (p *proc) expectUnhealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := p.healthz(t)
		// bbolt may also give up its mapping after a failed grow: then the
		// store is unavailable, which /healthz says as plainly.
		if code == http.StatusServiceUnavailable && (strings.Contains(body, "store refuses writes") || strings.Contains(body, "storage unavailable")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("/healthz answers %d %.200s while the store refuses writes, want 503 saying so", code, body)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) healthz(t *testing.T) (int, string) {
	t.Helper()
	return doReq(t, mustReq(t, http.MethodGet, p.base+"/healthz"))
}

// contactAdds counts the contact.add events in the log by member.
func (p *proc) contactAdds(t *testing.T) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for cursor := ""; ; {
		var page struct {
			Events     []bot.Event `json:"events"`
			NextCursor string      `json:"next_cursor"`
		}
		p.getJSON(t, fmt.Sprintf("/api/v1/events?cursor=%s&limit=1000", cursor), &page)
		for _, ev := range page.Events {
			if ev.Type == bot.EventContactAdd {
				seen[ev.ExternalUserID]++
			}
		}
		if page.NextCursor == "" {
			return seen
		}
		cursor = page.NextCursor
	}
}

// outboxActions reads every outbox action.
func (p *proc) outboxActions(t *testing.T) []bot.Action {
	t.Helper()
	var all []bot.Action
	for cursor := ""; ; {
		var page struct {
			Actions    []bot.Action `json:"actions"`
			NextCursor string       `json:"next_cursor"`
		}
		p.getJSON(t, fmt.Sprintf("/api/v1/outbox?cursor=%s&limit=1000", cursor), &page)
		all = append(all, page.Actions...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// checkNothingLostNothingTwice asserts, after repair and a drain: every
// acknowledged add is a member with one contact.add in the log, no event
// failed, no welcome code reached WeCom twice except as the inferred
// resolution of a possibly delivered attempt, and every welcome WeCom took
// shows as sent. It returns the figures for the log.
func checkNothingLostNothingTwice(t *testing.T, p *proc, fake *fakewecom.Server, reqs []*signed, ackedWhileFaulty int) {
	t.Helper()
	st := p.drained(t, 60*time.Second)
	if n := num(st, "events", "failed"); n != 0 {
		t.Errorf("%v events recorded as failed: a storage error was taken as a verdict", n)
	}
	seen := p.contactAdds(t)
	lost := 0
	for _, r := range reqs {
		if !r.acked {
			t.Errorf("%s never acknowledged after the repair", r.user)
			continue
		}
		if seen[r.user] != 1 {
			t.Errorf("%s in the log %d times", r.user, seen[r.user])
		}
		if code, _ := doReq(t, mustReq(t, http.MethodGet, p.base+"/api/v1/members/"+r.user)); code != http.StatusOK {
			lost++
			t.Errorf("%s was acknowledged but is not a member (%d)", r.user, code)
		}
	}
	calls := map[string]int{}
	for _, c := range fake.Calls(fakewecom.APISendWelcomeMsg) {
		code, _ := c.Body["welcome_code"].(string)
		calls[code]++
	}
	status := map[string]*bot.Action{}
	possibly, inferred := 0, 0
	for _, a := range p.outboxActions(t) {
		if a.PossiblyDelivered {
			possibly++
		}
		if a.Kind != bot.ActionWelcome {
			continue
		}
		var w bot.WelcomeMessage
		_ = json.Unmarshal(a.Payload, &w)
		status[w.WelcomeCode] = &a
		if strings.Contains(a.Detail, "41051") {
			inferred++
		}
	}
	twice, delivered := 0, 0
	for _, r := range reqs {
		n := calls[r.code]
		a := status[r.code]
		if n > 0 {
			delivered++
		}
		switch {
		case a == nil:
			if n > 0 {
				t.Errorf("%s sent without an outbox action", r.code)
			}
		case n > 1 && !(a.Status == bot.ActionSent && strings.Contains(a.Detail, "41051")):
			twice++
			t.Errorf("%s reached WeCom %d times (status %s, %q)", r.code, n, a.Status, a.Detail)
		case n > 0 && a.Status != bot.ActionSent:
			t.Errorf("%s was delivered but shows as %s: %s", r.code, a.Status, a.LastError)
		}
	}
	t.Logf("figures: %d adds, %d acknowledged while the disk was faulty, %d acknowledged-then-lost, %d welcomes delivered, %d delivered twice, %d possibly delivered (%d resolved by 41051)",
		len(reqs), ackedWhileFaulty, lost, delivered, twice, possibly, inferred)
}

func ackedCount(reqs []*signed) int {
	n := 0
	for _, r := range reqs {
		if r.acked {
			n++
		}
	}
	return n
}

// TestBinaryDiskFullLosesNoAcknowledgedEvent covers defects 1 and 6 of
// issue 15: with the data directory's file system full, callbacks the
// store cannot take are answered 500 (WeCom retries them), /healthz is 503
// naming the store, acknowledged events wait as pending instead of being
// failed; once space is freed every acknowledged add becomes a member, no
// event is failed and no welcome goes out twice.
func TestBinaryDiskFullLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and mounts a file system")
	}
	fs := mountSmallFS(t, 24)
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, filepath.Join(fs.dir, "data"))
	env["WECOMBOT_LOG_LEVEL"] = "error"
	wecombotBinary(t) // build before signing: the adds' welcome codes live 20 s
	p := startProc(t, env)
	warm := signAdds(t, c, 20, "warm")
	deliver(p.base, warm, 8, nil)
	p.drained(t, 30*time.Second)

	filler := fs.fill(t)
	reqs := signAdds(t, c, 80, "full")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { deliver(p.base, reqs, 8, stop); close(done) }()
	p.expectUnhealthy(t)
	time.Sleep(time.Second) // WeCom keeps delivering for a while against the full disk
	close(stop)
	<-done
	ackedWhileFull := ackedCount(reqs)
	var st map[string]any
	p.getJSON(t, "/api/v1/status", &st)
	if n := num(st, "events", "failed"); n != 0 {
		t.Errorf("while the disk is full %v events were recorded as failed", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deliver(p.base, reqs, 8, nil) // WeCom's retries of what was refused
	eventuallyT(t, "/healthz to recover", 20*time.Second, func() bool {
		code, _ := p.healthz(t)
		return code == http.StatusOK
	})
	checkNothingLostNothingTwice(t, p, fake, append(warm, reqs...), ackedWhileFull)
	p.term(t)
}

// TestBinaryReadOnlyFileSystemSendsNothingTwice covers defects 2, 6 and 8:
// the file system turns read-only under load; the outbox sends nothing it
// cannot first record as an attempt, /healthz is 503; the process is then
// killed, the file system repaired and the bot restarted: every
// acknowledged add is processed, each welcome reached WeCom once (a second
// call only as the resolution of an attempt whose outcome was lost, which
// WeCom refuses as used: 41051 = delivered), and every delivered welcome
// shows as sent, none as failed.
func TestBinaryReadOnlyFileSystemSendsNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and mounts a file system")
	}
	fs := mountSmallFS(t, 24)
	fake := fakewecom.New(t)
	fake.Delay(fakewecom.APISendWelcomeMsg, 30*time.Millisecond) // sends in flight when it happens
	env, c := liveEnv(t, fake, filepath.Join(fs.dir, "data"))
	env["WECOMBOT_LOG_LEVEL"] = "error"
	wecombotBinary(t)
	p := startProc(t, env)
	reqs := signAdds(t, c, 120, "ro")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { deliver(p.base, reqs, 8, stop); close(done) }()
	eventuallyT(t, "some welcomes sent", 15*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) >= 10 })
	fs.turnReadOnly(t)
	readOnlyAt := time.Now()
	before := fake.Count(fakewecom.APISendWelcomeMsg)
	p.expectUnhealthy(t)
	time.Sleep(2 * time.Second) // callbacks keep coming against the read-only disk
	close(stop)
	<-done
	ackedWhileRO := ackedCount(reqs)
	during := fake.Count(fakewecom.APISendWelcomeMsg) - before
	// Sends already out when it turned read-only may land (as many as the
	// welcome lane's adaptive concurrency had out, recorded before it); a
	// send that reaches WeCom a second later began after the disk refused
	// writes: the outbox sent what it could not record.
	late := 0
	for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg) {
		if call.Time.After(readOnlyAt.Add(time.Second)) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d welcome calls began more than 1 s after the file system turned read-only (%d after it in all): the outbox sends what it cannot record", late, during)
	}
	p.kill()

	fs.repair(t)
	p = startProc(t, env)
	deliver(p.base, reqs, 8, nil)
	checkNothingLostNothingTwice(t, p, fake, reqs, ackedWhileRO)
	resp, err := http.Get(p.base + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "wecombot_store_writable 1") {
			t.Errorf("metrics after repair lack wecombot_store_writable 1")
		}
	}
	p.term(t)
}
