package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

func TestDoctor(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	fake.SetCredentials("ww_doctor", "the-secret")
	fake.SetAgentID("1000002")
	live := func(secret string) map[string]string {
		return map[string]string{
			"WECOMBOT_DATA_DIR": t.TempDir(),
			"WECOM_CORP_ID":     "ww_doctor",
			"WECOM_AGENT_ID":    "1000002",
			"WECOM_SECRET":      secret,
			"WECOM_TOKEN":       "tok",
			"WECOM_AES_KEY":     strings.Repeat("A", 43),
			"WECOM_API_BASE":    fake.URL(),
		}
	}
	cases := []struct {
		name   string
		env    map[string]string
		setup  func()
		fails  bool
		expect string
	}{
		{"sandbox", map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}, nil, false, "sandbox"},
		{"healthy live", live("the-secret"), nil, false, "customer-contact API answered"},
		{"wrong secret", live("wrong"), nil, true, "Secret"},
		{"trusted ip", live("the-secret"), func() { fake.FailNext(fakewecom.APIGetCorpTagList, 60020, 1) }, true, "企业可信IP"},
		{"no permission", live("the-secret"), func() { fake.FailNext(fakewecom.APIGetCorpTagList, 48002, 1) }, true, "48002"},
		{"agent of another app", withEnv(live("the-secret"), "WECOM_AGENT_ID", "1000099"), nil, true, "301002"},
		{"bad aes key", map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOM_AES_KEY": "short"}, nil, true, "43-character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"doctor"}, func(k string) string { return tc.env[k] }, nil, &out, &errb)
			if (err != nil) != tc.fails {
				t.Fatalf("err = %v, want failure %v\n%s", err, tc.fails, out.String())
			}
			if !strings.Contains(out.String(), tc.expect) {
				t.Fatalf("output lacks %q:\n%s", tc.expect, out.String())
			}
			for _, secret := range []string{"the-secret", strings.Repeat("A", 43)} {
				if strings.Contains(out.String()+errb.String(), secret) {
					t.Fatalf("doctor printed a secret")
				}
			}
		})
	}
}
