package server

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

const demoCampaign = "早安打卡"

func checkinFixture(t *testing.T) (*fixture, *signlink.Signer) {
	t.Helper()
	var signer *signlink.Signer
	f := newFixture(t, nil)
	signer, err := signlink.New([]byte("0123456789abcdef-test"), func() time.Time { return f.now })
	if err != nil {
		t.Fatal(err)
	}
	f.s.o.Links = signer
	// 07:30 in Asia/Shanghai on 2026-11-21: inside the demo's 06:00-09:00 window.
	f.now = time.Date(2026, 11, 20, 23, 30, 0, 0, time.UTC)
	f.add("wm_eve", `<script>alert("x")</script>`, "store_poster", "zhangsan", f.now.Add(-time.Hour))
	return f, signer
}

// process runs the engine on appended events until ctx ends, as the pipeline would.
func (f *fixture) process(ctx context.Context) {
	var after uint64
	for ctx.Err() == nil {
		evs, err := f.st.PendingEvents(ctx, after, 100)
		if err != nil {
			return
		}
		for i := range evs {
			ev := evs[i]
			after = ev.Seq
			_ = f.st.Update(ctx, func(tx bot.Tx) error {
				first, err := tx.MarkProcessed(ev.Seq, "")
				if err != nil || !first {
					return err
				}
				return f.eng.Handle(ctx, tx, &ev)
			})
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) post(path string, form url.Values) response {
	return f.do("POST", path, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

func (f *fixture) lastSeq() uint64 {
	st, err := f.st.EventStats(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st.LastSeq
}

func TestCheckinPageLinks(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	good := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	expired := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), -time.Minute)
	other, _ := signlink.New([]byte("another-secret-0123456789"), nil)
	forged := other.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	coupon := signer.Sign("coupons", checkin.Subject("wm_eve", demoCampaign), time.Hour)
	gone := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", "没有这个活动"), time.Hour)
	for _, tc := range []struct {
		name, token string
		code        int
		want        string
	}{
		{"valid", good, 200, "立即打卡"},
		{"expired", expired, 410, "过期"},
		{"forged", forged, 403, "链接无效"},
		{"another purpose", coupon, 403, "链接无效"},
		{"tampered", good[:len(good)-2] + "AA", 403, "链接无效"},
		{"missing", "", 403, "链接无效"},
		{"unknown campaign", gone, 404, "不存在"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get("/checkin?t=" + url.QueryEscape(tc.token))
			if r.code != tc.code || !strings.Contains(r.body, tc.want) {
				t.Errorf("%d %s", r.code, r.body)
			}
			if strings.Contains(r.body, "<script>alert") {
				t.Error("member text is not escaped")
			}
			if r.hdr.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(r.hdr.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("headers %v", r.hdr)
			}
		})
	}
	if r := f.get("/checkin?t=" + url.QueryEscape(good)); !strings.Contains(r.body, "&lt;script&gt;") {
		t.Errorf("escaped name missing: %s", r.body)
	}
}

func TestCheckinPost(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.process(ctx)
	token := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	form := url.Values{"t": {token}}

	r := f.post("/checkin", form)
	if r.code != 200 || !strings.Contains(r.body, "第 1 天打卡成功") {
		t.Fatalf("first tap: %d %s", r.code, r.body)
	}
	seq := f.lastSeq()
	// Twice the same day: the page says so and nothing is appended.
	r = f.post("/checkin", form)
	if r.code != 200 || !strings.Contains(r.body, "今天已经打过卡啦") || f.lastSeq() != seq {
		t.Errorf("second tap: %d seq %d→%d %s", r.code, seq, f.lastSeq(), r.body)
	}
	// Outside the window (the next day, 10:00 in Shanghai).
	f.now = f.now.Add(26*time.Hour + 30*time.Minute)
	token = signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	r = f.post("/checkin", url.Values{"t": {token}})
	if !strings.Contains(r.body, "06:00-09:00") || f.lastSeq() != seq {
		t.Errorf("late tap: %s", r.body)
	}
	// A forged link changes nothing.
	r = f.post("/checkin", url.Values{"t": {token + "x"}})
	if r.code != 403 || f.lastSeq() != seq {
		t.Errorf("forged tap: %d", r.code)
	}
}

// TestCheckinPostConcurrent taps the same link 100 times at once: one event
// in the log, one check-in day.
func TestCheckinPostConcurrent(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.process(ctx)
	token := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	before := f.lastSeq()
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := f.post("/checkin", url.Values{"t": {token}}); r.code != 200 {
				t.Errorf("tap: %d", r.code)
			}
		}()
	}
	wg.Wait()
	if n := f.lastSeq() - before; n != 1 {
		t.Errorf("%d events appended, want 1", n)
	}
	_ = f.st.View(context.Background(), func(tx bot.Tx) error {
		p, err := checkin.LoadProgress(tx, demoCampaign, "wm_eve")
		if err != nil || p.Count() != 1 || p.Score != 10 {
			t.Errorf("progress %+v %v", p, err)
		}
		return nil
	})
}

func TestCheckinCertificate(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	cert := signer.Sign(checkin.CertPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	if r := f.get("/checkin/cert.png?t=" + url.QueryEscape(cert)); r.code != 404 {
		t.Errorf("certificate before it is earned: %d", r.code)
	}
	for i := range 7 {
		f.kf("wm_eve", "打卡", f.now.Add(time.Duration(i)*24*time.Hour))
	}
	r := f.get("/checkin/cert.png?t=" + url.QueryEscape(cert))
	if r.code != 200 || r.hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("%d %s", r.code, r.hdr)
	}
	img, err := png.Decode(bytes.NewReader([]byte(r.body)))
	if err != nil || img.Bounds().Dx() != 900 || img.Bounds().Dy() != 1200 {
		t.Fatalf("png %v %v", img.Bounds(), err)
	}
	// The check-in link is not a certificate link, and the reverse.
	link := signer.Sign(checkin.LinkPurpose, checkin.Subject("wm_eve", demoCampaign), time.Hour)
	if r := f.get("/checkin/cert.png?t=" + url.QueryEscape(link)); r.code != 403 {
		t.Errorf("check-in link opened the certificate: %d", r.code)
	}
	page := f.get("/checkin?t=" + url.QueryEscape(link))
	if !strings.Contains(page.body, "/checkin/cert.png?t=") || !strings.Contains(page.body, "今天已打卡") {
		t.Errorf("page after 7 days: %s", page.body)
	}
	if p := f.get("/checkin/cert?t=" + url.QueryEscape(cert)); p.code != 200 || !strings.Contains(p.body, "早安茶友") {
		t.Errorf("certificate page: %d %s", p.code, p.body)
	}
	// The console's member section.
	sec := CheckinSection(func() *scenarios.Scenario { return f.sc }, func() time.Time { return f.now })
	_ = f.st.View(context.Background(), func(tx bot.Tx) error {
		m, _ := tx.Member("wm_eve")
		v, err := sec.Read(tx, m)
		b, _ := json.Marshal(v)
		if err != nil || !strings.Contains(string(b), `"campaign":"早安打卡"`) || !strings.Contains(string(b), `"rank":1`) ||
			!strings.Contains(string(b), `"certificate":true`) {
			t.Errorf("section %s %v", b, err)
		}
		return nil
	})
}
