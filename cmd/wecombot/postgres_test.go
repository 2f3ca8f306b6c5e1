package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/postgres"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

// TestServeOnPostgres: with WECOMBOT_DATABASE_URL set, serve keeps
// everything in PostgreSQL (schema created on start): a signed add
// delivered three times yields one welcome; a restart on the same database
// (a fresh data directory: nothing lives there) re-runs and re-sends nothing;
// backup points at pg_dump.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.Database(t)
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_DATABASE_URL"] = dbURL
	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_alice", State: "xhs", WelcomeCode: "WELCOME-ALICE"}, 3)
	eventuallyT(t, "welcome and tags sent", 10*time.Second, func() bool {
		return fake.Count(fakewecom.APISendWelcomeMsg) == 1 && fake.Count(fakewecom.APIMarkTag) == 1
	})
	code, body := in.get(t, "/api/v1/members/wm_alice")
	if code != 200 || !strings.Contains(body, `"stage":"aware"`) {
		t.Fatalf("member: %d %s", code, body)
	}
	if st := in.status(t); num(st, "pipeline", "partitions") != 64 { // the only node leases every partition
		t.Fatalf("status pipeline: %v", st["pipeline"])
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	env["WECOMBOT_DATA_DIR"] = t.TempDir()
	in = startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_bob", State: "xhs", WelcomeCode: "WELCOME-BOB"}, 1)
	eventuallyT(t, "bob's welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 2 })
	if code, body := in.get(t, "/api/v1/members/wm_alice"); code != http.StatusOK || !strings.Contains(body, "wm_alice") {
		t.Fatalf("alice after restart on a new data dir: %d %s", code, body)
	}
	if n := fake.Count(fakewecom.APISendWelcomeMsg); n != 2 {
		t.Fatalf("welcomes %d, want 2 (one each)", n)
	}
	if strings.Contains(in.logs.String(), dbURL) {
		t.Fatal("the database URL reached the logs")
	}
	var out, errb syncBuffer
	err := run(t.Context(), []string{"backup", "x.db"}, func(k string) string { return env[k] }, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("backup with Postgres: %v", err)
	}
}

// cluster is the set of live nodes callbacks are spread over.
type cluster struct {
	mu    sync.Mutex
	bases map[int]string
}

func (c *cluster) pick(rng *rand.Rand) (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]int, 0, len(c.bases))
	for id := range c.bases {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	if len(ids) == 0 {
		return -1, ""
	}
	id := ids[rng.IntN(len(ids))]
	return id, c.bases[id]
}

func (c *cluster) set(id int, base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if base == "" {
		delete(c.bases, id)
	} else {
		c.bases[id] = base
	}
}

// shopOrder is a signed order.paid webhook request.
func shopOrder(secret, user string) (body []byte, header http.Header) {
	body = []byte(fmt.Sprintf(`{"event":"order.paid","order_id":"O-%s","external_userid":%q,"amount_fen":990}`, user, user))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	header = http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set("X-Wecombot-Timestamp", ts)
	header.Set("X-Wecombot-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return body, header
}

// TestThreeNodesSurviveKills runs three `wecombot serve` binaries on one
// PostgreSQL database. Each member's contact add (a signed WeCom callback)
// and then its shop order go to a random live node, every retry to a
// random node again, and some acknowledged adds are re-delivered to
// another node, as WeCom's retries would; meanwhile one node is killed
// with SIGKILL, restarted, and killed again. Then: every add and order is
// in the log once and processed, none failed; one welcome action per
// code and one welcome call per code at the fake WeCom (a repeat only for
// a send in flight at a kill); each member's order was applied after its
// add (the purchase stage change carries the order's own event seq: an
// order applied first would have been counted by the add); and the
// outbox drained on the survivors.
func TestThreeNodesSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	dbURL := pgtest.Database(t)
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, "")
	const shopSecret = "shop-secret-for-the-cluster-test"
	env["WECOMBOT_DATABASE_URL"] = dbURL
	env["WECOMBOT_SHOP_SECRET"] = shopSecret
	env["WECOMBOT_LOG_LEVEL"] = "warn"
	wecombotBinary(t)
	nodeEnv := func() map[string]string {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e["WECOMBOT_DATA_DIR"] = t.TempDir()
		return e
	}
	cl := &cluster{bases: map[int]string{}}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startProc(t, nodeEnv())
		cl.set(i, procs[i].base)
	}

	const members = 240
	adds := signAdds(t, c, members, "mn")
	orderSeqs := make([]bool, members)
	var mu sync.Mutex
	var kills []time.Time
	client := &http.Client{Timeout: 5 * time.Second}
	post := func(rng *rand.Rand, path string, body []byte, h http.Header) (int, bool) {
		for attempt := 0; attempt < 400; attempt++ {
			node, base := cl.pick(rng)
			if base == "" {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return node, true
				}
			}
			time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond) // WeCom retries, landing anywhere
		}
		return -1, false
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := range work {
				r := adds[i]
				path, body := r.req()
				node, ok := post(rng, path, body, http.Header{"Content-Type": {"text/xml"}})
				if !ok {
					continue
				}
				mu.Lock()
				r.acked = true
				mu.Unlock()
				if i%4 == 0 { // WeCom re-delivers an acknowledged callback, to another node
					for tries := 0; tries < 5; tries++ {
						if n2, b2 := cl.pick(rng); n2 != node && b2 != "" {
							if resp, err := client.Post(b2+path, "text/xml", bytes.NewReader(body)); err == nil {
								resp.Body.Close()
							}
							break
						}
					}
				}
				body, h := shopOrder(shopSecret, r.user)
				if _, ok := post(rng, "/hooks/orders", body, h); ok {
					mu.Lock()
					orderSeqs[i] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	load := make(chan struct{})
	go func() {
		for i := range adds {
			work <- i
			time.Sleep(4 * time.Millisecond)
		}
		close(work)
		close(load)
	}()
	// Kill node 1 twice under load, restarting it in between.
	for k := 0; k < 2; k++ {
		time.Sleep(300 * time.Millisecond)
		cl.set(1, "")
		procs[1].kill()
		mu.Lock()
		kills = append(kills, time.Now())
		mu.Unlock()
		time.Sleep(200 * time.Millisecond)
		if k == 0 {
			procs[1] = startProc(t, nodeEnv())
			cl.set(1, procs[1].base)
		}
	}
	<-load
	wg.Wait()
	st := procs[0].drained(t, 60*time.Second)
	procs[2].drained(t, 10*time.Second)
	t.Logf("status after two kills: events=%v outbox=%v", st["events"], st["outbox"])

	// The log: each add and order once, all processed, none failed.
	addsSeen, orderSeq := map[string]int{}, map[string]uint64{}
	for cursor := ""; ; {
		var page struct {
			Events     []bot.Event `json:"events"`
			NextCursor string      `json:"next_cursor"`
		}
		procs[2].getJSON(t, fmt.Sprintf("/api/v1/events?cursor=%s&limit=1000", cursor), &page)
		for _, ev := range page.Events {
			switch ev.Type {
			case bot.EventContactAdd:
				addsSeen[ev.ExternalUserID]++
			case bot.EventOrderPaid:
				if orderSeq[ev.ExternalUserID] != 0 {
					t.Errorf("%s: order in the log twice", ev.ExternalUserID)
				}
				orderSeq[ev.ExternalUserID] = ev.Seq
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if num(st, "events", "failed") != 0 {
		t.Errorf("events failed: %v", st["events"])
	}
	for i, r := range adds {
		if !r.acked || !orderSeqs[i] {
			t.Errorf("%s: add acked %v, order acked %v", r.user, r.acked, orderSeqs[i])
			continue
		}
		if addsSeen[r.user] != 1 || orderSeq[r.user] == 0 {
			t.Errorf("%s: add in the log %d times, order seq %d", r.user, addsSeen[r.user], orderSeq[r.user])
		}
	}

	// Per-member order: the purchase came from the order event itself.
	for _, r := range adds {
		var detail struct {
			Member bot.Member `json:"member"`
		}
		procs[rand.IntN(2)*2].getJSON(t, "/api/v1/members/"+r.user, &detail)
		var purchase *bot.StageChange
		for i, ch := range detail.Member.StageHistory {
			if ch.To == bot.StagePurchase {
				purchase = &detail.Member.StageHistory[i]
			}
		}
		if purchase == nil || purchase.EventSeq != orderSeq[r.user] {
			t.Errorf("%s: stage history %+v, want the purchase from order event %d (applied after the add)", r.user, detail.Member.StageHistory, orderSeq[r.user])
		}
	}

	// One welcome action per code, one welcome call per code (a repeat only
	// for a send in flight when a node died).
	repeats := checkWelcomes(t, procs[2], fake, adds, kills)
	t.Logf("%d members over 3 nodes, node 1 killed twice; %d welcome codes sent a second time (in flight at a kill)", members, repeats)
	procs[0].term(t)
	procs[2].term(t)
}

// TestMigrateFromBolt: a bbolt database written by a real server is copied
// into PostgreSQL with counts verified; an interrupted copy (its tail
// missing) resumes with the same command; a database holding other data is
// refused; the server then runs on the copy without re-sending anything
// and continues the sequence.
func TestMigrateFromBolt(t *testing.T) {
	dbURL := strings.Replace(pgtest.Database(t), "postgres@", "postgres:pg-pa55word@", 1) // the test cluster trusts loopback: any password does
	fake := fakewecom.New(t)
	dataDir := t.TempDir()
	env, c := liveEnv(t, fake, dataDir)
	in := startServe(t, env)
	at := time.Now() // WeCom's CreateTime: part of the dedupe key, the same on a retry
	for i := 0; i < 5; i++ {
		in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: fmt.Sprint("wm_m", i), State: "xhs", WelcomeCode: fmt.Sprint("WC-M", i), At: at}, 2)
	}
	eventuallyT(t, "five welcomes", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 5 })
	st := in.status(t)
	lastSeq := num(st, "events", "last_seq")
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	welcomes := fake.Count(fakewecom.APISendWelcomeMsg)

	dbFile := filepath.Join(dataDir, "wecombot.db")
	migrateCmd := func() (string, error) {
		var out, errb syncBuffer
		err := run(t.Context(), []string{"migrate", "--from", "bolt:" + dbFile, "--to", dbURL}, func(string) string { return "" }, nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := migrateCmd()
	if err != nil || !strings.Contains(out, "verified: every count matches") || !strings.Contains(out, "migrated from version 0 to") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	// An interrupted copy: the newest rows of each kind never arrived.
	pgtest.Exec(t, dbURL, `DELETE FROM events WHERE seq > (SELECT max(seq) - 3 FROM events)`)
	pgtest.Exec(t, dbURL, `DELETE FROM members WHERE id > 'wm_m2'`)
	pgtest.Exec(t, dbURL, `DELETE FROM kv WHERE ctid IN (SELECT ctid FROM kv ORDER BY bucket DESC, key DESC LIMIT 2)`)
	pgtest.Exec(t, dbURL, `UPDATE imports SET finished_at = NULL`)
	out, err = migrateCmd()
	if err != nil || !strings.Contains(out, "resuming the copy") || !strings.Contains(out, "verified: every count matches") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if strings.Contains(out, "pg-pa55word") {
		t.Errorf("the database password is printed:\n%s", out)
	}
	// Another source into the same database is refused.
	other := filepath.Join(t.TempDir(), "other.db")
	if data, err := os.ReadFile(dbFile); err == nil {
		os.WriteFile(other, data, 0o600)
	}
	var errb syncBuffer
	if err := run(t.Context(), []string{"migrate", "--from", "bolt:" + other, "--to", dbURL}, func(string) string { return "" }, nil, &errb, &errb); err == nil || !strings.Contains(err.Error(), "already holds an import") {
		t.Fatalf("a second source: %v", err)
	}

	// Serve on the copy: the members are there, nothing is re-sent, new events continue the sequence.
	env["WECOMBOT_DATABASE_URL"] = dbURL
	env["WECOMBOT_DATA_DIR"] = t.TempDir()
	in = startServe(t, env)
	if code, body := in.get(t, "/api/v1/members/wm_m4"); code != http.StatusOK || !strings.Contains(body, `"stage":"aware"`) {
		t.Fatalf("migrated member: %d %s", code, body)
	}
	// The member index is built from the copied members (Finish reindexes).
	if code, body := in.get(t, "/api/v1/funnel"); code != http.StatusOK || !strings.Contains(body, `"members":5,`) {
		t.Fatalf("funnel on the copy: %d %s", code, body)
	}
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_m0", State: "xhs", WelcomeCode: "WC-M0", At: at}, 1) // a late WeCom retry: deduplicated
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_new", State: "xhs", WelcomeCode: "WC-NEW"}, 1)
	eventuallyT(t, "the new member's welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == welcomes+1 })
	var page struct {
		Events []bot.Event `json:"events"`
	}
	_, body := in.get(t, fmt.Sprintf("/api/v1/events?cursor=%d&limit=100", int(lastSeq)))
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	var adds []string
	for _, ev := range page.Events {
		if ev.Type == bot.EventContactAdd {
			adds = append(adds, ev.ExternalUserID)
		}
	}
	if fmt.Sprint(adds) != "[wm_new]" {
		t.Fatalf("adds after the copied log's last seq %v: %v, want [wm_new] (wm_m0's retry deduplicated by the copied key)", lastSeq, adds)
	}
	in.stop()
	if n := fake.Count(fakewecom.APISendWelcomeMsg); n != welcomes+1 {
		t.Fatalf("welcomes %d, want %d: a migrated action was sent again", n, welcomes+1)
	}
}

// TestDoctorChecksTheDatabase: doctor connects to WECOMBOT_DATABASE_URL and
// reports the schema version; an unreachable database is a failure, and
// the password is never printed.
func TestDoctorChecksTheDatabase(t *testing.T) {
	dbURL := strings.Replace(pgtest.Database(t), "postgres@", "postgres:doctor-pw@", 1)
	doctorOut := func(url string) (string, error) {
		env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_DATABASE_URL": url}
		var out, errb syncBuffer
		err := run(t.Context(), []string{"doctor"}, func(k string) string { return env[k] }, nil, &out, &errb)
		if strings.Contains(out.String()+errb.String(), "doctor-pw") {
			t.Fatalf("doctor printed the database password:\n%s", out.String())
		}
		return out.String(), err
	}
	out, err := doctorOut(dbURL)
	if err != nil || !strings.Contains(out, "schema version 0, serve (or wecombot migrate) brings it to") || !strings.Contains(out, "WECOM_TOKEN and WECOM_AES_KEY on every node") {
		t.Fatalf("fresh database: %v\n%s", err, out)
	}
	if _, _, err := postgres.MigrateURL(t.Context(), dbURL); err != nil {
		t.Fatal(err)
	}
	if out, err := doctorOut(dbURL); err != nil || !strings.Contains(out, "(current)") {
		t.Fatalf("migrated database: %v\n%s", err, out)
	}
	if out, err := doctorOut("postgres://u:doctor-pw@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); err == nil || !strings.Contains(out, "database") {
		t.Fatalf("unreachable database: %v\n%s", err, out)
	}
}
