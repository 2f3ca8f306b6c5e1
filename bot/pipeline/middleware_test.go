package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/pipeline"
)

func TestUseOrdersMiddlewareOutermostFirst(t *testing.T) {
	t.Parallel()
	var trace []string
	mark := func(name string) bot.MiddlewareFunc {
		return func(next bot.HandlerFunc) bot.HandlerFunc {
			return func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
				trace = append(trace, name+">")
				err := next(ctx, tx, ev)
				trace = append(trace, "<"+name)
				return err
			}
		}
	}
	h := bot.HandlerFunc(func(context.Context, bot.Tx, *bot.Event) error { trace = append(trace, "handler"); return nil })
	if err := h.Use(mark("a"), mark("b"))(context.Background(), nil, &bot.Event{}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(trace, " "), "a> b> handler <b <a"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := bot.HandlerFunc(func(context.Context, bot.Tx, *bot.Event) error { panic("nil map") })
	err := h.Use(pipeline.Recover(zerolog.New(&buf)))(context.Background(), nil, &bot.Event{Seq: 7, Type: bot.EventKfText})
	if err == nil || !strings.Contains(err.Error(), "nil map") {
		t.Fatalf("err = %v, want the panic as an error", err)
	}
	if !strings.Contains(buf.String(), `"seq":7`) || !strings.Contains(buf.String(), "stack") {
		t.Fatalf("panic log lacks seq or stack: %s", buf.String())
	}
}

func TestLoggingGivesHandlersTheEventsLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := bot.HandlerFunc(func(ctx context.Context, _ bot.Tx, _ *bot.Event) error {
		zerolog.Ctx(ctx).Info().Msg("inside")
		return errors.New("store down")
	})
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	err := h.Use(pipeline.Logging(log))(context.Background(), nil, &bot.Event{Seq: 9, Type: bot.EventKfText, ExternalUserID: "wm1"})
	if err == nil {
		t.Fatal("the handler's error was swallowed")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the handler's line and the failure line, got %q", lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"seq":9`) || !strings.Contains(l, `"member":"wm1"`) {
			t.Errorf("line lacks the event's fields: %s", l)
		}
	}
	if !strings.Contains(lines[1], `"level":"warn"`) || !strings.Contains(lines[1], "store down") {
		t.Errorf("failure not logged at warn with its error: %s", lines[1])
	}
}

// flakyCommit fails the first commit of every transaction whose function
// succeeded, like a full disk or a batch-mate's failure rolling it back.
type flakyCommit struct {
	bot.Store
	mu     sync.Mutex
	failed map[string]bool
}

func (f *flakyCommit) Update(ctx context.Context, fn func(bot.Tx) error) error {
	return f.Store.Update(ctx, func(tx bot.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.failed["once"] {
			f.failed["once"] = true
			return errors.New("commit failed")
		}
		return nil
	})
}

// A handler run whose transaction rolls back is not counted: the event is
// counted once, when the retry commits.
func TestMetricsCountOnlyCommittedRuns(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := metrics.New()
	var runs int
	var mu sync.Mutex
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		mu.Lock()
		runs++
		mu.Unlock()
		return tx.Put(bot.BucketScratch, "k", []byte("v"))
	}
	appendEvents(t, st, bot.Event{Type: bot.EventKfText, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: &flakyCommit{Store: st, failed: map[string]bool{}}, Handle: handle,
		Sender: newRecorder(), Metrics: m, Workers: 1})
	waitFor(t, "event processed", func() bool { return p.Stats().Processed == 1 })
	stop()
	if runs != 2 {
		t.Fatalf("handler ran %d times, want 2 (one rolled back, one committed)", runs)
	}
	var got dto.Metric
	if err := m.Events.WithLabelValues(string(bot.EventKfText), "ok").Write(&got); err != nil {
		t.Fatal(err)
	}
	if n := got.GetCounter().GetValue(); n != 1 {
		t.Fatalf("events_total{ok} = %v, want 1", n)
	}
}
