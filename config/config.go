// Package config loads wecombot's configuration: one optional YAML file plus
// environment variables, which override the file. Secrets come only from the
// environment or from files named by *_file keys / *_FILE variables, never
// from YAML values, so a config file can live in git.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wecombot/wecombot/scenarios"
)

// DefaultRetention is how long processed events and delivered actions are
// kept by default.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultAPIBase is WeCom's API host.
const DefaultAPIBase = "https://qyapi.weixin.qq.com"

// Config is the resolved configuration. Secret fields are never printed by
// String() or logged.
type Config struct {
	// Listen is the HTTP listen address (WECOMBOT_LISTEN, default ":8080").
	Listen string
	// DataDir holds the bbolt file and sandbox keys (WECOMBOT_DATA_DIR, default "./data").
	DataDir string
	// DatabaseURL selects PostgreSQL instead of the bbolt file
	// (WECOMBOT_DATABASE_URL or WECOMBOT_DATABASE_URL_FILE, YAML
	// database_url_file; postgres://user:pass@host:5432/db). It may hold a
	// password, so it is a secret: never logged, never in YAML itself.
	DatabaseURL string
	// File is the config file that was read, if any (WECOMBOT_CONFIG).
	File string
	// Scenarios is a scenario file or directory; empty means the embedded demo (WECOMBOT_SCENARIOS).
	Scenarios string
	// PublicURL is the externally reachable base URL, used in signed H5 links (WECOMBOT_PUBLIC_URL).
	PublicURL string

	WeCom  WeCom
	OpenAI OpenAI

	// AdminToken protects /api/v1 (WECOMBOT_ADMIN_TOKEN); empty means admin only on loopback.
	AdminToken string
	// LinkSecret signs members' personal H5 links (check-in, coupon claim,
	// invite) (WECOMBOT_LINK_SECRET); empty means one is generated and kept
	// in the data directory.
	LinkSecret string
	// ShopSecret authenticates the shop's order webhook, POST /hooks/orders
	// (WECOMBOT_SHOP_SECRET); empty turns the webhook off.
	ShopSecret string
	// CallbackMaxAge rejects POST callbacks whose timestamp is older/newer than this;
	// 0 turns the check off (WECOMBOT_CALLBACK_MAX_AGE, default 10m).
	CallbackMaxAge time.Duration
	// HealthMaxEventAge makes /healthz answer 503 while the oldest
	// unprocessed event is older than this (WECOMBOT_HEALTH_MAX_EVENT_AGE,
	// default 5m; 0 turns the check off).
	HealthMaxEventAge time.Duration
	// DedupeTTL is how long callback dedupe keys are kept (default 72h).
	DedupeTTL time.Duration
	// Retention is how long processed events and delivered actions are
	// kept before the hourly sweep deletes them (WECOMBOT_RETENTION, YAML
	// retention; default DefaultRetention, 30 days); 0 keeps everything.
	Retention time.Duration
	// SyncAt is the daily time (HH:MM, brand zone) of the sync of customers
	// and groups from WeCom, or "off" (WECOMBOT_SYNC_AT, YAML sync.at, default 03:30).
	SyncAt string
	// SyncRate is how many WeCom calls per second a sync makes
	// (WECOMBOT_SYNC_RATE, YAML sync.rate, default 20).
	SyncRate float64
	// Workers and QueueSize size the event worker pool.
	Workers   int
	QueueSize int
	// LogLevel is debug, info, warn or error (WECOMBOT_LOG_LEVEL); LogFormat json or console (WECOMBOT_LOG_FORMAT, default: console on a TTY).
	LogLevel  string
	LogFormat string
	// DebugListen, when set, serves Go's profiling endpoints
	// (/debug/pprof/...) on this loopback address, apart from the main
	// listener (WECOMBOT_DEBUG_LISTEN, e.g. 127.0.0.1:6060; off by default).
	// Loopback only: the profiles are unauthenticated.
	DebugListen string
	// MemoryLimit is the Go runtime's soft memory limit serve sets, in
	// bytes (WECOMBOT_MEMORY_LIMIT, e.g. 256MiB; "off" or 0: none, the
	// default). GOMEMLIMIT, when set, wins (the runtime reads it).
	MemoryLimit int64
	// MapBudget bounds the bbolt file's pages mapped into the process
	// (WECOMBOT_MAP_BUDGET, default 32MiB as storage/bolt's; "off": never trimmed). The
	// pages stay in the page cache; see storage/bolt Options.MapBudget.
	MapBudget int64
}

// DefaultMapBudget is MapBudget's default.
const DefaultMapBudget = 32 << 20

// DefaultMemoryLimit is serve's soft memory limit unless
// WECOMBOT_MEMORY_LIMIT or GOMEMLIMIT says otherwise: none (0). A limit
// makes the collector work harder as the heap nears it; in 10-minute runs
// at 1M members an 80MiB default coincided with the outbox's send rate
// collapsing (docs/performance.md), so it is the operator's choice.
const DefaultMemoryLimit = 0

// WeCom holds the self-built app's credentials and the API endpoint.
type WeCom struct {
	CorpID  string // WECOM_CORP_ID (企业ID)
	AgentID string // WECOM_AGENT_ID (应用 AgentId)
	Secret  string // WECOM_SECRET (应用 Secret); empty → sandbox mode
	// KfSecret is the 微信客服 secret when it differs from Secret (WECOM_KF_SECRET).
	KfSecret string
	Token    string // WECOM_TOKEN (回调 Token)
	AESKey   string // WECOM_AES_KEY (回调 EncodingAESKey, 43 chars)
	// APIBase receives every outbound WeCom call, gettoken included (WECOM_API_BASE).
	APIBase string
	// EgressProxy is an HTTP(S) proxy for WeCom calls whose IP is in the trusted-IP list (WECOMBOT_EGRESS_PROXY).
	EgressProxy string
	// Robots maps a robot name used in scenarios to its webhook key (webhook keys only from robot_key_files).
	Robots map[string]string
	// AIBotToken and AIBotAESKey are the AI bot's (智能机器人, API mode) callback
	// Token and EncodingAESKey (WECOM_AIBOT_TOKEN, WECOM_AIBOT_AES_KEY); unset → /wecom/aibot answers 503.
	AIBotToken  string
	AIBotAESKey string
}

// OpenAI configures the reply model; without an API key the offline model answers.
type OpenAI struct {
	APIKey  string // OPENAI_API_KEY
	BaseURL string // OPENAI_BASE_URL
	Model   string // OPENAI_MODEL
}

// Sandbox reports whether outbound calls are recorded instead of sent.
func (c *Config) Sandbox() bool { return c.WeCom.Secret == "" }

// Database describes the store without secrets: "bolt:PATH" or
// "postgres://HOST/DB" (no user or password).
func (c *Config) Database() string {
	if c.DatabaseURL == "" {
		return "bolt:" + c.DBPath()
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return "postgres"
	}
	return "postgres://" + u.Host + u.Path
}

// DBPath is the bbolt file.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "wecombot.db") }

// fileConfig is the YAML shape. Secrets appear only as *_file paths.
type fileConfig struct {
	Listen          string `yaml:"listen"`
	DataDir         string `yaml:"data_dir"`
	Scenarios       string `yaml:"scenarios"`
	PublicURL       string `yaml:"public_url"`
	AdminTokenFile  string `yaml:"admin_token_file"`
	LinkSecretFile  string `yaml:"link_secret_file"`
	ShopSecretFile  string `yaml:"shop_secret_file"`
	DatabaseURLFile string `yaml:"database_url_file"`
	CallbackMaxAge  string `yaml:"callback_max_age"`
	HealthMaxAge    string `yaml:"health_max_event_age"`
	DedupeTTL       string `yaml:"dedupe_ttl"`
	Retention       string `yaml:"retention"`
	Workers         int    `yaml:"workers"`
	QueueSize       int    `yaml:"queue_size"`
	Sync            struct {
		At   string  `yaml:"at"`
		Rate float64 `yaml:"rate"`
	} `yaml:"sync"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	WeCom struct {
		CorpID       string            `yaml:"corp_id"`
		AgentID      string            `yaml:"agent_id"`
		SecretFile   string            `yaml:"secret_file"`
		KfSecretFile string            `yaml:"kf_secret_file"`
		TokenFile    string            `yaml:"token_file"`
		AESKeyFile   string            `yaml:"aes_key_file"`
		APIBase      string            `yaml:"api_base"`
		EgressProxy  string            `yaml:"egress_proxy"`
		RobotFiles   map[string]string `yaml:"robot_key_files"`
		AIBotToken   string            `yaml:"aibot_token_file"`
		AIBotAESKey  string            `yaml:"aibot_aes_key_file"`
	} `yaml:"wecom"`
	OpenAI struct {
		APIKeyFile string `yaml:"api_key_file"`
		BaseURL    string `yaml:"base_url"`
		Model      string `yaml:"model"`
	} `yaml:"openai"`
}

// Error is a configuration problem; File and Line are set when it is in the YAML.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return e.Msg
}

// Errors collects every problem found, so an operator fixes them in one go.
type Errors []error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

var (
	yamlLine = regexp.MustCompile(`line (\d+): (.*)`)
	inType   = regexp.MustCompile(` in type .*$`)
)

// Load reads the config file named by WECOMBOT_CONFIG (if any), then applies
// the environment. getenv is os.Getenv in production and a map in tests.
func Load(getenv func(string) string) (*Config, error) {
	c := &Config{
		Listen:         ":8080",
		MemoryLimit:    DefaultMemoryLimit,
		MapBudget:      DefaultMapBudget,
		DataDir:        "./data",
		CallbackMaxAge: 10 * time.Minute,
		DedupeTTL:      72 * time.Hour,
		Retention:      DefaultRetention,

		HealthMaxEventAge: 5 * time.Minute,
		Workers:           8,
		QueueSize:         1024,
		LogLevel:          "info",
		SyncAt:            "03:30",
		SyncRate:          20,
	}
	c.WeCom.APIBase = DefaultAPIBase
	var errs Errors

	if path := getenv("WECOMBOT_CONFIG"); path != "" {
		c.File = path
		if err := c.applyFile(path); err != nil {
			var es Errors
			if errors.As(err, &es) {
				errs = append(errs, es...)
			} else {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, c.applyEnv(getenv)...)
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func (c *Config) applyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{File: path, Msg: fmt.Sprintf("cannot read config file: %v", err)}
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return yamlErrors(path, data, err)
	}
	var errs Errors
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Listen, fc.Listen)
	set(&c.DataDir, fc.DataDir)
	set(&c.Scenarios, resolveRel(path, fc.Scenarios))
	set(&c.PublicURL, fc.PublicURL)
	set(&c.LogLevel, fc.Log.Level)
	set(&c.LogFormat, fc.Log.Format)
	set(&c.WeCom.CorpID, fc.WeCom.CorpID)
	set(&c.WeCom.AgentID, fc.WeCom.AgentID)
	set(&c.WeCom.APIBase, fc.WeCom.APIBase)
	set(&c.WeCom.EgressProxy, fc.WeCom.EgressProxy)
	set(&c.OpenAI.BaseURL, fc.OpenAI.BaseURL)
	set(&c.OpenAI.Model, fc.OpenAI.Model)
	if fc.Workers != 0 {
		c.Workers = fc.Workers
	}
	if fc.QueueSize != 0 {
		c.QueueSize = fc.QueueSize
	}
	set(&c.SyncAt, fc.Sync.At)
	if fc.Sync.Rate != 0 {
		c.SyncRate = fc.Sync.Rate
	}
	for _, d := range []struct {
		key string
		v   string
		dst *time.Duration
	}{{"callback_max_age", fc.CallbackMaxAge, &c.CallbackMaxAge}, {"dedupe_ttl", fc.DedupeTTL, &c.DedupeTTL}, {"retention", fc.Retention, &c.Retention},
		{"health_max_event_age", fc.HealthMaxAge, &c.HealthMaxEventAge}} {
		if d.v == "" {
			continue
		}
		v, err := parseDuration(d.v)
		if err != nil {
			errs = append(errs, &Error{File: path, Line: lineOf(data, d.key), Msg: fmt.Sprintf("%s: %v", d.key, err)})
			continue
		}
		*d.dst = v
	}
	for _, s := range []struct {
		key, file string
		dst       *string
	}{
		{"admin_token_file", fc.AdminTokenFile, &c.AdminToken},
		{"link_secret_file", fc.LinkSecretFile, &c.LinkSecret},
		{"shop_secret_file", fc.ShopSecretFile, &c.ShopSecret},
		{"database_url_file", fc.DatabaseURLFile, &c.DatabaseURL},
		{"secret_file", fc.WeCom.SecretFile, &c.WeCom.Secret},
		{"kf_secret_file", fc.WeCom.KfSecretFile, &c.WeCom.KfSecret},
		{"token_file", fc.WeCom.TokenFile, &c.WeCom.Token},
		{"aes_key_file", fc.WeCom.AESKeyFile, &c.WeCom.AESKey},
		{"api_key_file", fc.OpenAI.APIKeyFile, &c.OpenAI.APIKey},
		{"aibot_token_file", fc.WeCom.AIBotToken, &c.WeCom.AIBotToken},
		{"aibot_aes_key_file", fc.WeCom.AIBotAESKey, &c.WeCom.AIBotAESKey},
	} {
		if s.file == "" {
			continue
		}
		v, err := readSecret(resolveRel(path, s.file))
		if err != nil {
			errs = append(errs, &Error{File: path, Line: lineOf(data, s.key), Msg: fmt.Sprintf("%s: %v", s.key, err)})
			continue
		}
		*s.dst = v
	}
	for name, file := range fc.WeCom.RobotFiles {
		v, err := readSecret(resolveRel(path, file))
		if err != nil {
			errs = append(errs, &Error{File: path, Line: lineOf(data, name), Msg: fmt.Sprintf("robot_key_files.%s: %v", name, err)})
			continue
		}
		if c.WeCom.Robots == nil {
			c.WeCom.Robots = map[string]string{}
		}
		c.WeCom.Robots[name] = v
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// yamlErrors turns yaml.v3's "line N: msg" errors into file:line errors; a
// syntax error is located at its real line (scenarios.LocateYAMLError).
func yamlErrors(path string, data []byte, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	} else if line, msg := scenarios.LocateYAMLError(data, err); line > 0 {
		return Errors{&Error{File: path, Line: line, Msg: "YAML syntax: " + msg}}
	}
	var errs Errors
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			msg := inType.ReplaceAllString(sm[2], "")
			msg = strings.Replace(msg, "not found", "is not a known setting (secrets go in *_file paths or environment variables)", 1)
			errs = append(errs, &Error{File: path, Line: line, Msg: msg})
			continue
		}
		errs = append(errs, &Error{File: path, Msg: m})
	}
	return errs
}

// lineOf finds the first line that sets key, for errors found after decoding.
func lineOf(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), key+":") {
			return i + 1
		}
	}
	return 0
}

func resolveRel(configPath, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configPath), p)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseDuration reads a Go duration (30s, 10m, 72h) or whole days (30d).
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		if n, aerr := strconv.Atoi(days); aerr == nil {
			d, err = time.Duration(n)*24*time.Hour, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 10m, 72h, 30d, or 0 to turn it off)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q must not be negative", s)
	}
	return d, nil
}

// applyEnv applies the environment contract; it overrides the file.
func (c *Config) applyEnv(getenv func(string) string) Errors {
	var errs Errors
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	// secret reads NAME, or the file named by NAME_FILE.
	secret := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = strings.TrimSpace(v)
			return
		}
		if f := getenv(name + "_FILE"); f != "" {
			v, err := readSecret(f)
			if err != nil {
				errs = append(errs, &Error{Msg: fmt.Sprintf("%s_FILE: %v", name, err)})
				return
			}
			*dst = v
		}
	}
	str("WECOMBOT_LISTEN", &c.Listen)
	str("WECOMBOT_DATA_DIR", &c.DataDir)
	str("WECOMBOT_SCENARIOS", &c.Scenarios)
	str("WECOMBOT_PUBLIC_URL", &c.PublicURL)
	str("WECOMBOT_LOG_LEVEL", &c.LogLevel)
	str("WECOMBOT_LOG_FORMAT", &c.LogFormat)
	str("WECOMBOT_DEBUG_LISTEN", &c.DebugListen)
	str("WECOM_CORP_ID", &c.WeCom.CorpID)
	str("WECOM_AGENT_ID", &c.WeCom.AgentID)
	str("WECOM_API_BASE", &c.WeCom.APIBase)
	str("WECOMBOT_EGRESS_PROXY", &c.WeCom.EgressProxy)
	str("OPENAI_BASE_URL", &c.OpenAI.BaseURL)
	str("OPENAI_MODEL", &c.OpenAI.Model)
	secret("WECOM_SECRET", &c.WeCom.Secret)
	secret("WECOM_KF_SECRET", &c.WeCom.KfSecret)
	secret("WECOM_TOKEN", &c.WeCom.Token)
	secret("WECOM_AES_KEY", &c.WeCom.AESKey)
	secret("WECOMBOT_ADMIN_TOKEN", &c.AdminToken)
	secret("WECOMBOT_LINK_SECRET", &c.LinkSecret)
	secret("WECOMBOT_SHOP_SECRET", &c.ShopSecret)
	secret("WECOMBOT_DATABASE_URL", &c.DatabaseURL)
	secret("OPENAI_API_KEY", &c.OpenAI.APIKey)
	secret("WECOM_AIBOT_TOKEN", &c.WeCom.AIBotToken)
	secret("WECOM_AIBOT_AES_KEY", &c.WeCom.AIBotAESKey)
	if v := getenv("WECOMBOT_MEMORY_LIMIT"); v != "" {
		n, err := parseMemoryLimit(v)
		if err != nil {
			errs = append(errs, &Error{Msg: "WECOMBOT_MEMORY_LIMIT: " + err.Error()})
		} else {
			c.MemoryLimit = n
		}
	}
	if v := getenv("WECOMBOT_MAP_BUDGET"); v != "" {
		if v == "off" {
			c.MapBudget = -1
		} else if n, err := parseSize(v, 1<<20); err != nil {
			errs = append(errs, &Error{Msg: "WECOMBOT_MAP_BUDGET: " + err.Error()})
		} else {
			c.MapBudget = n
		}
	}
	if v := getenv("WECOMBOT_SYNC_AT"); v != "" {
		c.SyncAt = v
	}
	if v := getenv("WECOMBOT_SYNC_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, &Error{Msg: fmt.Sprintf("WECOMBOT_SYNC_RATE: %q is not a number of calls per second", v)})
		} else {
			c.SyncRate = f
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"WECOMBOT_CALLBACK_MAX_AGE", &c.CallbackMaxAge}, {"WECOMBOT_RETENTION", &c.Retention}, {"WECOMBOT_HEALTH_MAX_EVENT_AGE", &c.HealthMaxEventAge}} {
		if v := getenv(d.name); v != "" {
			parsed, err := parseDuration(v)
			if err != nil {
				errs = append(errs, &Error{Msg: d.name + ": " + err.Error()})
				continue
			}
			*d.dst = parsed
		}
	}
	for _, kv := range []struct {
		name string
		dst  *int
	}{{"WECOMBOT_WORKERS", &c.Workers}, {"WECOMBOT_QUEUE_SIZE", &c.QueueSize}} {
		if v := getenv(kv.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, &Error{Msg: fmt.Sprintf("%s: %q is not a positive whole number", kv.name, v)})
				continue
			}
			*kv.dst = n
		}
	}
	return errs
}

// parseMemoryLimit reads a memory size the way GOMEMLIMIT writes it: a
// whole number of bytes with an optional B, KiB, MiB, GiB or TiB suffix,
// at least 16MiB ("off" or 0: no limit, returned as 0).
func parseMemoryLimit(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "off" || v == "0" {
		return 0, nil
	}
	return parseSize(v, 16<<20)
}

// parseSize reads a whole number of bytes with an optional B, KiB, MiB,
// GiB or TiB suffix, at least least bytes.
// (The B suffix is tried last: KiB also ends in B.)
func parseSize(v string, least int64) (int64, error) {
	num, mult := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 128MiB or 1GiB (or off)", v)
	}
	if n*mult < least {
		return 0, fmt.Errorf("%q is below %dMiB", v, least>>20)
	}
	return n * mult, nil
}

// loopbackAddr reports whether addr is host:port with a loopback host
// (127.0.0.0/8, ::1 or localhost).
func loopbackAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validate() Errors {
	var errs Errors
	bad := func(format string, args ...any) {
		errs = append(errs, &Error{File: c.File, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Listen == "" {
		bad("listen address is empty (WECOMBOT_LISTEN, e.g. :8080)")
	}
	if c.DataDir == "" {
		bad("data directory is empty (WECOMBOT_DATA_DIR, e.g. ./data)")
	}
	if c.DebugListen != "" && !loopbackAddr(c.DebugListen) {
		bad("WECOMBOT_DEBUG_LISTEN %q: use a loopback host:port such as 127.0.0.1:6060 (the profiling endpoints are unauthenticated)", c.DebugListen)
	}
	if u, err := url.Parse(c.WeCom.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("WECOM_API_BASE %q is not an http(s) URL", c.WeCom.APIBase)
	}
	if c.WeCom.EgressProxy != "" {
		if u, err := url.Parse(c.WeCom.EgressProxy); err != nil || u.Host == "" {
			bad("WECOMBOT_EGRESS_PROXY %q is not a proxy URL (e.g. http://10.0.0.2:3128)", c.WeCom.EgressProxy)
		}
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			bad("WECOMBOT_DATABASE_URL is not a postgres://user:password@host:5432/database URL (value not shown: it may hold a password)")
		}
	}
	if c.WeCom.AESKey != "" && len(c.WeCom.AESKey) != 43 {
		bad("WECOM_AES_KEY must be the 43-character EncodingAESKey from the WeCom admin console (got %d characters)", len(c.WeCom.AESKey))
	}
	if (c.WeCom.AIBotToken == "") != (c.WeCom.AIBotAESKey == "") {
		bad("WECOM_AIBOT_TOKEN and WECOM_AIBOT_AES_KEY (智能机器人 Token / EncodingAESKey) go together: set both or neither")
	} else if c.WeCom.AIBotAESKey != "" && len(c.WeCom.AIBotAESKey) != 43 {
		bad("WECOM_AIBOT_AES_KEY must be the AI bot's 43-character EncodingAESKey (got %d characters)", len(c.WeCom.AIBotAESKey))
	}
	if !c.Sandbox() {
		if c.WeCom.CorpID == "" {
			bad("WECOM_CORP_ID (企业ID) is required when WECOM_SECRET is set")
		}
		if c.WeCom.Token == "" || c.WeCom.AESKey == "" {
			bad("WECOM_TOKEN and WECOM_AES_KEY (接收消息 Token / EncodingAESKey) are required when WECOM_SECRET is set")
		}
	}
	if c.Workers <= 0 || c.QueueSize <= 0 {
		bad("workers and queue_size must be positive")
	}
	if _, _, err := c.SyncClock(); err != nil {
		bad("%v", err)
	}
	if c.SyncRate <= 0 || c.SyncRate > 100 {
		bad("sync rate (WECOMBOT_SYNC_RATE, sync.rate) %v: use 0.1-100 WeCom calls per second", c.SyncRate)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log level %q: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "json", "console":
	default:
		bad("log format %q: use json or console", c.LogFormat)
	}
	return errs
}

// Summary is a one-line, secret-free description for the start-up log.
func (c *Config) Summary() map[string]any {
	return map[string]any{
		"listen":               c.Listen,
		"data_dir":             c.DataDir,
		"database":             c.Database(),
		"config":               c.File,
		"scenarios":            c.Scenarios,
		"sandbox":              c.Sandbox(),
		"corp_id":              c.WeCom.CorpID,
		"agent_id":             c.WeCom.AgentID,
		"api_base":             c.WeCom.APIBase,
		"egress_proxy":         c.WeCom.EgressProxy != "",
		"admin_token":          c.AdminToken != "",
		"shop_webhook":         c.ShopSecret != "",
		"callback_max_age":     c.CallbackMaxAge.String(),
		"health_max_event_age": c.HealthMaxEventAge.String(),
		"model":                c.OpenAI.Model,
		"model_online":         c.OpenAI.APIKey != "",
		"aibot":                c.WeCom.AIBotToken != "",
	}
}

// Secrets returns every secret value, for log redaction.
func (c *Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.WeCom.Secret, c.WeCom.KfSecret, c.WeCom.Token, c.WeCom.AESKey, c.AdminToken, c.LinkSecret, c.ShopSecret, c.OpenAI.APIKey, c.WeCom.AIBotToken, c.WeCom.AIBotAESKey} {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, s := range c.WeCom.Robots {
		if s != "" {
			out = append(out, s)
		}
	}
	if c.DatabaseURL != "" {
		out = append(out, c.DatabaseURL)
		if u, err := url.Parse(c.DatabaseURL); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// SyncClock parses SyncAt: hour and minute, or -1, -1 for "off".
func (c *Config) SyncClock() (hour, minute int, err error) {
	if c.SyncAt == "off" {
		return -1, -1, nil
	}
	t, perr := time.Parse("15:04", c.SyncAt)
	if perr != nil {
		return 0, 0, fmt.Errorf("sync time (WECOMBOT_SYNC_AT, sync.at) %q: use HH:MM like 03:30, or off", c.SyncAt)
	}
	return t.Hour(), t.Minute(), nil
}
