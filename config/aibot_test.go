package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAIBotCredentials(t *testing.T) {
	key := strings.Repeat("k", 43)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "aibot_key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"both", map[string]string{"WECOM_AIBOT_TOKEN": "tok", "WECOM_AIBOT_AES_KEY": key}, ""},
		{"key from file", map[string]string{"WECOM_AIBOT_TOKEN": "tok", "WECOM_AIBOT_AES_KEY_FILE": keyFile}, ""},
		{"neither", map[string]string{}, ""},
		{"token only", map[string]string{"WECOM_AIBOT_TOKEN": "tok"}, "go together"},
		{"short key", map[string]string{"WECOM_AIBOT_TOKEN": "tok", "WECOM_AIBOT_AES_KEY": "short"}, "43-character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["WECOMBOT_DATA_DIR"] = dir
			cfg, err := Load(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.env["WECOM_AIBOT_TOKEN"] != "" && (cfg.WeCom.AIBotToken != "tok" || cfg.WeCom.AIBotAESKey != key) {
				t.Fatalf("cfg = %+v", cfg.WeCom)
			}
			for _, s := range cfg.Secrets() {
				if s == "tok" || s == key {
					return
				}
			}
			if tt.env["WECOM_AIBOT_TOKEN"] != "" {
				t.Fatal("AI bot secrets are not redacted from logs")
			}
		})
	}
}
