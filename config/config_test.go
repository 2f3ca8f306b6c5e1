package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsAreSandbox(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sandbox() || c.Listen != ":8080" || c.DataDir != "./data" || c.WeCom.APIBase != DefaultAPIBase || c.CallbackMaxAge != 10*time.Minute {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.DBPath() != filepath.Join("data", "wecombot.db") {
		t.Fatalf("db path %q", c.DBPath())
	}
}

func TestEnvContract(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("s3cr3t-from-file\n"), 0o600)
	key := strings.Repeat("k", 43)
	c, err := Load(env(map[string]string{
		"WECOMBOT_LISTEN":           "127.0.0.1:9999",
		"WECOMBOT_DATA_DIR":         dir,
		"WECOM_CORP_ID":             "ww1",
		"WECOM_AGENT_ID":            "1000002",
		"WECOM_SECRET_FILE":         secretFile,
		"WECOM_TOKEN":               "tok",
		"WECOM_AES_KEY":             key,
		"WECOM_API_BASE":            "http://127.0.0.1:1",
		"WECOMBOT_ADMIN_TOKEN":      "admintoken",
		"WECOMBOT_CALLBACK_MAX_AGE": "0",
		"OPENAI_API_KEY":            "sk-xyz",
		"OPENAI_BASE_URL":           "http://model",
		"OPENAI_MODEL":              "qwen",
		"WECOMBOT_DEBUG_LISTEN":     "127.0.0.1:6060",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sandbox() {
		t.Fatal("secret set: not sandbox")
	}
	checks := map[string][2]string{
		"listen":    {c.Listen, "127.0.0.1:9999"},
		"secret":    {c.WeCom.Secret, "s3cr3t-from-file"},
		"agent":     {c.WeCom.AgentID, "1000002"},
		"apibase":   {c.WeCom.APIBase, "http://127.0.0.1:1"},
		"admin":     {c.AdminToken, "admintoken"},
		"model":     {c.OpenAI.Model, "qwen"},
		"openaikey": {c.OpenAI.APIKey, "sk-xyz"},
		"debug":     {c.DebugListen, "127.0.0.1:6060"},
	}
	for name, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", name, v[0], v[1])
		}
	}
	if c.CallbackMaxAge != 0 {
		t.Errorf("max age 0 should turn the check off, got %v", c.CallbackMaxAge)
	}
	for _, s := range []string{"s3cr3t-from-file", "tok", key, "admintoken", "sk-xyz"} {
		found := false
		for _, got := range c.Secrets() {
			found = found || got == s
		}
		if !found {
			t.Errorf("Secrets() misses %q", s)
		}
	}
	for k, v := range c.Summary() {
		if s, ok := v.(string); ok && (s == "s3cr3t-from-file" || s == "admintoken" || s == key) {
			t.Errorf("Summary leaks a secret in %s", k)
		}
	}
}

func TestFileThenEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("filetoken"), 0o600)
	path := filepath.Join(dir, "wecombot.yaml")
	os.WriteFile(path, []byte(`listen: ":7000"
data_dir: /var/lib/wecombot
scenarios: scen
callback_max_age: 5m
wecom:
  corp_id: wwfile
  token_file: token
log:
  level: debug
`), 0o600)
	c, err := Load(env(map[string]string{"WECOMBOT_CONFIG": path, "WECOMBOT_LISTEN": ":7001"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7001" {
		t.Errorf("env must override file: listen %q", c.Listen)
	}
	if c.DataDir != "/var/lib/wecombot" || c.WeCom.CorpID != "wwfile" || c.WeCom.Token != "filetoken" || c.LogLevel != "debug" || c.CallbackMaxAge != 5*time.Minute {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.Scenarios != filepath.Join(dir, "scen") {
		t.Errorf("relative scenario path should resolve beside the config file: %q", c.Scenarios)
	}
}

func TestFileErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listen: \":1\"\nlistne: x\n", "wecombot.yaml:2: field listne is not a known setting"},
		{"secret inline is refused", "wecom:\n  corp_id: ww\n  secret: abc\n", "wecombot.yaml:3: field secret is not a known setting (secrets go in *_file paths or environment variables)"},
		{"wrong type", "workers: many\n", "wecombot.yaml:1:"},
		{"bad duration", "listen: \":1\"\ncallback_max_age: soon\n", "wecombot.yaml:2: callback_max_age"},
		{"missing secret file", "wecom:\n  secret_file: /nonexistent/secret\n", "wecombot.yaml:2: secret_file"},
		{"bad yaml", "listen: [\n", "wecombot.yaml"},
		// The parser blames line 2, where the wecom: block starts; the wrong indent is on line 5.
		{"wrong indent deep in a block", "listen: \":1\"\nwecom:\n  corp_id: ww\n  agent_id: \"1\"\n    token_file: /run/t\n", "wecombot.yaml:5: YAML syntax: did not find expected key (check this line's indentation against the block that starts at line 2)"},
		{"under-indented key", "listen: \":1\"\nopenai:\n  base_url: https://x\n  model: m\n model2: x\nlog:\n  level: info\n", "wecombot.yaml:5: YAML syntax:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "wecombot.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			_, err := Load(env(map[string]string{"WECOMBOT_CONFIG": path}))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"live needs corp id", map[string]string{"WECOM_SECRET": "x", "WECOM_TOKEN": "t", "WECOM_AES_KEY": strings.Repeat("a", 43)}, "WECOM_CORP_ID"},
		{"live needs callback keys", map[string]string{"WECOM_SECRET": "x", "WECOM_CORP_ID": "ww"}, "WECOM_TOKEN and WECOM_AES_KEY"},
		{"aes key length", map[string]string{"WECOM_AES_KEY": "short"}, "43-character"},
		{"api base", map[string]string{"WECOM_API_BASE": "ftp://x"}, "WECOM_API_BASE"},
		{"max age", map[string]string{"WECOMBOT_CALLBACK_MAX_AGE": "-5s"}, "WECOMBOT_CALLBACK_MAX_AGE"},
		{"workers", map[string]string{"WECOMBOT_WORKERS": "zero"}, "WECOMBOT_WORKERS"},
		{"log level", map[string]string{"WECOMBOT_LOG_LEVEL": "loud"}, "log level"},
		{"secret file missing", map[string]string{"WECOM_SECRET_FILE": "/nonexistent"}, "WECOM_SECRET_FILE"},
		{"database url", map[string]string{"WECOMBOT_DATABASE_URL": "mysql://u:pw@db/x"}, "WECOMBOT_DATABASE_URL is not a postgres://"},
		{"database url file", map[string]string{"WECOMBOT_DATABASE_URL_FILE": "/nonexistent"}, "WECOMBOT_DATABASE_URL_FILE"},
		{"memory limit too small", map[string]string{"WECOMBOT_MEMORY_LIMIT": "8MiB"}, "below 16MiB"},
		{"memory limit not a size", map[string]string{"WECOMBOT_MEMORY_LIMIT": "lots"}, "WECOMBOT_MEMORY_LIMIT"},
		{"memory limit in MB", map[string]string{"WECOMBOT_MEMORY_LIMIT": "128MB"}, "WECOMBOT_MEMORY_LIMIT"},
		{"map budget", map[string]string{"WECOMBOT_MAP_BUDGET": "-3"}, "WECOMBOT_MAP_BUDGET"},
		{"debug listen on every interface", map[string]string{"WECOMBOT_DEBUG_LISTEN": ":6060"}, "WECOMBOT_DEBUG_LISTEN"},
		{"debug listen on a public address", map[string]string{"WECOMBOT_DEBUG_LISTEN": "10.0.0.5:6060"}, "loopback"},
		{"debug listen without a port", map[string]string{"WECOMBOT_DEBUG_LISTEN": "127.0.0.1"}, "WECOMBOT_DEBUG_LISTEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// TestDatabaseURL: Postgres is chosen by WECOMBOT_DATABASE_URL (or its file,
// or database_url_file in YAML); the URL is a secret, summarised without
// its user and password; unset means the bbolt file.
func TestDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{"WECOMBOT_DATA_DIR": dir}))
	if err != nil || c.DatabaseURL != "" || c.Database() != "bolt:"+c.DBPath() {
		t.Fatalf("default store: %q %q %v", c.DatabaseURL, c.Database(), err)
	}
	file := filepath.Join(dir, "db-url")
	os.WriteFile(file, []byte("postgres://wecombot:pa55word@db.internal:5432/wecombot?sslmode=require\n"), 0o600)
	yml := filepath.Join(dir, "wecombot.yaml")
	os.WriteFile(yml, []byte("database_url_file: db-url\n"), 0o600)
	for name, e := range map[string]map[string]string{
		"env file":  {"WECOMBOT_DATABASE_URL_FILE": file},
		"yaml file": {"WECOMBOT_CONFIG": yml},
		"env":       {"WECOMBOT_DATABASE_URL": "postgres://wecombot:pa55word@db.internal:5432/wecombot?sslmode=require"},
	} {
		c, err := Load(env(e))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.DatabaseURL != "postgres://wecombot:pa55word@db.internal:5432/wecombot?sslmode=require" {
			t.Errorf("%s: url %q", name, c.DatabaseURL)
		}
		if got := c.Summary()["database"]; got != "postgres://db.internal:5432/wecombot" {
			t.Errorf("%s: summary %v", name, got)
		}
		found := false
		for _, s := range c.Secrets() {
			found = found || s == "pa55word"
		}
		if !found {
			t.Errorf("%s: the password is not among the secrets to redact", name)
		}
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "wecombot.yaml")
	if err := os.WriteFile(path, []byte("retention: 90d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, 30 * 24 * time.Hour},
		{"env days", map[string]string{"WECOMBOT_RETENTION": "7d"}, 7 * 24 * time.Hour},
		{"env hours", map[string]string{"WECOMBOT_RETENTION": "36h"}, 36 * time.Hour},
		{"env off", map[string]string{"WECOMBOT_RETENTION": "0"}, 0},
		{"file", map[string]string{"WECOMBOT_CONFIG": path}, 90 * 24 * time.Hour},
		{"env over file", map[string]string{"WECOMBOT_CONFIG": path, "WECOMBOT_RETENTION": "14d"}, 14 * 24 * time.Hour},
	} {
		c, err := Load(env(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Retention != tc.want {
			t.Errorf("%s: retention %v, want %v", tc.name, c.Retention, tc.want)
		}
	}
	for _, bad := range []string{"a month", "-1d", "30x"} {
		_, err := Load(env(map[string]string{"WECOMBOT_RETENTION": bad}))
		if err == nil || !strings.Contains(err.Error(), "WECOMBOT_RETENTION") {
			t.Errorf("WECOMBOT_RETENTION=%q: err = %v, want one naming the variable", bad, err)
		}
	}
}

// TestMemorySizes: WECOMBOT_MEMORY_LIMIT and WECOMBOT_MAP_BUDGET read
// sizes the way GOMEMLIMIT writes them; unset gives the defaults, "off"
// turns each off.
func TestMemorySizes(t *testing.T) {
	cases := []struct {
		env         map[string]string
		limit, maps int64
	}{
		{nil, DefaultMemoryLimit, DefaultMapBudget},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "256MiB", "WECOMBOT_MAP_BUDGET": "32MiB"}, 256 << 20, 32 << 20},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "1GiB", "WECOMBOT_MAP_BUDGET": "4194304"}, 1 << 30, 4 << 20},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "200000000B", "WECOMBOT_MAP_BUDGET": "2048KiB"}, 200000000, 2 << 20},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "off", "WECOMBOT_MAP_BUDGET": "off"}, 0, -1},
	}
	for _, tc := range cases {
		c, err := Load(env(tc.env))
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.MemoryLimit != tc.limit || c.MapBudget != tc.maps {
			t.Errorf("%v: memory limit %d, map budget %d; want %d, %d", tc.env, c.MemoryLimit, c.MapBudget, tc.limit, tc.maps)
		}
	}
}
