// Package wecomapi is wecombot's outbound WeCom (企业微信) client: it delivers
// outbox actions (bot.Sender) through github.com/silenceper/wechat/v2, with
// our own access-token handling, classified errors and metrics.
//
// Several Clients per process, each with its own base, proxy and timeout:
// the library hard-codes https://qyapi.weixin.qq.com and only offers
// process-wide hooks (util.SetURIModifier, util.DefaultHTTPClient), so New
// installs them once and every Client tags the credential it hands the
// library (access_token, robot webhook key) with its id; the hooks read the
// tag off each request, strip it, and send the request to that Client's base
// through that Client's transport. A library request without a tag is refused,
// never sent to WeCom's real host.
package wecomapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work"
	workconfig "github.com/silenceper/wechat/v2/work/config"
	"github.com/silenceper/wechat/v2/work/externalcontact"
	"github.com/silenceper/wechat/v2/work/kf"
	"github.com/silenceper/wechat/v2/work/message"
	"github.com/silenceper/wechat/v2/work/robot"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/retry"
)

// DefaultAPIBase is WeCom's API host, the one the library hard-codes.
const DefaultAPIBase = "https://qyapi.weixin.qq.com"

// DefaultTagGroup is the corp tag group missing tags are created in.
const DefaultTagGroup = "wecombot"

// DefaultTimeout bounds each HTTP exchange with WeCom.
const DefaultTimeout = 10 * time.Second

// API names: the path under /cgi-bin/, used in metrics, logs and errors.
const (
	apiGetToken           = "gettoken"
	apiSendWelcome        = "externalcontact/send_welcome_msg"
	apiMarkTag            = "externalcontact/mark_tag"
	apiGetCorpTagList     = "externalcontact/get_corp_tag_list"
	apiAddCorpTag         = "externalcontact/add_corp_tag"
	apiAddMsgTemplate     = "externalcontact/add_msg_template"
	apiGroupWelcomeAdd    = "externalcontact/group_welcome_template/add"
	apiGroupWelcomeEdit   = "externalcontact/group_welcome_template/edit"
	apiAddContactWay      = "externalcontact/add_contact_way"
	apiGetExternalContact = "externalcontact/get"
	apiMessageSend        = "message/send"
	apiKfSyncMsg          = "kf/sync_msg"
	apiKfSendMsg          = "kf/send_msg"
	apiWebhookSend        = "webhook/send"
)

// Config configures a Client.
type Config struct {
	CorpID  string // 企业ID
	AgentID string // 应用 AgentId (message/send)
	Secret  string // 应用 Secret
	// KfSecret is the 微信客服 secret; empty means Secret.
	KfSecret string
	// APIBase replaces https://qyapi.weixin.qq.com for every call (default DefaultAPIBase).
	APIBase string
	// EgressProxy is an http(s) proxy URL for all WeCom calls, e.g. one whose IP is in 企业可信IP.
	EgressProxy string
	// Timeout bounds each HTTP exchange (default DefaultTimeout).
	Timeout time.Duration
	// Robots maps a robot name used in scenarios to its webhook key.
	Robots map[string]string
	// TagGroup is the corp tag group missing tags are created in (default DefaultTagGroup).
	TagGroup string
	Logger   zerolog.Logger
	Metrics  *metrics.Metrics
	// Now and Sleep are injectable for tests (default time.Now and a context-aware sleep).
	Now   func() time.Time
	Sleep func(time.Duration)
	// Retry is the backoff of Client.Retry (default retry.Default, the
	// policy the outbox uses too).
	Retry retry.Policy
	// Throttle is the hold after overload answers (45009, 45033, -1, 5xx,
	// timeouts), per API (default retry.DefaultThrottle).
	Throttle retry.Policy
	// Limits bound each API's adaptive concurrency and its call budget
	// (default retry.DefaultLimits: WeCom's 10,000/min and 150,000/h per API).
	Limits retry.Limits
}

// Client calls WeCom. It is safe for concurrent use.
type Client struct {
	id      uint64 // tags the library's requests (see route)
	cfg     Config
	base    string
	log     zerolog.Logger
	metrics *metrics.Metrics
	now     func() time.Time

	httpClient *http.Client // our own calls (gettoken)
	transport  *transport

	appToken *tokenSource
	kfToken  *tokenSource

	contact *externalcontact.Client
	message *message.Client
	robot   *robot.Client
	kf      *kf.Client

	tags *tagResolver
	// throttle holds back an API while WeCom answers it with overload.
	throttle *retry.Throttle
}

// New validates cfg and builds a Client. It fetches nothing: the first call
// (or Ping) fetches the access_token.
func New(cfg Config) (*Client, error) {
	if cfg.CorpID == "" {
		return nil, errors.New("wecom: corp id (WECOM_CORP_ID, 企业ID) is required")
	}
	if cfg.Secret == "" {
		return nil, errors.New("wecom: secret (WECOM_SECRET, 应用 Secret) is required; without it use the sandbox")
	}
	if cfg.KfSecret == "" {
		cfg.KfSecret = cfg.Secret
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	base, err := url.Parse(cfg.APIBase)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("wecom: API base %q is not an http(s) URL like %s", RedactURL(cfg.APIBase), DefaultAPIBase)
	}
	var proxy *url.URL
	if cfg.EgressProxy != "" {
		proxy, err = url.Parse(cfg.EgressProxy)
		if err != nil || (proxy.Scheme != "http" && proxy.Scheme != "https") || proxy.Host == "" {
			return nil, fmt.Errorf("wecom: egress proxy %q is not an http(s) URL like http://10.0.0.2:3128", RedactURL(cfg.EgressProxy))
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TagGroup == "" {
		cfg.TagGroup = DefaultTagGroup
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry = retry.Default
	}
	if cfg.Throttle.Base <= 0 {
		cfg.Throttle = retry.DefaultThrottle
	}
	c := &Client{
		id:      clientIDs.Add(1),
		cfg:     cfg,
		base:    strings.TrimRight(base.String(), "/"),
		log:     cfg.Logger.With().Str("component", "wecomapi").Logger(),
		metrics: cfg.Metrics,
		now:     cfg.Now,
	}
	c.transport = newTransport(proxy, cfg.Timeout)
	c.httpClient = &http.Client{Transport: c.transport}
	c.appToken = newTokenSource(c, cfg.Secret)
	c.kfToken = c.appToken
	if cfg.KfSecret != cfg.Secret {
		c.kfToken = newTokenSource(c, cfg.KfSecret)
	}

	// The library never sees the secret: its token handles are replaced by
	// ours, so it has no reason to fetch a token (and no secret to leak in
	// an error URL) itself.
	w := work.NewWork(&workconfig.Config{CorpID: cfg.CorpID, AgentID: cfg.AgentID, Cache: cache.NewMemory()})
	w.GetContext().AccessTokenHandle = libraryHandle{c.appToken, c.id}
	c.contact = w.GetExternalContact()
	c.message = w.GetMessage()
	c.robot = w.GetRobot()
	// kf.NewClient builds its own token handle in an unexported field; it
	// reads the token from the cache we give it, so that cache answers
	// token keys from our token source.
	c.kf, err = kf.NewClient(&workconfig.Config{CorpID: cfg.CorpID, Cache: tokenCache{Cache: cache.NewMemory(), ts: c.kfToken, id: c.id}})
	if err != nil {
		return nil, fmt.Errorf("wecom: kf client: %w", err)
	}
	c.tags = newTagResolver(c)
	c.throttle = retry.NewThrottle(cfg.Throttle, cfg.Now).WithLimits(cfg.Limits)

	installLibraryHooks()
	routes.Store(c.id, &route{base: c.base, rt: c.transport})
	// The route goes when the Client does (tests and bench build many).
	runtime.AddCleanup(c, func(id uint64) { routes.Delete(id) }, c.id)
	return c, nil
}

// Invalidate forgets every cached access_token; the next call fetches a new one.
func (c *Client) Invalidate() {
	c.appToken.invalidate("")
	c.kfToken.invalidate("")
}

// Ping checks the credentials and the network path the way a real call
// does: it fetches the access_token (corp id, secret) and lists the corp
// tags (客户联系 permission, 企业可信IP — gettoken itself is not IP-checked).
// The error is an *APIError whose Hint names the fix. It also warms the tag
// cache.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.appToken.get(ctx); err != nil {
		return err
	}
	return c.tags.refresh(ctx)
}

// Retry runs fn up to attempts times while it fails with a retryable error,
// waiting the Retry policy's backoff between tries; for callers outside the
// outbox (the kf puller). Send itself never retries beyond one token
// refresh: the outbox does, with the same policy.
func (c *Client) Retry(ctx context.Context, attempts int, fn func() error) error {
	attempts = max(attempts, 1)
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err = fn(); err == nil || !Classify(err) || attempt == attempts {
			return err
		}
		wait := c.cfg.Retry.Backoff(attempt)
		var held *HeldError
		if errors.As(err, &held) {
			wait = max(wait, time.Until(held.Until))
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return err
		}
	}
	return err
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.cfg.Sleep != nil {
		c.cfg.Sleep(d)
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenFor picks the token source an API uses; webhook calls use none.
func (c *Client) tokenFor(api string) *tokenSource {
	switch {
	case strings.HasPrefix(api, "webhook/"):
		return nil
	case strings.HasPrefix(api, "kf/"):
		return c.kfToken
	}
	return c.appToken
}

func isTokenError(code int64) bool {
	return code == CodeInvalidToken || code == CodeTokenExpired || code == CodeInvalidCredential
}

// call runs one library call: it makes sure a token is cached first (with
// ctx, since the library fetches without one), records the outcome, and on
// an invalid/expired token invalidates it and tries once more.
//
// The throttle comes first: while WeCom answers an API with overload
// (45009, 45033, -1, 5xx, timeouts) the call is refused locally with a
// *HeldError, without reaching WeCom. A call to an API that sends something
// (delivers) whose answer is lost (a timeout, a cut connection) returns an
// error wrapping bot.ErrOutcomeUnknown: it may have been delivered.
func (c *Client) call(ctx context.Context, api string, fn func() error) error {
	ts := c.tokenFor(api)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wecom %s: %w", api, err)
		}
		var token string
		if ts != nil {
			var err error
			if token, err = ts.get(ctx); err != nil {
				return err
			}
		}
		tc, until, err := c.throttle.Begin(ctx, api)
		if err != nil {
			return fmt.Errorf("wecom %s: %w", api, err)
		}
		if tc == nil {
			return &HeldError{API: api, Until: until}
		}
		start := time.Now()
		err = fn()
		took := time.Since(start)
		if err == nil {
			tc.End(false)
			c.metrics.WeComCall(api, 0, took)
			c.log.Debug().Str("api", api).Dur("took_ms", took).Msg("wecom call ok")
			return nil
		}
		apiErr := toAPIError(api, err)
		tc.End(apiErr.Overloaded())
		c.metrics.WeComCall(api, apiErr.Code, took)
		if ts != nil && attempt == 1 && isTokenError(apiErr.Code) {
			c.log.Info().Str("api", api).Int64("errcode", apiErr.Code).Msg("access_token refused; fetching a new one and retrying once")
			ts.invalidate(token)
			continue
		}
		c.logFailure(apiErr, took)
		if deliveringAPIs[api] && apiErr.answerLost() {
			return fmt.Errorf("%w: %w", bot.ErrOutcomeUnknown, apiErr)
		}
		return apiErr
	}
}

// deliveringAPIs send something to someone or create something: a lost
// answer there means the call may have taken effect.
var deliveringAPIs = map[string]bool{
	apiSendWelcome: true, apiMarkTag: true, apiAddMsgTemplate: true, apiGroupWelcomeAdd: true, apiGroupWelcomeEdit: true,
	apiAddContactWay: true, apiMessageSend: true, apiKfSendMsg: true, apiWebhookSend: true,
}

// kindAPIs are the APIs each action kind calls, for HoldUntil.
var kindAPIs = map[bot.ActionKind][]string{
	bot.ActionWelcome:        {apiSendWelcome},
	bot.ActionMarkTag:        {apiMarkTag, apiGetCorpTagList, apiAddCorpTag},
	bot.ActionMassSend:       {apiAddMsgTemplate},
	bot.ActionGroupWelcome:   {apiGroupWelcomeAdd, apiGroupWelcomeEdit},
	bot.ActionStaffMessage:   {apiMessageSend},
	bot.ActionKfMessage:      {apiKfSendMsg},
	bot.ActionRobot:          {apiWebhookSend},
	bot.ActionContactWay:     {apiAddContactWay},
	bot.ActionMassResult:     {apiRemindGroupMsgSend, apiGroupMsgTask, apiGroupMsgSendResult, apiCancelGroupMsgSend},
	bot.ActionContactProfile: {apiGetExternalContact},
	bot.ActionGroupDetail:    {apiGroupChatGet},
}

// HoldUntil implements pipeline.Holder: until when the throttle holds an API
// the action needs (or gettoken, which every API needs first); zero when
// it may go now.
func (c *Client) HoldUntil(a *bot.Action) time.Time {
	until := c.throttle.Hold(apiGetToken)
	for _, api := range kindAPIs[a.Kind] {
		if t := c.throttle.Hold(api); t.After(until) {
			until = t
		}
	}
	return until
}

// SendLimit implements pipeline.Limiter: the API an action's send calls
// first, and how many calls to it may be out at once now (the throttle's
// adaptive concurrency); the outbox sends at most that many such actions at
// a time. Kinds without a known API get the default.
func (c *Client) SendLimit(a *bot.Action) (api string, n int) {
	apis := kindAPIs[a.Kind]
	if len(apis) == 0 {
		return "", 0
	}
	return apis[0], c.throttle.Limit(apis[0])
}

// Held lists the APIs held back now and until when (status, health).
func (c *Client) Held() map[string]time.Time { return c.throttle.Held() }

func (c *Client) logFailure(e *APIError, took time.Duration) {
	ev := c.log.Error()
	if e.Retryable() {
		ev = c.log.Warn()
	}
	if e.HTTPStatus != 0 {
		ev = ev.Int("http_status", e.HTTPStatus)
	}
	if h := e.Hint(); h != "" {
		ev = ev.Str("hint", h)
	}
	ev.Str("api", e.API).Int64("errcode", e.Code).Str("errmsg", e.Msg).Bool("retryable", e.Retryable()).
		Dur("took_ms", took).Msg("wecom call failed")
}

// ---- token handling ----

// tokenSource caches one secret's access_token, refreshes it early and lets
// concurrent callers share a single fetch.
type tokenSource struct {
	c      *Client
	secret string

	mu        sync.Mutex
	token     string
	refreshAt time.Time // fetch a new one from here on
	expiresAt time.Time // WeCom stops accepting it here
	flight    *tokenFlight
}

type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

func newTokenSource(c *Client, secret string) *tokenSource {
	return &tokenSource{c: c, secret: secret}
}

// get returns a valid token, fetching one (shared by concurrent callers) when
// there is none or it is close to expiry.
func (ts *tokenSource) get(ctx context.Context) (string, error) {
	ts.mu.Lock()
	if ts.token != "" && ts.c.now().Before(ts.refreshAt) {
		token := ts.token
		ts.mu.Unlock()
		return token, nil
	}
	f := ts.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		ts.flight = f
		// The fetch outlives a caller that gives up, so the others still get it.
		go ts.fetch(context.WithoutCancel(ctx), f)
	}
	ts.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("wecom %s: %w", apiGetToken, ctx.Err())
	}
}

func (ts *tokenSource) fetch(ctx context.Context, f *tokenFlight) {
	token, expiresIn, err := ts.c.fetchToken(ctx, ts.secret)
	now := ts.c.now()
	ts.mu.Lock()
	switch {
	case err == nil:
		if expiresIn <= 0 {
			expiresIn = 2 * time.Hour
		}
		ts.token = token
		ts.expiresAt = now.Add(expiresIn)
		ts.refreshAt = ts.expiresAt.Add(-min(5*time.Minute, expiresIn/4))
	case ts.token != "" && now.Before(ts.expiresAt):
		// An early refresh failed: the old token is still good for a while.
		ts.c.log.Warn().Err(err).Msg("access_token refresh failed; still using the current one")
		token, err = ts.token, nil
	}
	ts.flight = nil
	ts.mu.Unlock()
	f.token, f.err = token, err
	close(f.done)
}

// invalidate forgets the cached token if it is old (or any token if old is
// ""), so a token that was already replaced isn't thrown away again by
// callers that saw the old one fail.
func (ts *tokenSource) invalidate(old string) {
	ts.mu.Lock()
	if old == "" || ts.token == old {
		ts.token = ""
	}
	ts.mu.Unlock()
}

// fetchToken calls gettoken with our own HTTP request.
func (c *Client) fetchToken(ctx context.Context, secret string) (string, time.Duration, error) {
	q := url.Values{"corpid": {c.cfg.CorpID}, "corpsecret": {secret}}
	tc, until, err := c.throttle.Begin(ctx, apiGetToken)
	if err != nil {
		return "", 0, fmt.Errorf("wecom %s: %w", apiGetToken, err)
	}
	if tc == nil {
		return "", 0, &HeldError{API: apiGetToken, Until: until}
	}
	start := time.Now()
	token, expiresIn, err := c.getToken(ctx, c.base+"/cgi-bin/gettoken?"+q.Encode())
	took := time.Since(start)
	if err != nil {
		apiErr := toAPIError(apiGetToken, err)
		tc.End(apiErr.Overloaded())
		c.metrics.WeComCall(apiGetToken, apiErr.Code, took)
		c.logFailure(apiErr, took)
		return "", 0, apiErr
	}
	tc.End(false)
	c.metrics.WeComCall(apiGetToken, 0, took)
	c.log.Debug().Dur("took_ms", took).Int64("expires_in", int64(expiresIn/time.Second)).Msg("access_token fetched")
	return token, expiresIn, nil
}

func (c *Client) getToken(ctx context.Context, tokenURL string) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tokenURL, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var body struct {
		ErrCode     int64  `json:"errcode"`
		ErrMsg      string `json:"errmsg"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", 0, &APIError{API: apiGetToken, Code: CodeUnknown, Msg: "unreadable answer: " + redactText(err.Error())}
	}
	if body.ErrCode != 0 {
		return "", 0, &APIError{API: apiGetToken, Code: body.ErrCode, Msg: redactText(body.ErrMsg)}
	}
	if body.AccessToken == "" {
		return "", 0, &APIError{API: apiGetToken, Code: CodeUnknown, Msg: "answer without access_token"}
	}
	return body.AccessToken, time.Duration(body.ExpiresIn) * time.Second, nil
}

// libraryHandle gives the library our token, tagged with the Client's id
// (credential.AccessTokenHandle).
type libraryHandle struct {
	ts *tokenSource
	id uint64
}

func (h libraryHandle) GetAccessToken() (string, error) {
	return h.GetAccessTokenContext(context.Background())
}

func (h libraryHandle) GetAccessTokenContext(ctx context.Context) (string, error) {
	token, err := h.ts.get(ctx)
	if err != nil {
		return "", err
	}
	return tagCredential(h.id, token), nil
}

// tokenCache is the kf client's cache: token keys come from our token
// source, everything else from memory.
type tokenCache struct {
	cache.Cache
	ts *tokenSource
	id uint64
}

func isTokenKey(key string) bool { return strings.Contains(key, "_access_token_") }

func (t tokenCache) Get(key string) any {
	if isTokenKey(key) {
		token, err := t.ts.get(context.Background())
		if err != nil {
			return nil
		}
		return tagCredential(t.id, token)
	}
	return t.Cache.Get(key)
}

func (t tokenCache) Set(key string, val any, timeout time.Duration) error {
	if isTokenKey(key) {
		return nil
	}
	return t.Cache.Set(key, val, timeout)
}

func (t tokenCache) IsExist(key string) bool {
	if isTokenKey(key) {
		return t.Get(key) != nil
	}
	return t.Cache.IsExist(key)
}

// ---- process-wide library hooks, routed per Client ----

// route is where one Client's library requests go.
type route struct {
	base string
	rt   http.RoundTripper
}

var (
	hooksOnce sync.Once
	clientIDs atomic.Uint64
	routes    sync.Map // Client id → *route
)

// The library puts the credentials we give it into the query string
// (access_token=…, key=…). Ours carry credentialTag<id>~ in front; the URI
// hook moves the id to the clientParam parameter, which the transport reads
// and removes before the request leaves.
const (
	credentialTag = "wecombot~"
	clientParam   = "wecombot_client"
)

func tagCredential(id uint64, credential string) string {
	return credentialTag + strconv.FormatUint(id, 10) + "~" + credential
}

// installLibraryHooks points the library's hard-coded host and shared HTTP
// client at the per-Client routes. It runs once.
func installLibraryHooks() {
	hooksOnce.Do(func() {
		util.SetURIModifier(rewriteURI)
		util.DefaultHTTPClient = &http.Client{Transport: routeTransport{}}
	})
}

// rewriteURI strips the Client tag from the credential in uri, points uri
// at that Client's base and records the Client in clientParam.
func rewriteURI(uri string) string {
	for _, param := range []string{"access_token=", "key="} {
		i := strings.Index(uri, param+credentialTag)
		if i < 0 || (i > 0 && uri[i-1] != '?' && uri[i-1] != '&') {
			continue
		}
		tagStart := i + len(param)
		idStart := tagStart + len(credentialTag)
		idEnd := strings.IndexByte(uri[idStart:], '~')
		if idEnd < 0 {
			return uri
		}
		id := uri[idStart : idStart+idEnd]
		uri = uri[:tagStart] + uri[idStart+idEnd+1:]
		if v, ok := routes.Load(parseID(id)); ok {
			if r := v.(*route); r.base != DefaultAPIBase && strings.HasPrefix(uri, DefaultAPIBase+"/") {
				uri = r.base + strings.TrimPrefix(uri, DefaultAPIBase)
			}
		}
		return uri + "&" + clientParam + "=" + id
	}
	return uri
}

func parseID(s string) uint64 {
	id, _ := strconv.ParseUint(s, 10, 64)
	return id
}

// routeTransport sends a library request through the transport of the
// Client that made it, without our clientParam.
type routeTransport struct{}

func (routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// rewriteURI appended the parameter last; cutting it off leaves the
	// library's query exactly as it was written.
	raw, id, found := strings.Cut(req.URL.RawQuery, "&"+clientParam+"=")
	v, ok := routes.Load(parseID(id))
	if !found || !ok {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("wecom: library request to %s came from no live wecomapi.Client (its credential carried no client tag)", req.URL.Path)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.RawQuery = raw
	out.URL = &u
	return v.(*route).rt.RoundTrip(out)
}

// maxResponseBytes bounds what we read from WeCom; its JSON answers are small.
const maxResponseBytes = 8 << 20

// transport applies the timeout and proxy, turns non-200 statuses into
// *HTTPStatusError (the library would only format them into a string holding
// the token), and makes sure a nonzero errcode appears in errmsg, because
// some library calls (kf) return only errmsg.
type transport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func newTransport(proxy *url.URL, timeout time.Duration) *transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// The outbox sends with several workers at once (and the AI sender, the
	// kf puller): keep that many connections to WeCom open. Go's default of
	// 2 idle connections per host closes the rest after each call, so every
	// call beyond two paid a new TCP+TLS handshake to qyapi.weixin.qq.com.
	t.MaxIdleConnsPerHost = 64
	if proxy != nil {
		t.Proxy = http.ProxyURL(proxy)
	}
	return &transport{next: t, timeout: timeout}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	defer cancel()
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPStatusError{Status: resp.StatusCode, Path: req.URL.Path}
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		body = markErrcode(body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// markErrcode appends " [errcode N]" to errmsg when the answer has a nonzero
// errcode that its errmsg doesn't repeat.
func markErrcode(body []byte) []byte {
	var probe struct {
		ErrCode int64  `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(body, &probe) != nil || probe.ErrCode == 0 || codeInMessage.MatchString(probe.ErrMsg) {
		return body
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return body
	}
	msg, err := json.Marshal(fmt.Sprintf("%s [errcode %d]", probe.ErrMsg, probe.ErrCode))
	if err != nil {
		return body
	}
	fields["errmsg"] = msg
	out, err := json.Marshal(fields)
	if err != nil {
		return body
	}
	return out
}
