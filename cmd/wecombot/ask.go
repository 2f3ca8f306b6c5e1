package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/scenarios"
)

// ask runs one question through the reply pipeline offline: the engine
// (commands, keyword rules, guardrails, the AI fallback) and the AI sender
// with the configured model (or the offline one), on a throw-away store, and
// prints what the member would receive.
func ask(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("ask", "Usage: wecombot ask [flags] \"question\"\n\nAsks the bot a question as a 微信客服 member would, offline: keyword rules first, then\nthe AI reply (OPENAI_API_KEY set: that model; unset: the built-in FAQ model).\nNothing is sent to WeCom.", 1, -1)
	cl.argsHint = "question: wecombot ask \"营业时间？\""
	fs := cl.fs
	scenarioPath := fs.String("scenario", getenv("WECOMBOT_SCENARIOS"), "scenario file or directory (default: the embedded demo)")
	points := fs.Int64("points", 0, "the asking member's points")
	checkIns := fs.Int("check-ins", 0, "the asking member's check-in days")
	stage := fs.String("stage", "interest", "the asking member's funnel stage (aware, interest, purchase, loyal)")
	showPrompt := fs.Bool("prompt", false, "print the prompt sent to the model")
	pos, done, err := cl.parse(args, stdout, stderr)
	if done {
		return err
	}
	question := strings.TrimSpace(strings.Join(pos, " "))
	if question == "" {
		return cl.usageError(stderr, "empty question: wecombot ask \"营业时间？\"")
	}
	cfg, log, err := loadConfig(getenv, stderr)
	if err != nil {
		return err
	}
	sc, err := loadScenarioOrReport(*scenarioPath, stderr)
	if err != nil {
		return err
	}
	store, closeStore, err := scratchStore("ask")
	if err != nil {
		return err
	}
	defer closeStore()

	const member, kfID = "wm_ask", "wk_ask"
	now := time.Now()
	m := &bot.Member{ExternalUserID: member, Name: sc.Brand.DefaultMemberName, Stage: bot.Stage(*stage),
		Points: *points, CheckIns: *checkIns, CreatedAt: now, UpdatedAt: now}
	if lvl := sc.LevelFor(*points); lvl != nil {
		m.Level = lvl.Name
	}
	if err := store.Update(ctx, func(tx bot.Tx) error { return tx.PutMember(m) }); err != nil {
		return err
	}
	current := func() *scenarios.Scenario { return sc }
	eng := engine.New(current, zerolog.Nop(), nil)
	replier := newReplier(cfg)
	var prompt []ai.Message
	offlinePrompt, askedAI := false, false
	aiSender := ai.NewSender(ai.SenderOptions{Store: store, Replier: replier, Scenario: current, Log: log,
		Facts: memberFacts(current, time.Now),
		OnAnswer: func(_ *bot.AIReply, ans ai.Answer) {
			askedAI = true
			prompt = ans.Prompt
			if prompt == nil && ans.OfflinePrompt != nil {
				prompt, offlinePrompt = ans.OfflinePrompt, true
			}
		}})
	ev := &bot.Event{Type: bot.EventKfText, Source: bot.SourceSim, DedupeKey: "ask", At: now, ReceivedAt: now,
		ExternalUserID: member, OpenKfID: kfID, Content: question, MsgID: "ask"}
	if _, err := store.AppendEvent(ctx, ev); err != nil {
		return err
	}
	// Run the engine on pending events, then deliver owed actions, until
	// none are left: the AI sender hands its answer back as an ai.answer
	// event, on which the engine enqueues the reply.
	answered := false
	for round := 0; round < 5; round++ {
		evs, err := store.PendingEvents(ctx, 0, 100)
		if err != nil {
			return err
		}
		for i := range evs {
			ev := &evs[i]
			if err := store.Update(ctx, func(tx bot.Tx) error {
				if first, err := tx.MarkProcessed(ev.Seq, ""); err != nil || !first {
					return err
				}
				return eng.Handle(ctx, tx, ev)
			}); err != nil {
				return err
			}
		}
		acts, err := store.DueActions(ctx, time.Now().Add(time.Hour), 100)
		if err != nil {
			return err
		}
		if len(acts) == 0 && len(evs) == 0 {
			break
		}
		for i := range acts {
			a := &acts[i]
			detail := "recorded"
			switch a.Kind {
			case bot.ActionAIReply:
				res, _, err := aiSender.Send(ctx, a)
				if err != nil {
					return fmt.Errorf("AI reply: %w", err)
				}
				detail = res.Detail
				fmt.Fprintf(stdout, "[ai: %s, model %s]\n", res.Detail, replier.ModelName())
			case bot.ActionKfMessage:
				var p bot.KfMessage
				if err := a.Decode(&p); err != nil {
					return err
				}
				fmt.Fprintln(stdout, p.Text)
				answered = true
			default:
				fmt.Fprintf(stdout, "[%s] %s\n", a.Kind, wecomapi.Summary(a))
			}
			if err := store.MarkSent(ctx, a.ID, time.Now(), detail); err != nil {
				return err
			}
		}
	}
	if *showPrompt {
		fmt.Fprintln(stdout, "\n--- prompt ---")
		switch {
		case !askedAI:
			fmt.Fprintln(stdout, "(none: a keyword rule or command answered, or nothing did; the model was not asked)")
		case offlinePrompt:
			fmt.Fprintln(stdout, "(offline model: nothing was sent; the answer came from the FAQ. With OPENAI_API_KEY set the model would be sent:)")
		case len(prompt) == 0:
			fmt.Fprintln(stdout, "(none: the model was not called, e.g. its circuit breaker is open)")
		}
		for _, msg := range prompt {
			fmt.Fprintf(stdout, "[%s]\n%s\n", msg.Role, msg.Content)
		}
	}
	if !answered {
		fmt.Fprintln(stdout, "(no reply: the scenario's rules and rate limits sent nothing for this message)")
	}
	return nil
}
