package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/logging"
	"github.com/wecombot/wecombot/bot/media"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/outreach"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/poster"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/bot/sweep"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomsync"
	"github.com/wecombot/wecombot/config"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
	"github.com/wecombot/wecombot/storage/postgres"
)

// loadConfig reads the config and builds the logger every command uses.
func loadConfig(getenv func(string) string, stderr io.Writer) (*config.Config, zerolog.Logger, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, zerolog.Nop(), fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(stderr, cfg.LogLevel, cfg.LogFormat, cfg.Secrets())
	return cfg, log, nil
}

// sandboxKeys are the callback credentials a sandbox generates for itself so
// that signed test callbacks work with zero setup.
type sandboxKeys struct {
	CorpID string `json:"corp_id"`
	Token  string `json:"token"`
	AESKey string `json:"aes_key"`
}

// sandboxKeysFile is where a sandbox keeps its generated callback credentials.
func sandboxKeysFile(dataDir string) string { return filepath.Join(dataDir, "sandbox-callback.json") }

// callbackCredentials returns the corp id, token and AES key the callback
// uses: the configured ones, or in sandbox mode generated ones kept in the
// data directory.
func callbackCredentials(cfg *config.Config) (sandboxKeys, bool, error) {
	k := sandboxKeys{CorpID: cfg.WeCom.CorpID, Token: cfg.WeCom.Token, AESKey: cfg.WeCom.AESKey}
	if k.Token != "" && k.AESKey != "" {
		if k.CorpID == "" {
			k.CorpID = "wwsandbox"
		}
		return k, false, nil
	}
	if !cfg.Sandbox() {
		return k, false, errors.New("WECOM_TOKEN and WECOM_AES_KEY are required")
	}
	path := sandboxKeysFile(cfg.DataDir)
	if b, err := os.ReadFile(path); err == nil {
		var saved sandboxKeys
		if err := json.Unmarshal(b, &saved); err == nil && saved.Token != "" && len(saved.AESKey) == 43 {
			return saved, true, nil
		}
	}
	raw := make([]byte, 32+16)
	if _, err := rand.Read(raw); err != nil {
		return k, false, err
	}
	k = sandboxKeys{
		CorpID: "wwsandbox",
		Token:  base64.RawURLEncoding.EncodeToString(raw[32:]),
		AESKey: base64.StdEncoding.EncodeToString(raw[:32])[:43],
	}
	if cfg.WeCom.CorpID != "" {
		k.CorpID = cfg.WeCom.CorpID
	}
	b, _ := json.MarshalIndent(k, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return k, false, fmt.Errorf("save sandbox callback keys: %w", err)
	}
	return k, true, nil
}

// linkSigner returns the signer for members' H5 links: WECOMBOT_LINK_SECRET,
// else a secret generated once and kept with the data — in the data
// directory for bbolt, in the database for PostgreSQL, so every node signs
// and checks links with the same secret and links stay valid across restarts.
func linkSigner(ctx context.Context, cfg *config.Config, store bot.Store) (*signlink.Signer, error) {
	secret := cfg.LinkSecret
	if secret == "" && cfg.DatabaseURL != "" {
		err := store.Update(ctx, func(tx bot.Tx) error {
			b, err := tx.Get(bot.BucketSettings, "link_secret")
			if err == nil && len(b) >= signlink.MinSecretLen {
				secret = string(b)
				return nil
			}
			if err != nil && !errors.Is(err, bot.ErrNotFound) {
				return err
			}
			secret = newLinkSecret()
			return tx.Put(bot.BucketSettings, "link_secret", []byte(secret))
		})
		if err != nil {
			return nil, fmt.Errorf("link secret in the database: %w", err)
		}
	}
	if secret == "" {
		path := filepath.Join(cfg.DataDir, "link-secret")
		b, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(b)) < signlink.MinSecretLen {
			b = []byte(newLinkSecret())
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, fmt.Errorf("save link secret: %w", err)
			}
		}
		secret = string(bytes.TrimSpace(b))
	}
	s, err := signlink.New([]byte(secret), nil)
	if err != nil {
		return nil, fmt.Errorf("WECOMBOT_LINK_SECRET: %w", err)
	}
	return s, nil
}

func newLinkSecret() string {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(raw)
}

// publicURL is the base of links members open: WECOMBOT_PUBLIC_URL, else
// this machine's listen address (fine for the sandbox, not for members).
func publicURL(cfg *config.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return displayURL(addr)
}

// openStore opens the store: PostgreSQL when WECOMBOT_DATABASE_URL is set
// (its schema migrated to this build's), else the bbolt file, turning lock
// and corruption into exit codes.
func openStore(ctx context.Context, cfg *config.Config) (bot.Store, error) {
	if cfg.DatabaseURL != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := postgres.Open(octx, cfg.DatabaseURL, postgres.Options{DedupeTTL: cfg.DedupeTTL})
		if err != nil {
			return nil, &exitError{exitStore, fmt.Errorf("%s: %w", cfg.Database(), err)}
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, &exitError{exitStore, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)}
	}
	bo := bolt.Options{DedupeTTL: cfg.DedupeTTL, MapBudget: cfg.MapBudget}
	if cfg.MapBudget < 0 {
		bo.TrimEvery = -1 // WECOMBOT_MAP_BUDGET=off: never trimmed
	}
	st, err := bolt.Open(cfg.DBPath(), bo)
	if err != nil {
		if errors.Is(err, bot.ErrStoreLocked) {
			return nil, &exitError{exitLocked, err}
		}
		return nil, &exitError{exitStore, err}
	}
	return st, nil
}

// newSender returns the real WeCom client, or the sandbox recorder when no secret is set.
func newSender(cfg *config.Config, log zerolog.Logger, m *metrics.Metrics) (bot.Sender, *wecomapi.Client, error) {
	if cfg.Sandbox() {
		return wecomapi.NewSandbox(log), nil, nil
	}
	c, err := wecomapi.New(wecomapi.Config{
		CorpID:      cfg.WeCom.CorpID,
		AgentID:     cfg.WeCom.AgentID,
		Secret:      cfg.WeCom.Secret,
		KfSecret:    cfg.WeCom.KfSecret,
		APIBase:     cfg.WeCom.APIBase,
		EgressProxy: cfg.WeCom.EgressProxy,
		Robots:      cfg.WeCom.Robots,
		Logger:      log,
		Metrics:     m,
	})
	if err != nil {
		return nil, nil, err
	}
	return c, c, nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("serve", "Usage: wecombot serve\n\nRuns the callback server, event workers, outbox and dashboard.\nAll settings come from the environment and WECOMBOT_CONFIG (see README.md).", 0, 0)
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	return serveHeld(ctx, getenv, stdout, stderr, nil)
}

// serveHeld is serve; a non-nil hold keeps the pipeline (engine and
// outbox) from starting until it is closed, and the ingest log's move into
// bbolt with it, while callbacks are verified, logged durably and
// acknowledged as always — bench's ack-path phase.
func serveHeld(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer, hold <-chan struct{}) error {
	cfg, log, err := loadConfig(getenv, stderr)
	if err != nil {
		return err
	}
	limit, from := applyMemoryLimit(cfg, getenv, setsMemoryLimit)
	logMemoryLimit(log.Info(), limit, from).Bool("applied", setsMemoryLimit || from == "GOMEMLIMIT").Msg("Go runtime soft memory limit")
	logProcs(log.Info()).Msg("Go runtime processors")
	app, err := buildServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.close()
	app.hold = hold
	if h, ok := app.store.(interface{ HoldMoves(<-chan struct{}) }); ok && hold != nil {
		h.HoldMoves(hold) // the move into bbolt waits with the engine (storage/bolt's ingest log)
	}
	return app.run(ctx, stdout)
}

// outboxRetry is the outbox's retry policy; zero is the pipeline's default
// (retry.Default: 1 s doubling to 5 min, spread inside deadlines). The
// package's tests shorten it once, in TestMain, so fault tests take
// seconds, not minutes.
var outboxRetry retry.Policy

// serverApp is everything serve runs. buildServer builds all of it, each
// part from parts already built (no hook is filled in afterwards); run
// starts every goroutine and joins every one of them on shutdown.
type serverApp struct {
	cfg     *config.Config
	log     zerolog.Logger
	started time.Time

	store    bot.Store
	ln       net.Listener
	engine   *engineApp
	sched    *checkin.Scheduler
	bcasts   *outreach.Scheduler
	pipeline *pipeline.Pipeline
	server   *server.Server
	// syncer imports the existing community from WeCom (nil in the sandbox).
	syncer *wecomsync.Syncer
	// media uploads the files scenarios attach and keeps their media ids fresh.
	media *media.Library

	// work is the context background work runs under: the pipeline, the
	// scheduler's jobs, the load hook's appends. run cancels it after the
	// HTTP server has drained, so in-flight callbacks still get processed.
	work     context.Context
	stopWork context.CancelFunc
	closers  []func() error
	// hold, when set, delays the pipeline until it is closed (serveHeld).
	hold <-chan struct{}
}

// buildServer opens the store and listener and builds the engine, the
// senders, the pipeline and the HTTP server, wired together.
func buildServer(ctx context.Context, cfg *config.Config, log zerolog.Logger) (_ *serverApp, err error) {
	a := &serverApp{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	log.Info().Fields(cfg.Summary()).Str("version", version).Msg("starting wecombot")

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, &exitError{exitStore, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)}
	}
	keys, generated, err := callbackCredentials(cfg)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Warn().Str("file", sandboxKeysFile(cfg.DataDir)).
			Msg("sandbox mode: outbound WeCom calls are recorded, not sent; callbacks are signed with the generated keys in this file")
	}
	crypter, err := wecom.NewCrypter(keys.Token, keys.AESKey, keys.CorpID)
	if err != nil {
		return nil, fmt.Errorf("callback credentials: %w", err)
	}

	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.store = store
	a.closers = append(a.closers, store.Close)
	if m, ok := store.(interface{ Migrated() []string }); ok {
		for _, step := range m.Migrated() {
			log.Info().Str("migration", step).Msg("data file migrated to a newer schema")
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (WECOMBOT_LISTEN): %w", cfg.Listen, err)
	}
	a.ln = ln
	a.closers = append(a.closers, ln.Close)
	links, err := linkSigner(ctx, cfg, store)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	m.BuildInfo(version)
	m.ObserveStore(store, time.Now)
	scenarioHolder, err := loadScenarios(cfg, log, m)
	if err != nil {
		return nil, err
	}

	a.work, a.stopWork = context.WithCancel(context.WithoutCancel(ctx))
	// Everything that appends events or enqueues actions nudges the
	// pipeline through wake, which exists before the pipeline does.
	wake := pipeline.NewWake()
	// Callbacks are acknowledged once durable in bbolt's ingest log and
	// reach the event log a moment later: that wakes the pipeline too.
	if in, ok := store.(interface{ OnEventsAppended(func()) }); ok {
		in.OnEventsAppended(wake.Event)
	}
	// Campaign reminders: cron firings append campaign.tick events (never
	// send); the schedule is rebuilt when a reload swaps the scenario.
	sched := checkin.NewScheduler(checkin.SchedulerOptions{Log: log, Events: store, Notify: wake.Event,
		Zone: scenarioHolder.Current().Brand.Zone})
	a.sched = sched
	// Broadcasts (群发): each occurrence appends a broadcast.run event.
	bcasts := outreach.New(outreach.Options{Log: log, Events: store, Notify: wake.Event})
	a.bcasts = bcasts
	work := a.work
	// At start (once serving) and after every successful reload: push the
	// scenario's customer-group welcome templates to WeCom (the event's
	// dedupe key is the scenario version, and unchanged templates are never
	// pushed twice), and rebuild the campaign schedule.
	onLoad := func(sc *scenarios.Scenario) {
		sched.Load(work, sc)
		bcasts.Load(work, sc)
		for _, p := range sc.PastSchedules {
			log.Warn().Str("at", p.File+":"+strconv.Itoa(p.Line)).Msg(p.Msg)
		}
		if len(sc.GroupWelcomes) == 0 {
			return
		}
		if _, err := store.AppendEvent(work, engine.GroupWelcomeSyncEvent(sc.Version, time.Now())); err != nil {
			log.Error().Err(err).Msg("could not queue the group welcome template sync")
			return
		}
		wake.Event()
	}
	app := newEngine(scenarioHolder, log, m, onLoad)
	a.engine = app
	app.engine.WithLinks(links, publicURL(cfg, ln.Addr()))
	sender, client, err := newSender(cfg, log, m)
	if err != nil {
		return nil, err
	}
	posters := &poster.Renderer{Scenario: app.holder.Current}
	if client != nil {
		posters.Fetch = client.Fetch
	}
	a.media = newMediaLibrary(store, client, posters, time.Now, log)
	sender = withMedia(sender, a.media)
	aiw, err := newAIWiring(cfg, store, app.holder.Current, client, log, m.Registry, wake.Outbox, wake.Event)
	if err != nil {
		return nil, fmt.Errorf("AI bot credentials: %w", err)
	}
	m.ObserveBreaker("ai_model", aiw.replier.Breaker.State)
	a.pipeline = pipeline.New(pipeline.Options{
		Store:     store,
		Handle:    app.Handle,
		Sender:    &bot.SenderMux{Routes: aiw.routes, Default: sender},
		Log:       log,
		Metrics:   m,
		Workers:   cfg.Workers,
		QueueSize: cfg.QueueSize,
		Guard:     engine.Guard,
		Wake:      wake,
		Retry:     outboxRetry,
		Redact:    logging.NewRedactor(cfg.Secrets()).String,
	})
	// A database refusing the moves of acknowledged callbacks out of the
	// ingest log shows nowhere else: their appends to the log succeed.
	if in, ok := store.(interface{ OnMoveOutcome(func(error)) }); ok {
		in.OnMoveOutcome(a.pipeline.ObserveMove)
	}
	var syncCtl server.SyncControl
	if client != nil {
		a.syncer = wecomsync.New(wecomsync.Options{Source: client, Store: store, Notify: wake.Event,
			Log: log, Metrics: m, Rate: cfg.SyncRate})
		syncCtl = syncControl{a.syncer, work}
	}
	started := a.started
	a.server = server.New(server.Options{
		Store:          store,
		Pipeline:       a.pipeline,
		Crypter:        crypter,
		Log:            log,
		Metrics:        m,
		Version:        version,
		CallbackMaxAge: cfg.CallbackMaxAge,
		AdminToken:     cfg.AdminToken,
		Links:          links,
		Posters:        posters.Render,
		ShopSecret:     cfg.ShopSecret,
		Coupons:        server.EngineCoupons(store, app.holder.Current, time.Now),
		Campaigns:      server.CampaignReports{Store: store, Scenario: app.holder.Current},
		MemberSections: []server.MemberSection{server.CouponsSection(), server.ReferralSection(), pointsSection(), server.RedemptionsSection(),
			server.CheckinSection(app.holder.Current, time.Now)},
		Scenario:          app.holder.Current,
		Sandbox:           cfg.Sandbox(),
		Scenarios:         consoleScenarios{app},
		FunnelTTL:         consoleFunnelTTL(cfg),
		AIBotCrypter:      aiw.crypter,
		AIStreams:         aiw.streams,
		Redact:            logging.NewRedactor(cfg.Secrets()),
		HealthMaxEventAge: cfg.HealthMaxEventAge,
		Sync:              syncCtl,
		Unassigned:        unassignedLister(client),
		Status: func() map[string]any {
			st := map[string]any{"version": version, "sandbox": cfg.Sandbox(), "started_at": started}
			for k, v := range app.Status() {
				st[k] = v
			}
			st["ai"] = aiw.Status()
			return st
		},
	})

	if cfg.PublicURL == "" && !cfg.Sandbox() {
		log.Warn().Str("links_point_at", publicURL(cfg, ln.Addr())).
			Msg("WECOMBOT_PUBLIC_URL is not set: members' check-in, coupon and invite links point at this machine's listen address, which their phones can't open; set it to the public https base URL")
	}
	if cfg.AdminToken == "" {
		log.Warn().Msg("WECOMBOT_ADMIN_TOKEN is not set: the admin API and dashboard data answer only on loopback")
	}
	return a, nil
}

// run serves until ctx ends or the HTTP server fails, then shuts down in
// order: stop accepting and finish in-flight requests, stop the background
// work (the pipeline drains what it was handed) and wait for every goroutine.
func (a *serverApp) run(ctx context.Context, stdout io.Writer) error {
	log := a.log
	var bg sync.WaitGroup
	defer bg.Wait()
	defer a.stopWork()
	bg.Go(func() {
		if a.hold != nil {
			select {
			case <-a.hold:
			case <-a.work.Done():
				return
			}
		}
		_ = a.pipeline.Run(a.work)
	})
	bg.Go(func() { a.engine.Watch(a.work) })
	bg.Go(func() { housekeeping(a.work, a.store, a.cfg.DedupeTTL, a.cfg.Retention, log) })
	bg.Go(func() { keepMedia(a.work, a.media, a.engine.holder.Current, log) })
	if a.cfg.DebugListen != "" {
		bg.Go(func() {
			if err := serveDebug(a.work, a.cfg.DebugListen, log); err != nil {
				log.Error().Err(err).Str("addr", a.cfg.DebugListen).Msg("profiling endpoints (WECOMBOT_DEBUG_LISTEN) not served")
			}
		})
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	bg.Go(func() {
		for {
			select {
			case <-a.work.Done():
				return
			case <-hup:
				a.engine.Reload("SIGHUP")
			}
		}
	})

	if a.hold == nil {
		select {
		case <-a.pipeline.Ready():
		case <-ctx.Done():
			return nil
		}
	}
	bg.Go(func() { a.server.WarmConsole(a.work) })
	// Silent members and the loss digest: hourly looks over the members
	// that append events (never change state).
	sweeper := &sweep.Runner{Store: a.store, Scenario: a.engine.holder.Current, Notify: a.pipeline.NotifyEvent,
		Log: log.With().Str("component", "sweep").Logger()}
	bg.Go(func() { sweeper.Run(a.work) })
	a.engine.Loaded()
	if a.syncer != nil {
		stopSync, err := scheduleSync(a.work, a.cfg, a.syncer, a.store, a.engine.holder.Current().Brand.Zone, log)
		if err != nil {
			return err
		}
		bg.Go(func() {
			<-a.work.Done()
			stopSync()
			a.syncer.Wait()
		})
	}
	httpSrv := a.server.HTTPServer()
	serveErr := make(chan error, 1)
	bg.Go(func() { serveErr <- httpSrv.Serve(a.ln) })
	fmt.Fprintf(stdout, "wecombot listening on %s (callback: /wecom/callback)\n", displayURL(a.ln.Addr()))
	log.Info().Str("addr", a.ln.Addr().String()).Dur("startup_ms", time.Since(a.started)).Msg("ready")

	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down: finishing in-flight requests and work")
	case err := <-serveErr:
		serveErr <- err // for the wait below
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	<-serveErr
	a.stopWork()
	a.sched.Stop()
	a.bcasts.Stop()
	bg.Wait()
	log.Info().Msg("stopped")
	return nil
}

// close releases what buildServer opened, last opened first.
func (a *serverApp) close() {
	if a.stopWork != nil {
		a.stopWork()
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// housekeeping runs hourly until ctx ends: it forgets callback dedupe keys
// older than the dedupe TTL and, when retention is on and the store can,
// sweeps processed events and delivered actions older than retention (the
// first sweep runs at start, so a server that restarts daily still sweeps).
func housekeeping(ctx context.Context, store bot.Store, dedupeTTL, retention time.Duration, log zerolog.Logger) {
	sweeper, canSweep := store.(bot.Retention)
	if retention > 0 && !canSweep {
		log.Warn().Msgf("retention is %s but this store (%T) has no retention sweep: processed events and sent actions are kept", retention, store)
	}
	sweep := func() {
		if retention <= 0 || !canSweep {
			return
		}
		st, err := sweeper.Sweep(ctx, time.Now().Add(-retention))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("retention sweep")
			}
			return
		}
		ev := log.Debug()
		if st.Events+st.Actions > 0 {
			ev = log.Info()
		}
		ev.Int("events", st.Events).Int("actions", st.Actions).Int("transactions", st.Transactions).
			Dur("longest_tx_ms", st.LongestTx).Dur("took_ms", st.Took).Str("retention", retention.String()).Msg("retention sweep")
	}
	sweep()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := store.PruneDedupe(ctx, time.Now().Add(-dedupeTTL))
			if err != nil {
				log.Warn().Err(err).Msg("prune dedupe keys")
			} else {
				log.Debug().Int("pruned", n).Msg("pruned dedupe keys")
			}
			sweep()
		}
	}
}

// displayURL is the address a person on this machine can open.
func displayURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
