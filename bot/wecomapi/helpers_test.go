package wecomapi_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// Each test builds its own Client and fake WeCom, so tests run in parallel.

const testSecret = "SECRET-XYZ"

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	fake    *fakewecom.Server
	client  *wecomapi.Client
	logs    *logBuffer
	metrics *metrics.Metrics
}

func setup(t *testing.T, mods ...func(*wecomapi.Config)) *env {
	t.Helper()
	fake := fakewecom.New(t)
	logs := &logBuffer{}
	m := metrics.New()
	cfg := wecomapi.Config{
		CorpID:  "ww-test",
		AgentID: "1000002",
		Secret:  testSecret,
		APIBase: fake.URL(),
		Timeout: 2 * time.Second,
		Robots:  map[string]string{"ops": "robot-key-1"},
		Logger:  zerolog.New(logs).Level(zerolog.DebugLevel),
		Metrics: m,
		Sleep:   func(time.Duration) {},
		// No hold after overload answers (tests of the throttle set their own).
		Throttle: retry.Policy{Base: time.Nanosecond, Cap: time.Nanosecond},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	c, err := wecomapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, client: c, logs: logs, metrics: m}
}

func action(t *testing.T, kind bot.ActionKind, payload any) *bot.Action {
	t.Helper()
	a, err := bot.NewAction(kind, "key", payload)
	if err != nil {
		t.Fatal(err)
	}
	a.ID = 7
	return a
}

func welcome(t *testing.T, code string) *bot.Action {
	return action(t, bot.ActionWelcome, bot.WelcomeMessage{WelcomeCode: code, Text: "欢迎 welcome"})
}

// jsonPath reads a dotted path ("text.content", "attachments.0.msgtype") from a decoded body.
func jsonPath(v any, path string) any {
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i := 0
			for _, r := range part {
				i = i*10 + int(r-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func counter(t *testing.T, m *metrics.Metrics, api, code string) float64 {
	t.Helper()
	c, err := m.WeComCalls.GetMetricWithLabelValues(api, code)
	if err != nil {
		t.Fatal(err)
	}
	var out dto.Metric
	if err := c.(prometheus.Metric).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// noSecrets fails if the secret or any token the fake handed out appears in s.
func noSecrets(t *testing.T, fake *fakewecom.Server, what, s string) {
	t.Helper()
	if strings.Contains(s, testSecret) {
		t.Errorf("%s contains the secret: %s", what, s)
	}
	for _, c := range fake.Calls("") {
		if c.Token != "" && strings.Contains(s, c.Token) {
			t.Errorf("%s contains access_token %s: %s", what, c.Token, s)
		}
	}
	if strings.Contains(s, "robot-key-1") {
		t.Errorf("%s contains a robot webhook key: %s", what, s)
	}
}
