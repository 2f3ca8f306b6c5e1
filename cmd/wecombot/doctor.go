package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot/logging"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/storage/postgres"
)

// doctor checks what an operator gets wrong most often and prints the fix:
// configuration, callback crypto, credentials, trusted IP (60020) and
// permissions (48002).
func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("doctor", "Usage: wecombot doctor\n\nChecks configuration, callback crypto, WeCom credentials, the trusted-IP list (60020)\nand permissions, and prints what to fix. Exits 1 if anything is wrong.", 0, 0)
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	failed := false
	// Details quote WeCom's answers; they are redacted like log lines
	// (configured secrets too, once the configuration is loaded).
	var redact *logging.Redactor
	report := func(ok bool, what, detail string) {
		detail = redact.String(detail)
		mark := "ok  "
		if !ok {
			mark, failed = "FAIL", true
		}
		fmt.Fprintf(stdout, "[%s] %s", mark, what)
		if detail != "" {
			fmt.Fprintf(stdout, ": %s", detail)
		}
		fmt.Fprintln(stdout)
	}

	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		report(false, "configuration", err.Error())
		return &exitError{exitFailure, errSilent}
	}
	redact = logging.NewRedactor(cfg.Secrets())
	report(true, "configuration", "")
	if cfg.Sandbox() {
		report(true, "mode", "sandbox: WECOM_SECRET is not set, so outbound calls are recorded, not sent. Set WECOM_CORP_ID, WECOM_AGENT_ID, WECOM_SECRET, WECOM_TOKEN and WECOM_AES_KEY to go live.")
	}

	if cfg.DatabaseURL != "" {
		switch v, err := postgres.SchemaVersionAt(ctx, cfg.DatabaseURL); {
		case err != nil:
			report(false, "database", fmt.Sprintf("%s: %v — check WECOMBOT_DATABASE_URL, the network and the credentials", cfg.Database(), err))
		case v > postgres.SchemaVersion:
			report(false, "database", fmt.Sprintf("%s has schema version %d, newer than this wecombot (%d): upgrade wecombot", cfg.Database(), v, postgres.SchemaVersion))
		case v < postgres.SchemaVersion:
			report(true, "database", fmt.Sprintf("%s reachable; schema version %d, serve (or wecombot migrate) brings it to %d", cfg.Database(), v, postgres.SchemaVersion))
		default:
			report(true, "database", fmt.Sprintf("%s reachable; schema version %d (current)", cfg.Database(), v))
		}
		if cfg.Sandbox() && cfg.WeCom.Token == "" {
			report(true, "several nodes", "sandbox callback keys are generated per node: set WECOM_TOKEN and WECOM_AES_KEY on every node that shares the database")
		}
	}

	// Callback crypto self-test: seal a message the way WeCom does and open it with the configured keys.
	keys, _, err := callbackCredentials(cfg)
	if err == nil {
		var c *wecom.Crypter
		if c, err = wecom.NewCrypter(keys.Token, keys.AESKey, keys.CorpID); err == nil {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			var body []byte
			var sig string
			if body, sig, err = c.SealXML([]byte("<xml><MsgType>event</MsgType><Event>doctor</Event></xml>"), ts, "doctor"); err == nil {
				_, err = c.OpenXML(sig, ts, "doctor", body)
			}
		}
	}
	if err != nil {
		report(false, "callback crypto", fmt.Sprintf("%v — check WECOM_TOKEN and WECOM_AES_KEY (接收消息 Token / EncodingAESKey)", err))
	} else {
		report(true, "callback crypto", "register https://<your host>/wecom/callback as the 接收消息 URL")
	}

	if !cfg.Sandbox() {
		client, err := wecomapi.New(wecomapi.Config{
			CorpID: cfg.WeCom.CorpID, AgentID: cfg.WeCom.AgentID, Secret: cfg.WeCom.Secret, KfSecret: cfg.WeCom.KfSecret,
			APIBase: cfg.WeCom.APIBase, EgressProxy: cfg.WeCom.EgressProxy, Logger: zerolog.Nop(),
		})
		if err != nil {
			report(false, "WeCom client", err.Error())
		} else {
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err = client.Ping(pctx)
			cancel()
			var apiErr *wecomapi.APIError
			if err == nil && cfg.WeCom.AgentID != "" {
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				aerr := client.CheckAgent(actx)
				cancel()
				var agentErr *wecomapi.APIError
				switch {
				case errors.As(aerr, &agentErr) && agentErr.Code == wecomapi.CodeAgentMismatch:
					report(false, "agent id (301002)", wecomapi.AgentMismatchHint)
				case aerr != nil:
					report(false, "agent id", fmt.Sprintf("%v — check WECOM_AGENT_ID (应用管理 → the app → AgentId)", aerr))
				default:
					report(true, "agent id", "WECOM_AGENT_ID belongs to WECOM_SECRET's app (staff messages can be sent)")
				}
			}
			switch {
			case err == nil:
				report(true, "WeCom API", "access token fetched and customer-contact API answered (trusted IP and permissions are fine)")
			case errors.As(err, &apiErr) && apiErr.Code == 60020:
				report(false, "trusted IP (60020)", wecomapi.TrustedIPHint)
			case errors.As(err, &apiErr) && apiErr.Hint() != "":
				report(false, "WeCom API", fmt.Sprintf("%v — %s", err, apiErr.Hint()))
			default:
				report(false, "WeCom API", fmt.Sprintf("%v — check WECOM_CORP_ID/WECOM_SECRET and that %s is reachable (WECOM_API_BASE, WECOMBOT_EGRESS_PROXY)", err, cfg.WeCom.APIBase))
			}
		}
	}
	if cfg.AdminToken == "" {
		report(true, "admin API", "WECOMBOT_ADMIN_TOKEN is not set: the admin API answers only on loopback")
	}
	if failed {
		return &exitError{exitFailure, errSilent}
	}
	return nil
}
