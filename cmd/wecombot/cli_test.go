package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCLI runs the program with env and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, nil, &out, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		if !errors.Is(err, errSilent) { // main prints it
			fmt.Fprintln(&errb, "wecombot:", err)
		}
	}
	return code, out.String(), errb.String()
}

// closedAddr is a loopback address nothing listens on: a command that
// connects to it fails, so help that exits 0 proves nothing was dialled.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestEveryCommandHelp: -h and --help print the command's own help on stdout
// and exit 0 for every subcommand — without connecting anywhere (healthcheck,
// callback) or doing the command (version prints help, not the version) —
// and list flags as --name, the way the usage lines spell them.
func TestEveryCommandHelp(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_LISTEN": closedAddr(t), "WECOMBOT_DATA_DIR": t.TempDir()}
	commands := []string{"serve", "check", "doctor", "simulate", "callback", "channel", "backup", "restore",
		"coupons", "bench", "ask", "healthcheck", "version", "sync", "transfer"}
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for _, name := range commands {
		for _, flag := range []string{"--help", "-h"} {
			code, out, errb := runCLI(t, env, name, flag)
			if code != 0 {
				t.Errorf("%s %s: exit %d\n%s%s", name, flag, code, out, errb)
				continue
			}
			if !strings.Contains(out, "wecombot "+name) || !strings.Contains(out, "Usage") {
				t.Errorf("%s %s: stdout is not %s's help:\n%s", name, flag, name, out)
			}
			if name == "version" && strings.HasPrefix(out, "wecombot dev") {
				t.Errorf("version --help printed the version: %q", out)
			}
			if singleDash.MatchString(out) {
				t.Errorf("%s %s: flags listed as -name, usage says --name:\n%s", name, flag, out)
			}
		}
	}
	// `wecombot help simulate` is simulate's help.
	if code, out, _ := runCLI(t, env, "help", "simulate"); code != 0 || !strings.Contains(out, "Usage: wecombot simulate") {
		t.Errorf("help simulate: exit %d\n%s", code, out)
	}
	// Flags of a command appear with two dashes and their defaults.
	if _, out, _ := runCLI(t, env, "simulate", "--help"); !strings.Contains(out, "  --scenario string") {
		t.Errorf("simulate --help does not list --scenario:\n%s", out)
	}
}

// TestExtraArgumentsRejected: positional arguments a command doesn't take are
// a usage error (exit 2) naming them, before anything runs.
func TestExtraArgumentsRejected(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_LISTEN": closedAddr(t), "WECOMBOT_DATA_DIR": t.TempDir()}
	cases := [][]string{
		{"serve", "extra"},
		{"check", "extra", "junk"},
		{"doctor", "now"},
		{"version", "x"},
		{"healthcheck", "x"},
		{"bench", "fast"},
		{"simulate", "a.yaml", "b.yaml"},
		{"backup", "a.db", "b.db"},
		{"restore"},
		{"callback"},
		{"callback", "kf", "extra"},
		{"check", "--no-such-flag"},
		{"channel", "list", "extra"},
		{"channel", "create"},
		{"channel", "frobnicate"},
		{"coupons", "import", "pool"},
		{"coupons", "report", "x"},
	}
	for _, args := range cases {
		code, out, errb := runCLI(t, env, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s%s", args, code, exitUsage, out, errb)
			continue
		}
		if !strings.Contains(errb, "wecombot "+args[0]) || !strings.Contains(errb, "Usage") {
			t.Errorf("%v: stderr doesn't say what is wrong and how to call it:\n%s", args, errb)
		}
		if strings.Contains(errb, "unexpected argument") && !strings.Contains(errb, `"`+args[len(args)-1]+`"`) {
			t.Errorf("%v: stderr doesn't name the extra argument:\n%s", args, errb)
		}
	}
}

// TestFlagsAfterPositionalArguments: a flag after the positional argument is
// honoured, not silently ignored (simulate ev.yaml --scenario X used X).
func TestFlagsAfterPositionalArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "ev.yaml")
	if err := os.WriteFile(script, []byte("start: \"2025-03-03 07:30\"\nsteps:\n  - {add: wm_a, state: xhs, welcome_code: WC-1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(scenario, []byte("brand: {name: 别的品牌}\nwelcome:\n  default: {text: 另一个欢迎语}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"simulate", script, "--scenario", scenario},
		{"simulate", "--scenario", scenario, script},
		{"simulate", script, "--scenario=" + scenario},
	} {
		code, out, errb := runCLI(t, map[string]string{}, args...)
		if code != 0 || !strings.Contains(out, "brand 别的品牌") {
			t.Errorf("%v: exit %d; the --scenario after the file was not used:\n%s%s", args, code, out, errb)
		}
	}
	// "--" ends the flags: what follows is positional even if it looks like one.
	if code, _, errb := runCLI(t, map[string]string{}, "simulate", "--", "--scenario"); code != exitUsage || !strings.Contains(errb, "--scenario") {
		t.Errorf("simulate -- --scenario: exit %d (want the file --scenario to be opened and fail)\n%s", code, errb)
	}
	// ask's question may come before its flags.
	code, out, errb := runCLI(t, map[string]string{}, "ask", "可以开发票吗？", "--prompt")
	if code != 0 || !strings.Contains(out, "--- prompt ---") {
		t.Errorf("ask QUESTION --prompt: exit %d, no prompt section:\n%s%s", code, out, errb)
	}
}

// TestSimulateWithoutFilePlaysDemoWeek: a fresh clone's `wecombot simulate`
// plays the shipped demo week instead of "simulation script is empty", and
// says so on stderr.
func TestSimulateWithoutFilePlaysDemoWeek(t *testing.T) {
	t.Parallel()
	code, out, errb := runCLI(t, map[string]string{}, "simulate")
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s%s", code, out, errb)
	}
	if !strings.Contains(errb, "demo week") {
		t.Errorf("stderr doesn't say the demo week is playing: %q", errb)
	}
	for _, want := range []string{"小艾", "早安打卡", "补卡"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo week output lacks %q:\n%s", want, out)
		}
	}
	// A script on stdin still wins over the demo.
	var o, e bytes.Buffer
	script := "start: \"2025-03-03 07:30\"\nsteps:\n  - {add: wm_stdin, state: xhs, welcome_code: WC-1}\n"
	if err := run(context.Background(), []string{"simulate", "-"}, func(string) string { return "" }, strings.NewReader(script), &o, &e); err != nil || !strings.Contains(o.String(), "wm_stdin") || strings.Contains(o.String(), "小艾") {
		t.Errorf("simulate - with a script on stdin: %v\n%s%s", err, o.String(), e.String())
	}
}

// TestAskPromptOffline: with the offline model, --prompt says plainly that
// nothing was sent and shows what a configured model would be sent; when a
// keyword rule answers it says the model was not asked.
func TestAskPromptOffline(t *testing.T) {
	t.Parallel()
	code, out, errb := runCLI(t, map[string]string{}, "ask", "--prompt", "可以开发票吗？")
	if code != 0 || !strings.Contains(out, "offline model: nothing was sent") || !strings.Contains(out, "[system]") || !strings.Contains(out, "可以开发票吗") {
		t.Errorf("ask --prompt (FAQ, offline): exit %d\n%s%s", code, out, errb)
	}
	code, out, errb = runCLI(t, map[string]string{}, "ask", "--prompt", "营业时间")
	if code != 0 || !strings.Contains(out, "the model was not asked") || strings.Contains(out, "[system]") {
		t.Errorf("ask --prompt (keyword rule): exit %d\n%s%s", code, out, errb)
	}
}

// TestHealthcheckReadsConfigFile: healthcheck asks where serve listens, which
// may come from the YAML file's listen: (a container configured by file was
// reported unhealthy when only WECOMBOT_LISTEN was read).
func TestHealthcheckReadsConfigFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	cfgFile := filepath.Join(t.TempDir(), "wecombot.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: \""+srv.Listener.Addr().String()+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errb := runCLI(t, map[string]string{"WECOMBOT_CONFIG": cfgFile}, "healthcheck"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("healthcheck with listen: in the file: exit %d\n%s%s", code, out, errb)
	}
	// WECOMBOT_LISTEN overrides the file, as for serve: nothing there.
	if code, _, _ := runCLI(t, map[string]string{"WECOMBOT_CONFIG": cfgFile, "WECOMBOT_LISTEN": closedAddr(t)}, "healthcheck"); code != exitFailure {
		t.Errorf("healthcheck with WECOMBOT_LISTEN on a closed port: exit %d, want 1", code)
	}
}

// TestEventTime: callback --at HH:MM is the latest such time in the brand's
// zone, so README's 打卡 works at any hour.
func TestEventTime(t *testing.T) {
	t.Parallel()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	now := time.Date(2026, 12, 1, 15, 45, 0, 0, sh)
	cases := []struct {
		in   string
		now  time.Time
		want time.Time
	}{
		{"07:30", now, time.Date(2026, 12, 1, 7, 30, 0, 0, sh)},
		{"07:30", time.Date(2026, 12, 1, 3, 0, 0, 0, sh), time.Date(2026, 11, 30, 7, 30, 0, 0, sh)},
		{"07:30", time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC), time.Date(2026, 12, 1, 7, 30, 0, 0, sh)}, // 07:30 Shanghai, whatever the host's zone
		{"2026-11-29T07:00:00+08:00", now, time.Date(2026, 11, 29, 7, 0, 0, 0, sh)},
	}
	for _, tc := range cases {
		got, err := eventTime(tc.in, tc.now, sh)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("eventTime(%q, %v) = %v, %v; want %v", tc.in, tc.now, got, err, tc.want)
		}
	}
	if _, err := eventTime("7.30", now, sh); err == nil || !strings.Contains(err.Error(), "HH:MM") {
		t.Errorf("bad --at: %v", err)
	}
}

// TestReadmeTryItAtAnyHour: README's first steps on a fresh sandbox —
// contact add, then 打卡 with --at 07:30 — check the member in whatever the
// hour (without --at, 打卡 outside 06:00-09:00 answers "outside the window").
func TestReadmeTryItAtAnyHour(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
	in := startServe(t, env)
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"callback", "contact.add", "--url", in.base, "--external-user", "wm_demo_1", "--staff", "zhangsan", "--state", "xhs"},
		{"callback", "kf", "--url", in.base, "--external-user", "wm_demo_1", "--text", "打卡", "--at", "07:30"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, getenv, nil, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errb.String())
		}
	}
	eventuallyT(t, "the check-in confirmation in the sandbox outbox", 10*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/outbox?limit=100")
		return strings.Contains(body, "打卡成功")
	})
	if _, body := in.get(t, "/api/v1/outbox?limit=100"); strings.Contains(body, "早安打卡时间是每天") {
		t.Fatalf("the check-in was answered as outside the window:\n%s", body)
	}
}
