package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// duplicateKeys returns the keys that occur more than once in one JSON
// object (at any depth); encoding/json would silently keep the last.
func duplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var dups []string
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil && err != io.EOF {
		return nil, err
	}
	return dups, nil
}

func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	if d, _ := duplicateKeys([]byte(`{"a":1,"member":"x","b":{"member":1},"member":"x"}`)); len(d) != 1 || d[0] != "member" {
		t.Fatalf("got %v", d)
	}
	if d, _ := duplicateKeys([]byte(`{"a":1,"b":[{"a":2}]}`)); len(d) != 0 {
		t.Fatalf("got %v", d)
	}
}

// TestJSONLogLines: the server's JSON log lines, through a member's first
// steps (contact add with welcome and coupon, a check-in, a question to the
// AI), carry no key twice, time with milliseconds, and durations named with
// their unit (took_ms, startup_ms), never a bare float.
func TestJSONLogLines(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
	in := startServe(t, env)
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"callback", "contact.add", "--url", in.base, "--external-user", "wm_log", "--state", "xhs"},
		{"callback", "kf", "--url", in.base, "--external-user", "wm_log", "--text", "打卡", "--at", "07:30"},
		{"callback", "kf", "--url", in.base, "--external-user", "wm_log", "--text", "可以开发票吗？"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, getenv, nil, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errb.String())
		}
	}
	eventuallyT(t, "the answers in the sandbox outbox", 10*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/outbox?limit=100")
		return strings.Contains(body, "打卡成功") && strings.Contains(body, "申请开票")
	})
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	msPrecision := func(ts string) bool {
		at, err := time.Parse(time.RFC3339Nano, ts)
		return err == nil && len(ts) >= len("2006-01-02T15:04:05.000Z") && ts[19] == '.' && !at.IsZero()
	}
	lines, withMember, ready := 0, 0, false
	for _, line := range strings.Split(strings.TrimSpace(in.logs.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		lines++
		dups, err := duplicateKeys([]byte(line))
		if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, line)
		}
		if len(dups) > 0 {
			t.Errorf("key %v twice: %s", dups, line)
		}
		var fields map[string]any
		_ = json.Unmarshal([]byte(line), &fields)
		if ts, _ := fields["time"].(string); !msPrecision(ts) {
			t.Errorf("time %q is not RFC 3339 with milliseconds: %s", fields["time"], line)
		}
		if _, ok := fields["member"]; ok {
			withMember++
		}
		for _, bare := range []string{"took", "startup", "duration", "elapsed"} {
			if _, ok := fields[bare]; ok {
				t.Errorf("duration %q without a unit in its name: %s", bare, line)
			}
		}
		if fields["message"] == "ready" {
			_, isNumber := fields["startup_ms"].(float64)
			ready = isNumber
		}
	}
	if lines < 10 || withMember == 0 || !ready {
		t.Fatalf("too few lines to judge (%d lines, %d naming a member, ready with startup_ms: %v):\n%s", lines, withMember, ready, in.logs.String())
	}
}
