package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

// slowModel is an OpenAI-compatible fake that takes delay per answer (or
// until the caller gives up).
func slowModel(tb testing.TB, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": "好的"}}}})
	}))
	tb.Cleanup(srv.Close)
	return srv, &calls
}

// startServeTB is startServe for benchmarks.
func startServeTB(tb testing.TB, env map[string]string) (base string, stop func()) {
	tb.Helper()
	env["WECOMBOT_LISTEN"] = "127.0.0.1:0"
	env["WECOMBOT_LOG_FORMAT"] = "json"
	env["WECOMBOT_LOG_LEVEL"] = "error"
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve"}, func(k string) string { return env[k] }, nil, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "listening on "); ok {
			base = strings.Fields(rest)[0]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		tb.Fatalf("server did not start: %v", <-done)
	}
	return base, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
	}
}

// BenchmarkCallbackAckWithSlowModel measures how many app.text callbacks
// per second the server acknowledges (each owing a model reply) with a fast
// model and with one that takes 5 s per answer. The ack path (verify,
// decrypt, durable append, 200) never waits for the model, so the rates
// should match; model_calls shows the slow model was really being called.
func BenchmarkCallbackAckWithSlowModel(b *testing.B) {
	for _, delay := range []time.Duration{0, 5 * time.Second} {
		b.Run(fmt.Sprintf("model=%s", delay), func(b *testing.B) {
			model, calls := slowModel(b, delay)
			const corp, token = "wwbench", "benchToken"
			aesKey := strings.Repeat("C", 42) + "A"
			crypter, err := wecom.NewCrypter(token, aesKey, corp)
			if err != nil {
				b.Fatal(err)
			}
			base, stop := startServeTB(b, map[string]string{
				"WECOMBOT_DATA_DIR": b.TempDir(), "WECOM_CORP_ID": corp, "WECOM_TOKEN": token, "WECOM_AES_KEY": aesKey,
				"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": model.URL + "/v1",
			})
			defer stop()
			var seq atomic.Int64
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					ev := callbackEvent{Type: "app.text", CorpID: corp, Staff: fmt.Sprintf("staff%d", n),
						Text: "新品什么时候上市", MsgID: fmt.Sprint(n), At: time.Now()}
					plain, _ := ev.xml()
					path, body, err := sealedCallback(crypter, plain, ev.At)
					if err != nil {
						b.Error(err)
						return
					}
					resp, err := client.Post(base+path, "text/xml", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("ack %d", resp.StatusCode)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acks/s")
			b.ReportMetric(float64(calls.Load()), "model_calls")
			// While the model is busy, a new customer's welcome (valid 20 s)
			// must still go out promptly: the AI may hold only some senders.
			ev := callbackEvent{Type: "contact.add", CorpID: corp, Staff: "zhangsan", ExternalUser: "wm_bench_new",
				WelcomeCode: "WC-BENCH", At: time.Now()}
			plain, _ := ev.xml()
			path, body, _ := sealedCallback(crypter, plain, ev.At)
			sent := time.Now()
			resp, err := client.Post(base+path, "text/xml", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			deadline := sent.Add(20 * time.Second)
			for !welcomeSent(b, client, base) {
				if time.Now().After(deadline) {
					b.Fatal("welcome not sent within 20 s under AI load")
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.ReportMetric(float64(time.Since(sent).Milliseconds()), "welcome_ms")
		})
	}
}

// welcomeSent reports whether the outbox holds a sent welcome action.
func welcomeSent(tb testing.TB, client *http.Client, base string) bool {
	cursor := ""
	for {
		resp, err := client.Get(fmt.Sprintf("%s/api/v1/outbox?limit=1000&cursor=%s", base, cursor))
		if err != nil {
			tb.Fatal(err)
		}
		var page struct {
			Actions []struct {
				Kind   string `json:"kind"`
				Status string `json:"status"`
			} `json:"actions"`
			Next string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		for _, a := range page.Actions {
			if a.Kind == "welcome" && a.Status == "sent" {
				return true
			}
		}
		if page.Next == "" {
			return false
		}
		cursor = page.Next
	}
}
