package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/kf"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/config"
	"github.com/wecombot/wecombot/scenarios"
)

// newReplier returns the reply model: OpenAI-compatible when OPENAI_API_KEY
// is set, else the offline model (FAQ retrieval only).
func newReplier(cfg *config.Config) *ai.Replier {
	r := &ai.Replier{Breaker: ai.NewBreaker(5, 30*time.Second, nil)}
	if cfg.OpenAI.APIKey != "" {
		r.Model = ai.NewOpenAI(ai.OpenAIConfig{APIKey: cfg.OpenAI.APIKey, BaseURL: cfg.OpenAI.BaseURL, Model: cfg.OpenAI.Model})
	}
	return r
}

// aiWiring is the AI side of serve: the AI sender, the 微信客服 puller and
// the AI bot's stream buffer and crypter.
type aiWiring struct {
	sender  *ai.Sender
	replier *ai.Replier
	streams *ai.Streams
	crypter *wecom.Crypter
	routes  map[bot.ActionKind]bot.Sender
}

// newAIWiring builds the AI sender and the kf puller (when a WeCom client
// exists; in sandbox mode kf_sync is recorded like every other call).
// wakeOutbox and wakeEvents nudge the pipeline.
func newAIWiring(cfg *config.Config, store bot.Store, current func() *scenarios.Scenario, client *wecomapi.Client,
	log zerolog.Logger, reg prometheus.Registerer, wakeOutbox, wakeEvents func()) (*aiWiring, error) {
	w := &aiWiring{replier: newReplier(cfg), streams: ai.NewStreams(store, nil)}
	w.sender = ai.NewSender(ai.SenderOptions{
		Store: store, Replier: w.replier, Scenario: current, Streams: w.streams,
		WakeEvents: wakeEvents, Log: log, Registerer: reg,
		Tools: func(p *bot.AIReply) ai.Tools { return ai.MemberTools(store, p, wakeEvents) },
		Facts: memberFacts(current, time.Now),
	})
	responses, err := ai.NewResponseSenderVia(cfg.WeCom.EgressProxy)
	if err != nil {
		return nil, err
	}
	w.routes = map[bot.ActionKind]bot.Sender{bot.ActionAIReply: w.sender, bot.ActionAIBotResponse: responses}
	if client != nil {
		puller := kf.NewPuller(store, client, wakeEvents, log, nil)
		puller.WakeOutbox = wakeOutbox
		w.routes[bot.ActionKfSync] = puller
	}
	if cfg.WeCom.AIBotToken != "" {
		c, err := wecom.NewCrypter(cfg.WeCom.AIBotToken, cfg.WeCom.AIBotAESKey, "")
		if err != nil {
			return nil, err
		}
		w.crypter = c
	}
	log.Info().Str("model", w.replier.ModelName()).Bool("aibot", w.crypter != nil).Bool("kf_pull", client != nil).Msg("AI replies ready")
	return w, nil
}

// Status is the AI part of /api/v1/status: which model answers, whether the
// circuit breaker has cut it off, and whether the AI bot callback is on.
func (w *aiWiring) Status() map[string]any {
	return map[string]any{"model": w.replier.ModelName(), "breaker": w.replier.Breaker.State(),
		"aibot": w.crypter != nil, "kf_pull": w.routes[bot.ActionKfSync] != nil}
}

// memberFacts adds the check-in and coupon features' facts about the asking
// member to the prompt: per campaign the current streak and days, and the
// member's open coupons. It reads only that member's records.
func memberFacts(current func() *scenarios.Scenario, now func() time.Time) ai.FactSource {
	return func(tx bot.Tx, member string) ([]ai.Fact, error) {
		sc := current()
		t := now()
		var facts []ai.Fact
		for _, c := range sc.Campaigns {
			p, err := checkin.LoadProgress(tx, c.Name, member)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			facts = append(facts, ai.Fact{Label: "打卡活动「" + c.Name + "」",
				Value: fmt.Sprintf("当前连续 %d 天，累计 %d 天", p.Streak(checkin.DayOf(t, c.Zone)), p.Count())})
		}
		codes, err := engine.MemberCoupons(tx, member)
		if err != nil {
			return nil, err
		}
		var open []string
		for _, code := range codes {
			if code.Status != engine.CouponIssued || code.Expired(t) {
				continue
			}
			name := code.Pool
			if p := sc.Coupon(code.Pool); p != nil && p.Description != "" {
				name += "（" + p.Description + "）"
			}
			if !code.ExpiresAt.IsZero() {
				name += "，" + code.ExpiresAt.In(sc.Brand.Zone).Format("1月2日") + "前有效"
			}
			open = append(open, name)
		}
		if len(open) > 0 {
			facts = append(facts, ai.Fact{Label: "未使用的优惠券", Value: strings.Join(open, "；")})
		}
		return facts, nil
	}
}
