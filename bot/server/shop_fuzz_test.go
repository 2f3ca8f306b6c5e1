package server

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// FuzzShopWebhook: a correctly signed body of any shape is either stored
// (200) or refused as bad input (4xx) — never a 5xx, never a panic, and a
// refusal stores nothing. An unsigned one is always 401.
func FuzzShopWebhook(f *testing.F) {
	f.Add([]byte(`{"event":"order.paid","order_id":"SC1","external_userid":"wm1","amount_fen":2990,"coupon_code":"NEW-AAAA"}`), true)
	f.Add([]byte(`{"event":"order.refunded","order_id":"SC1","external_userid":"wm1","refund_id":"R1"}`), true)
	f.Add([]byte(`{"event":"order.paid","order_id":"","external_userid":"wm1","amount_fen":-1}`), true)
	f.Add([]byte(`{"event":"order.paid","order_id":"SC2","external_userid":"wm1","amount_fen":1,"at":"yesterday"}`), true)
	f.Add([]byte(`[1,2,3]`), true)
	f.Add([]byte(`{"event":"order.paid"`), false)
	f.Add([]byte("\xff\xfe"), true)
	// One server per fuzz process: opening a store per input would spend
	// the fuzzing time on fsync.
	st, err := bolt.Open(filepath.Join(f.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	links, _ := signlink.New([]byte("link-secret-0123456789"), func() time.Time { return shopNow })
	sc := scenarios.LoadDefault()
	s := New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), ShopSecret: shopSecret, Links: links,
		Now: func() time.Time { return shopNow }, Scenario: func() *scenarios.Scenario { return sc }})
	f.Fuzz(func(t *testing.T, body []byte, signed bool) {
		secret := shopSecret
		if !signed {
			secret = "not-the-shop-secret"
		}
		before := lastSeq(t, st)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, shopRequest(secret, shopNow.Unix(), string(body)))
		after := lastSeq(t, st)
		switch {
		case !signed && rec.Code != 401:
			t.Fatalf("unsigned body answered %d", rec.Code)
		case rec.Code >= 500:
			t.Fatalf("signed body %q answered %d: %s", body, rec.Code, rec.Body)
		case rec.Code != 200 && after != before:
			t.Fatalf("refused (%d) body %q stored an event", rec.Code, body)
		case rec.Code == 200 && after > before+1:
			t.Fatalf("one body stored %d events", after-before)
		}
	})
}

func lastSeq(t *testing.T, st *bolt.Store) uint64 {
	t.Helper()
	es, err := st.EventStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return es.LastSeq
}
