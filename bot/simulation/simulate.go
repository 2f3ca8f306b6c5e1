// Package simulation runs a scripted member life through the production
// pipeline, offline: the same engine, event dispatcher, outbox guard and
// relay (bot/pipeline), on a fake clock that jumps from step to step, with
// a recording sender instead of WeCom. What an operator previews is what
// production does — a follow-up to a member who has since deleted the staff
// member is cancelled here too.
package simulation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/couponcode"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/media"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/poster"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/scenarios"
)

// simScript is a simulation script (docs/scenarios.md, "Trying a scenario").
type simScript struct {
	Start    string `yaml:"start"`
	Zone     string `yaml:"zone"`
	Staff    string `yaml:"staff"`
	OpenKfID string `yaml:"open_kfid"`
	// Cron fires the campaigns' reminders at their times between steps, and
	// Until runs the clock on after the last step (see checkin_sim.go).
	Cron  bool   `yaml:"cron"`
	Until string `yaml:"until"`
	// Economy fires only the member economy's hourly runs (points expiry,
	// monthly and birthday coupons), without the campaigns' reminders; cron
	// fires both.
	Economy bool `yaml:"economy"`
	// PublicURL signs members' H5 links with a fixed demo key, so links
	// (check-in pages, certificates) show in the output.
	PublicURL string `yaml:"public_url"`
	// MassConfirm is how long each staff member takes to confirm a
	// mass-send task in the 企业微信 client ("never": she doesn't);
	// staff not named confirm after 1h.
	MassConfirm map[string]string `yaml:"mass_confirm"`
	Steps       []simStep         `yaml:"steps"`
}

// simStep is one scripted event: a shorthand (add: wm_alice) or a generic
// event (event: contact.edit) with fields.
type simStep struct {
	At string `yaml:"at"`

	Event       string `yaml:"event"`
	Add         string `yaml:"add"`
	AddHalf     string `yaml:"add_half"`
	DelFollow   string `yaml:"del_follow"`
	DelContact  string `yaml:"del_contact"`
	JoinGroup   string `yaml:"join_group"`
	LeaveGroup  string `yaml:"leave_group"`
	CreateGroup string `yaml:"create_group"`
	Kf          string `yaml:"kf"`
	App         string `yaml:"app"`
	Order       string `yaml:"order"`
	Refund      string `yaml:"refund"`
	Tap         string `yaml:"tap"`
	Campaign    string `yaml:"campaign"`
	// Profile submits the member's profile form (问卷) with Answers: field
	// key → values (a choices field lists several).
	Profile string              `yaml:"profile"`
	Answers map[string][]string `yaml:"answers"`

	Member       string            `yaml:"member"`
	Staff        string            `yaml:"staff"`
	State        string            `yaml:"state"`
	WelcomeCode  string            `yaml:"welcome_code"`
	Name         string            `yaml:"name"`
	Chat         string            `yaml:"chat"`
	Members      []string          `yaml:"members"`
	UpdateDetail string            `yaml:"update_detail"`
	Text         string            `yaml:"text"`
	OpenKfID     string            `yaml:"open_kfid"`
	MsgID        string            `yaml:"msg_id"`
	ID           string            `yaml:"id"`
	RefundID     string            `yaml:"refund_id"`
	Amount       string            `yaml:"amount"`
	DedupeKey    string            `yaml:"dedupe_key"`
	Data         map[string]string `yaml:"data"`
	// Repeat delivers the event this many times with one dedupe key, as
	// WeCom's retries would.
	Repeat int `yaml:"repeat"`
}

// Run runs a scripted member life through the production pipeline,
// offline: each step becomes an event appended to store's log and handled
// by the pipeline's own dispatcher and the engine, under a fake clock that
// jumps from step to step; the outbox relay delivers due actions (expiry,
// guard, result feedback as in production) to a recording sender. It prints
// every event, stage change, outbound and cancelled action (and a summary
// of the members) to out, deterministically. store should be empty (a
// temporary database).
func Run(ctx context.Context, sc *scenarios.Scenario, store bot.Store, script io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(script)
	if err != nil {
		return fmt.Errorf("read simulation script: %w", err)
	}
	var s simScript
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("simulation script is empty")
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			if line, msg := scenarios.LocateYAMLError(raw, err); line > 0 {
				return fmt.Errorf("simulation script:%d: YAML syntax: %s", line, msg)
			}
		}
		return fmt.Errorf("simulation script: %w", err)
	}
	zone := sc.Brand.Zone
	if s.Zone != "" {
		if zone, err = time.LoadLocation(s.Zone); err != nil {
			return fmt.Errorf("simulation script: unknown zone %q", s.Zone)
		}
	}
	start, err := parseSimTime(s.Start, zone)
	if err != nil {
		return fmt.Errorf("simulation script: start: %w", err)
	}
	sim := &simulator{sc: sc, store: store, out: out, zone: zone, clock: start, script: &s, seen: map[string]memberSnap{},
		tasks: map[string]*simTask{}, massSeen: map[uint64]string{}}
	for staff, v := range s.MassConfirm {
		if _, err := sim.confirmDelay(staff); err != nil {
			return fmt.Errorf("simulation script: mass_confirm %s: %q is neither a duration nor never", staff, v)
		}
	}
	now := func() time.Time { return sim.clock }
	sim.engine = engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), now).
		WithCodeRandom(couponcode.NewSeededReader("simulate"))
	// Files scenarios attach are "uploaded" as production's media library
	// does (recorded uploads on the simulated clock): first uploads, changed
	// files and media ids renewed before WeCom's 3 days show as media lines.
	// 任务宝 posters are drawn (their QR a preview of the made-up code URL).
	posters := &poster.Renderer{Scenario: func() *scenarios.Scenario { return sc }}
	sim.media = &media.Library{Store: store, Uploader: &media.Recorder{}, Open: scenarios.ReadMedia, Render: posters.Media, Now: now, Log: zerolog.Nop()}
	sim.pl = pipeline.New(pipeline.Options{Store: store, Handle: sim.engine.Handle, Sender: recorder{sim},
		Guard: engine.Guard, Now: now, Log: zerolog.Nop(), HandleAttempts: 1, MaxAttempts: 1,
		Retry: retry.Policy{Base: time.Minute, Cap: time.Minute, Floor: time.Minute}})
	if err := sim.setupCheckin(start); err != nil {
		return err
	}
	fmt.Fprintf(out, "# scenario %s, brand %s, start %s %s\n", sc.Source, sc.Brand.Name, sim.fmtTime(start), zone)
	at := start
	for i := range s.Steps {
		step := &s.Steps[i]
		if step.At != "" {
			if at, err = nextSimTime(step.At, at, zone); err != nil {
				return fmt.Errorf("step %d: at: %w", i+1, err)
			}
		}
		if at.Before(sim.clock) {
			return fmt.Errorf("step %d: at %s is before the previous step", i+1, sim.fmtTime(at))
		}
		if err := sim.advance(ctx, at); err != nil {
			return err
		}
		sim.clock = at
		ev, err := sim.event(i, step)
		if err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		if err := sim.deliver(ctx, ev, max(step.Repeat, 1)); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		if err := sim.tapResult(ctx, ev); err != nil {
			return err
		}
		if err := sim.drain(ctx, at); err != nil {
			return err
		}
	}
	if err := sim.finishCheckin(ctx); err != nil {
		return err
	}
	if err := sim.drain(ctx, time.Time{}); err != nil {
		return err
	}
	if err := sim.summary(ctx); err != nil {
		return err
	}
	if err := sim.outreach(ctx); err != nil {
		return err
	}
	return sim.leaderboards(ctx)
}

type simulator struct {
	sc     *scenarios.Scenario
	store  bot.Store
	engine *engine.Engine
	pl     *pipeline.Pipeline
	out    io.Writer
	zone   *time.Location
	clock  time.Time
	script *simScript
	// seen is what was last printed about each member, to print changes.
	seen  map[string]memberSnap
	order []string
	// couponSeen is each code's last printed status.
	couponSeen map[string]string
	// lastTick is up to when campaign reminders were fired.
	lastTick time.Time
	// lastAction is the newest outbox id looked at for skipped actions.
	lastAction uint64
	// media resolves attachments' files as production does (recorded uploads).
	media *media.Library
	// tasks are the mass-send tasks the simulated WeCom created, by msgid;
	// massSeen is each batched action's last printed result.
	tasks    map[string]*simTask
	massSeen map[uint64]string
}

// simTask is a mass-send task in the simulated WeCom.
type simTask struct {
	sender    string
	targets   []string
	confirmed time.Time // zero: never
}

type memberSnap struct {
	// ledger is the last points ledger entry printed.
	ledger  uint64
	history int
	lost    bool
	level   string
	orders  int
	spend   int64
	// profile is when her profile form answers last changed.
	profile time.Time
	silent  bool
}

func (s *simulator) fmtTime(t time.Time) string { return t.In(s.zone).Format("2006-01-02 15:04:05") }

func (s *simulator) line(kind, format string, args ...any) {
	fmt.Fprintf(s.out, "%s  %-6s %s\n", s.fmtTime(s.clock), kind, fmt.Sprintf(format, args...))
}

// text prints a message body indented under its line.
func (s *simulator) text(body string) {
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		fmt.Fprintf(s.out, "%29s| %s\n", "", l)
	}
}

func (s *simulator) event(i int, st *simStep) (*bot.Event, error) {
	ev := &bot.Event{Source: bot.SourceSim, At: s.clock, ReceivedAt: s.clock, DedupeKey: st.DedupeKey,
		StaffID: st.Staff, State: st.State, WelcomeCode: st.WelcomeCode, ChatID: st.Chat, Content: st.Text,
		OpenKfID: st.OpenKfID, MsgID: st.MsgID, ExternalUserID: st.Member, UpdateDetail: st.UpdateDetail,
		MemChangeList: st.Members, Data: map[string]string{}}
	if ev.DedupeKey == "" {
		ev.DedupeKey = fmt.Sprintf("sim|%d", i+1)
	}
	for k, v := range st.Data {
		ev.Data[k] = v
	}
	if st.Name != "" {
		ev.Data[bot.DataName] = st.Name
	}
	defStaff := func() {
		if ev.StaffID == "" {
			ev.StaffID = s.script.Staff
		}
	}
	kinds := 0
	set := func(v string, f func(v string)) {
		if v != "" {
			kinds++
			f(v)
		}
	}
	set(st.Event, func(v string) { ev.Type = bot.EventType(v) })
	set(st.Add, func(v string) { ev.Type, ev.ExternalUserID = bot.EventContactAdd, v; defStaff() })
	set(st.AddHalf, func(v string) { ev.Type, ev.ExternalUserID = bot.EventContactAddHalf, v; defStaff() })
	set(st.DelFollow, func(v string) { ev.Type, ev.ExternalUserID = bot.EventContactDelFollow, v; defStaff() })
	set(st.DelContact, func(v string) { ev.Type, ev.ExternalUserID = bot.EventContactDel, v; defStaff() })
	set(st.JoinGroup, func(v string) {
		ev.Type, ev.UpdateDetail, ev.MemChangeList = bot.EventGroupUpdate, bot.GroupAddMember, append([]string{v}, st.Members...)
	})
	set(st.LeaveGroup, func(v string) {
		ev.Type, ev.UpdateDetail, ev.MemChangeList = bot.EventGroupUpdate, bot.GroupDelMember, append([]string{v}, st.Members...)
	})
	set(st.CreateGroup, func(v string) { ev.Type, ev.ChatID = bot.EventGroupCreate, v; defStaff() })
	set(st.Kf, func(v string) {
		ev.Type, ev.ExternalUserID, ev.Source = bot.EventKfText, v, bot.SourceKf
		if ev.OpenKfID == "" {
			ev.OpenKfID = s.script.OpenKfID
		}
		if ev.MsgID == "" {
			ev.MsgID = fmt.Sprintf("sim-msg-%d", i+1)
		}
	})
	set(st.App, func(v string) { ev.Type, ev.StaffID = bot.EventAppText, v })
	set(st.Order, func(v string) { ev.Type, ev.ExternalUserID, ev.Source = bot.EventOrderPaid, v, bot.SourceShop })
	set(st.Refund, func(v string) { ev.Type, ev.ExternalUserID, ev.Source = bot.EventOrderRefunded, v, bot.SourceShop })
	set(st.Tap, func(v string) { s.tapEvent(ev, v, st) })
	set(st.Profile, func(v string) {
		raw, _ := json.Marshal(st.Answers)
		ev.Type, ev.ExternalUserID, ev.Source = engine.EventProfileSubmit, v, "h5"
		ev.Data[engine.DataProfileAnswers] = string(raw)
	})
	if kinds != 1 {
		return nil, errors.New("give exactly one of event, add, add_half, del_follow, del_contact, join_group, leave_group, create_group, kf, app, order, refund, tap, profile")
	}
	if st.ID != "" {
		ev.Data[bot.DataOrderID] = st.ID
	}
	if st.RefundID != "" {
		ev.Data[bot.DataRefundID] = st.RefundID
	}
	if st.Amount != "" {
		fen, err := parseYuan(st.Amount)
		if err != nil {
			return nil, err
		}
		ev.Data[bot.DataAmountFen] = strconv.FormatInt(fen, 10)
	}
	if (ev.Type == bot.EventOrderPaid || ev.Type == bot.EventOrderRefunded) && st.ID == "" && ev.Data[bot.DataOrderID] == "" {
		return nil, errors.New("an order step needs id")
	}
	if ev.Type == bot.EventOrderPaid && ev.Data[bot.DataAmountFen] == "" {
		return nil, errors.New("an order step needs amount (yuan)")
	}
	if (ev.Type == bot.EventGroupUpdate || ev.Type == bot.EventGroupCreate) && ev.ChatID == "" {
		return nil, errors.New("a group step needs chat")
	}
	if len(ev.Data) == 0 {
		ev.Data = nil
	}
	return ev, nil
}

func parseYuan(s string) (int64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("amount %q: want yuan such as 39.9", s)
	}
	return int64(math.Round(f * 100)), nil
}

// deliver appends the event (times times, as WeCom retries would) and
// lets the pipeline handle what the log accepted.
func (s *simulator) deliver(ctx context.Context, ev *bot.Event, times int) error {
	s.line("event", "%s", describeEvent(ev))
	for n := 0; n < times; n++ {
		e := *ev
		dup, err := s.store.AppendEvent(ctx, &e)
		if err != nil {
			return fmt.Errorf("append event: %w", err)
		}
		if dup {
			s.line("dedup", "delivery %d dropped by the event log (same dedupe key)", n+1)
		}
	}
	return s.handle(ctx, ev)
}

// handle runs the pipeline's event workers on everything pending: the
// scripted event (already printed), then what senders fed back (results,
// printed here). Each handled event's changes are reported.
func (s *simulator) handle(ctx context.Context, scripted *bot.Event) error {
	evs, err := s.store.PendingEvents(ctx, 0, 1000)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	reported := false
	for i := range evs {
		if (scripted != nil && evs[i].DedupeKey == scripted.DedupeKey) || massResultEvent(&evs[i]) {
			continue
		}
		s.line("event", "%s", describeEvent(&evs[i]))
	}
	failed := s.pl.Stats().Failed
	if _, err := s.pl.HandlePending(ctx); err != nil {
		return err
	}
	if s.pl.Stats().Failed != failed {
		return fmt.Errorf("the engine failed on an event (see wecombot events): %s", describeEvent(&evs[len(evs)-1]))
	}
	if err := s.reportSkipped(ctx); err != nil {
		return err
	}
	if err := s.reportMass(ctx); err != nil {
		return err
	}
	for i := range evs {
		if scripted != nil && evs[i].DedupeKey == scripted.DedupeKey {
			reported = true
		}
		if err := s.report(ctx, &evs[i]); err != nil {
			return err
		}
	}
	if scripted != nil && !reported {
		return s.report(ctx, scripted)
	}
	return nil
}

// massResultEvent: a mass-send batch's timer, task or poll result, which
// the task, result and remind lines already show; or the delivery outcome
// of an outreach kf message or staff task (its send or cancel line shows
// it; the engine only counts it for the broadcast and SOP reports).
func massResultEvent(ev *bot.Event) bool {
	if ev.Type != bot.EventActionResult {
		return false
	}
	switch bot.ActionKind(ev.Data[bot.ResultKind]) {
	case bot.ActionTimer, bot.ActionMassResult:
		return true
	case bot.ActionKfMessage, bot.ActionStaffMessage:
		return ev.Data[bot.DataOutcome] != ""
	case bot.ActionMassSend:
		return ev.Data[bot.DataBatch] != "" || strings.HasPrefix(ev.Data[bot.ResultKey], "masstask|")
	}
	return false
}

func describeEvent(ev *bot.Event) string {
	if ev.Type == checkin.EventTick {
		return fmt.Sprintf("%s campaign=%s reminder=%s cron=%q", ev.Type, ev.Data[checkin.DataCampaign], ev.Data[checkin.DataReminder], ev.Data[checkin.DataSpec])
	}
	var b strings.Builder
	b.WriteString(string(ev.Type))
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	kv("member", ev.ExternalUserID)
	kv("staff", ev.StaffID)
	kv("state", ev.State)
	kv("welcome_code", ev.WelcomeCode)
	kv("chat", ev.ChatID)
	kv("detail", ev.UpdateDetail)
	if len(ev.MemChangeList) > 0 {
		kv("members", strings.Join(ev.MemChangeList, ","))
	}
	kv("kf", ev.OpenKfID)
	if ev.Content != "" {
		fmt.Fprintf(&b, " text=%q", ev.Content)
	}
	keys := make([]string, 0, len(ev.Data))
	for k := range ev.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv(k, ev.Data[k])
	}
	return b.String()
}

// report prints stage, lost and level changes of the members the event named.
func (s *simulator) report(ctx context.Context, ev *bot.Event) error {
	ids := append([]string{ev.ExternalUserID}, ev.MemChangeList...)
	return s.store.View(ctx, func(tx bot.Tx) error {
		for _, id := range ids {
			if id == "" {
				continue
			}
			m, err := tx.Member(id)
			if errors.Is(err, bot.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			prev, known := s.seen[id]
			if !known {
				s.order = append(s.order, id)
			}
			for _, ch := range m.StageHistory[min(prev.history, len(m.StageHistory)):] {
				from := string(ch.From)
				if from == "" {
					from = "none"
				}
				s.line("stage", "%s: %s → %s (%s) because %s", id, from, ch.To, s.sc.Funnel.StageName(ch.To), ch.Cause)
			}
			if m.Lost != prev.lost {
				if m.Lost {
					s.line("lost", "%s deleted every staff member (stage %s kept)", id, m.Stage)
				} else if known {
					s.line("back", "%s is a contact again", id)
				}
			}
			if m.IsSilent() != prev.silent {
				if m.IsSilent() {
					s.line("silent", "%s went silent: nothing since %s", id, s.fmtTime(m.LastActivity()))
				} else if known {
					s.line("active", "%s is active again after a silence", id)
				}
			}
			if m.Orders != prev.orders || m.SpendFen != prev.spend {
				s.line("orders", "%s: %d paid, spend %s yuan", id, m.Orders, scenarios.FormatYuan(m.SpendFen))
			}
			if err := s.simCoupons(tx, id); err != nil {
				return err
			}
			entries, err := checkin.PointsHistory(tx, id, prev.ledger, 1000)
			if err != nil {
				return err
			}
			for _, e := range entries {
				debt := ""
				if e.Debt > 0 {
					debt = fmt.Sprintf(", owes %d", e.Debt)
				}
				s.line("points", "%s: %+d %s → %d%s", id, e.Delta, e.Reason, e.Balance, debt)
				prev.ledger = e.N
			}
			if m.Level != prev.level {
				s.line("level", "%s: %s (%d points)", id, m.Level, m.Points)
			}
			var profileAt time.Time
			if m.Profile != nil {
				profileAt = m.Profile.UpdatedAt
				if !profileAt.Equal(prev.profile) {
					s.line("profile", "%s", s.describeProfile(m))
				}
			}
			s.seen[id] = memberSnap{ledger: prev.ledger, history: len(m.StageHistory), lost: m.Lost, level: m.Level, orders: m.Orders, spend: m.SpendFen, profile: profileAt, silent: m.IsSilent()}
		}
		return nil
	})
}

// describeProfile words a member's profile form answers by the form's labels.
func (s *simulator) describeProfile(m *bot.Member) string {
	form := s.sc.ProfileForm
	parts := []string{}
	for _, a := range m.Profile.Answers {
		label := a.Field
		if fd := form.Field(a.Field); fd != nil {
			label = fd.Label
		}
		parts = append(parts, label+" "+form.AnswerText(a))
	}
	return fmt.Sprintf("%s: %s (%d points, tags %s)", m.ExternalUserID, strings.Join(parts, "; "), m.Points, strings.Join(m.Tags, ","))
}

// drain "sends" every action due by until (zero: everything), advancing the
// clock to each action's due time.
func (s *simulator) drain(ctx context.Context, until time.Time) error {
	for {
		next, ok, err := s.store.NextDue(ctx)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if !ok || (!until.IsZero() && next.After(until)) {
			return nil
		}
		if next.After(s.clock) {
			s.clock = next
		}
		acts, err := s.store.DueActions(ctx, s.clock, 100)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if len(acts) == 0 {
			return fmt.Errorf("outbox: NextDue reported %s but nothing is due", s.fmtTime(next))
		}
		for i := range acts {
			a := &acts[i]
			// The relay's own delivery: expiry, the guard, the recording
			// sender, result feedback, the outcome recorded in the outbox.
			s.pl.Deliver(ctx, a)
			if err := s.outcome(ctx, a); err != nil {
				return err
			}
			if err := s.handle(ctx, nil); err != nil {
				return err
			}
		}
	}
}

// outcome prints what the relay decided instead of sending: too late, or
// cancelled by the guard (the member has since deleted the staff member).
func (s *simulator) outcome(ctx context.Context, a *bot.Action) error {
	got, err := s.store.Action(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if got.Status != bot.ActionFailed {
		return nil
	}
	switch reason, canceled := strings.CutPrefix(got.LastError, "canceled: "); {
	case canceled:
		s.line("cancel", "%s → %s: %s", a.Kind, a.MemberID, reason)
	case strings.HasPrefix(got.LastError, "too late"):
		s.line("expire", "%s %s: had to be sent by %s", a.Kind, a.MemberID, s.fmtTime(a.NotAfter))
	default:
		s.line("failed", "%s → %s: %s", a.Kind, a.MemberID, got.LastError)
	}
	return nil
}

// recorder is the simulation's sender: it prints what the WeCom sender
// would send and answers like WeCom (a contact way gets a made-up
// config_id and QR code, fed back as a system.action_result).
type recorder struct{ s *simulator }

func (r recorder) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	a = r.s.uploadMedia(ctx, a)
	if err := r.s.record(a); err != nil {
		return bot.SendResult{}, false, err
	}
	res := bot.SendResult{Detail: "simulated"}
	switch a.Kind {
	case bot.ActionMassSend:
		res.Data = r.s.massTask(a)
	case bot.ActionMassResult:
		res.Data = r.s.massResults(a)
	}
	if a.Kind == bot.ActionContactWay {
		var cw bot.ContactWay
		if err := a.Decode(&cw); err != nil {
			return bot.SendResult{}, false, err
		}
		res.Data = map[string]string{"state": cw.State, "config_id": "sim-" + cw.State,
			"qr_code": "https://wework.example/qr/" + cw.State}
	}
	return res, false, nil
}

// uploadMedia resolves the action's media like production's media library,
// printing each upload, and returns the action as WeCom would get it.
func (s *simulator) uploadMedia(ctx context.Context, a *bot.Action) *bot.Action {
	out := a
	sender := &media.Sender{Lib: s.media, Next: bot.SenderFunc(func(_ context.Context, resolved *bot.Action) (bot.SendResult, bool, error) {
		out = resolved
		return bot.SendResult{}, false, nil
	})}
	res, _, err := sender.Send(ctx, a)
	if err != nil {
		s.line("media", "%s %s: %v", a.Kind, a.MemberID, err)
		return a
	}
	for _, note := range strings.Split(strings.TrimPrefix(res.Detail, "; "), "; ") {
		if note != "" {
			s.line("media", "%s", note)
		}
	}
	return out
}

// reportSkipped prints actions the engine recorded as skipped (WeCom would
// refuse them: outside the 微信客服 budget, over the mass-send quota).
func (s *simulator) reportSkipped(ctx context.Context) error {
	acts, err := s.store.Actions(ctx, s.lastAction, 1000)
	if err != nil {
		return err
	}
	for _, a := range acts {
		s.lastAction = max(s.lastAction, a.ID)
		if a.Status == bot.ActionBatched {
			s.massSeen[a.ID] = ""
			s.line("batch", "%s → %s due %s joins its staff member's batch", a.Kind, massTo(&a), s.fmtTime(a.DueAt))
			continue
		}
		if a.Status != bot.ActionSkipped {
			continue
		}
		to := a.MemberID
		var p bot.MassSend
		if to == "" && a.Kind == bot.ActionMassSend && a.Decode(&p) == nil {
			to = strings.Join(p.ChatIDs, ",")
		}
		s.line("skip", "%s → %s due %s: %s", a.Kind, to, s.fmtTime(a.DueAt), strings.TrimPrefix(a.LastError, "skipped: "))
	}
	return nil
}

// record prints one outbound action: what the WeCom sender would send.
func (s *simulator) record(a *bot.Action) error {
	switch a.Kind {
	case bot.ActionWelcome:
		var p bot.WelcomeMessage
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "welcome → %s from %s, code %s%s", a.MemberID, p.StaffID, p.WelcomeCode, describeAttachments(p.Attachments))
		s.text(p.Text)
	case bot.ActionMarkTag:
		var p bot.MarkTag
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "mark_tag %s (staff %s) add %v remove %v", p.ExternalUserID, p.StaffID, p.Add, p.Remove)
	case bot.ActionMassSend:
		var p bot.MassSend
		if err := a.Decode(&p); err != nil {
			return err
		}
		to := strings.Join(append(append([]string(nil), p.ExternalUserIDs...), p.ChatIDs...), ",")
		s.line("send", "mass_send (%s) → %s, staff %s confirms%s", p.ChatType, to, p.Sender, describeAttachments(p.Attachments))
		s.text(p.Text)
	case bot.ActionKfMessage:
		var p bot.KfMessage
		if err := a.Decode(&p); err != nil {
			return err
		}
		if p.Image != nil {
			s.line("send", "kf_message → %s via %s: picture (media_id %s)", p.ExternalUserID, p.OpenKfID, p.Image.MediaID)
			break
		}
		s.line("send", "kf_message → %s via %s", p.ExternalUserID, p.OpenKfID)
		s.text(p.Text)
	case bot.ActionStaffMessage:
		var p bot.StaffMessage
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "staff_message → %s", strings.Join(p.ToUsers, ","))
		s.text(p.Text)
	case bot.ActionGroupWelcome:
		var p bot.GroupWelcome
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "group_welcome %q%s", p.Name, describeAttachments(p.Attachments))
		s.text(p.Text)
	case bot.ActionRobot:
		var p bot.RobotMessage
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "robot → %s", p.Robot)
		s.text(p.Text + p.Markdown)
	case bot.ActionContactProfile, bot.ActionGroupDetail:
		// Reads (externalcontact/get, groupchat/get) reach no one; the
		// simulated WeCom has nothing to tell, so they print nothing.
	case bot.ActionMassResult:
		var p bot.MassResult
		if err := a.Decode(&p); err != nil {
			return err
		}
		if p.Remind {
			s.line("remind", "%s: confirm mass-send task %s (remind_groupmsg_send)", p.Sender, p.MsgID)
		}
		if t := s.tasks[p.MsgID]; p.Stop && t != nil && (t.confirmed.IsZero() || s.clock.Before(t.confirmed)) {
			s.line("stop", "mass-send task %s: %s did not confirm it in time (cancel_groupmsg_send)", p.MsgID, p.Sender)
		}
	case bot.ActionContactWay:
		var p bot.ContactWay
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "contact_way state %q → staff %s", p.State, strings.Join(p.Staff, ","))
	case bot.ActionGroupJoinWay:
		var p bot.GroupJoinWay
		if err := a.Decode(&p); err != nil {
			return err
		}
		s.line("send", "group QR code state %q → groups %s", p.State, strings.Join(p.ChatIDs, ","))
	default:
		s.line("send", "%s → %s %s", a.Kind, a.MemberID, a.Payload)
	}
	return nil
}

// confirmDelay is how long staff takes to confirm a task (false: never).
func (s *simulator) confirmDelay(staff string) (time.Duration, error) {
	var v string
	ok := false
	if s.script != nil {
		v, ok = s.script.MassConfirm[staff]
	}
	if !ok {
		return time.Hour, nil
	}
	if strings.TrimSpace(v) == "never" {
		return -1, nil
	}
	return scenarios.ParseDuration(v)
}

// massTask creates a batch's task in the simulated WeCom.
func (s *simulator) massTask(a *bot.Action) map[string]string {
	var p bot.MassSend
	if a.Decode(&p) != nil || p.Batch == "" {
		return nil
	}
	if s.tasks == nil {
		s.tasks = map[string]*simTask{}
	}
	id := fmt.Sprintf("sim-task-%d", len(s.tasks)+1)
	t := &simTask{sender: p.Sender, targets: append(append([]string(nil), p.ExternalUserIDs...), p.ChatIDs...)}
	if d, _ := s.confirmDelay(p.Sender); d >= 0 {
		t.confirmed = s.clock.Add(d)
	}
	s.tasks[id] = t
	noun := "customers"
	if p.ChatType == "group" {
		noun = "groups"
	}
	s.line("task", "%s to %d %s: waiting for %s to confirm it in 企业微信", id, len(t.targets), noun, p.Sender)
	return map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: id}
}

// massResults answers a result poll as WeCom would: sent to everyone once
// the staff member confirmed, else nothing yet.
func (s *simulator) massResults(a *bot.Action) map[string]string {
	var p bot.MassResult
	if a.Decode(&p) != nil {
		return nil
	}
	t := s.tasks[p.MsgID]
	if t == nil {
		return nil
	}
	sent := !t.confirmed.IsZero() && !s.clock.Before(t.confirmed)
	status, st := "0", "0"
	d := map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: p.MsgID, bot.DataRound: strconv.Itoa(p.Round)}
	if sent {
		status, st = "2", "1"
		d[bot.DataSendTime] = strconv.FormatInt(t.confirmed.Unix(), 10)
	}
	if p.Remind && !sent {
		d[bot.DataReminded] = "1"
	}
	if p.Stop && !sent {
		d[bot.DataStopped] = "1"
		t.confirmed = time.Time{} // stopped: never sent
	}
	pairs := make([]string, len(t.targets))
	for i, id := range t.targets {
		pairs[i] = id + ":" + st
	}
	d[bot.DataTaskStatus], d[bot.DataSendResults] = status, strings.Join(pairs, ",")
	return d
}

// massTo is who a per-member mass send is for: the customer, or the group.
func massTo(a *bot.Action) string {
	var p bot.MassSend
	if a.MemberID != "" || a.Decode(&p) != nil {
		return a.MemberID
	}
	return strings.Join(p.ChatIDs, ",")
}

// reportMass prints what became of batched mass sends as results arrive.
func (s *simulator) reportMass(ctx context.Context) error {
	ids := make([]uint64, 0, len(s.massSeen))
	for id := range s.massSeen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		a, err := s.store.Action(ctx, id)
		if err != nil {
			return err
		}
		if a.Result == s.massSeen[id] {
			continue
		}
		s.massSeen[id] = a.Result
		if a.Result == bot.MassCanceled {
			s.line("cancel", "%s → %s: %s", a.Kind, massTo(a), strings.TrimPrefix(a.Detail, "canceled: "))
			continue
		}
		if a.Result != bot.MassWaiting {
			s.line("result", "mass_send → %s: %s", massTo(a), a.Detail)
		}
	}
	return nil
}

func describeAttachments(as []bot.Attachment) string {
	if len(as) == 0 {
		return ""
	}
	parts := make([]string, len(as))
	for i, a := range as {
		switch a.Type {
		case "link":
			parts[i] = fmt.Sprintf("link %q %s", a.Title, a.URL)
		case "miniprogram":
			parts[i] = fmt.Sprintf("miniprogram %q %s", a.Title, a.Page)
		default:
			parts[i] = a.Type
		}
	}
	return ", attachments: " + strings.Join(parts, "; ")
}

// summary prints where every member the script touched ended up.
func (s *simulator) summary(ctx context.Context) error {
	fmt.Fprintln(s.out, "# members")
	return s.store.View(ctx, func(tx bot.Tx) error {
		for _, id := range s.order {
			m, err := tx.Member(id)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s: stage=%s channel=%s orders=%d spend=%s check_ins=%d points=%d level=%s lost=%v\n",
				id, m.Stage, m.Channel, m.Orders, scenarios.FormatYuan(m.SpendFen), m.CheckIns, m.Points, m.Level, m.Lost)
			fmt.Fprintf(s.out, "  tags: %s\n", strings.Join(m.Tags, ", "))
			if len(m.Groups) > 0 {
				fmt.Fprintf(s.out, "  groups: %s\n", strings.Join(m.Groups, ", "))
			}
			for _, ch := range m.StageHistory {
				from := string(ch.From)
				if from == "" {
					from = "none"
				}
				fmt.Fprintf(s.out, "  %s %s → %s (%s)\n", s.fmtTime(ch.At), from, ch.To, ch.Cause)
			}
		}
		return nil
	})
}

// parseSimTime parses an absolute time in zone.
func parseSimTime(v string, zone *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, errors.New("required, e.g. \"2025-03-03 07:30\"")
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, zone); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want a time such as \"2025-03-03 07:30\" or \"+2h\", got %q", v)
}

// nextSimTime resolves a step's at: "+dur" after the previous step, or absolute.
func nextSimTime(v string, prev time.Time, zone *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if rest, ok := strings.CutPrefix(v, "+"); ok {
		d, err := scenarios.ParseDuration(strings.ReplaceAll(rest, " ", ""))
		if err != nil {
			return time.Time{}, err
		}
		return prev.Add(d), nil
	}
	return parseSimTime(v, zone)
}
