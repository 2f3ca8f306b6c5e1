package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const channelUsage = `Usage:
  wecombot channel list [--server URL]
  wecombot channel create STATE [--staff USERID,...] [--remark TEXT] [--server URL]
  wecombot channel create --group STATE [--remark TEXT] [--server URL]

Creates "contact me" (联系我) codes through the running bot: the code carries
STATE, so customers who scan it are attributed to that channel, tagged and
greeted by its welcome script. A STATE defined in the scenario's channels uses
that channel's staff unless --staff is given. The bot asks WeCom
(add_contact_way) through its outbox and prints the QR code URL.

--group creates the QR code of a group channel (加入群聊, groupchat/add_join_way):
a scenario channel with group: {chat_ids: [...] (1-5), auto_create, room_base_name,
room_base_id}. Customers who join a group through it are attributed to the
channel and tagged with its tags.

The bot's admin API is found at --server (default: http://127.0.0.1:<port of
WECOMBOT_LISTEN>) with the bearer token WECOMBOT_ADMIN_TOKEN, if set.
`

// channel is `wecombot channel`: list channels and create contact me codes.
func channel(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var staff, remark *string
	var group *bool
	nargs := map[string]int{"list": 0, "create": 1}
	sc, done, err := parseSubcommand("channel", channelUsage, nargs, args, stdout, stderr, func(fs *flag.FlagSet) {
		staff = fs.String("staff", "", "comma-separated staff userids (create)")
		remark = fs.String("remark", "", "remark shown in the admin console (create)")
		group = fs.Bool("group", false, "create the group QR code (加入群聊) of a group channel (create)")
	})
	if done || err != nil {
		return err
	}
	sub, pos := sc.sub, sc.pos
	api, err := adminFor(sc.server, getenv, stderr)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		var out struct {
			Channels []struct {
				State string   `json:"state"`
				Name  string   `json:"name"`
				Kind  string   `json:"kind"`
				Staff []string `json:"staff"`
				Joins int      `json:"joins"`
				Group *struct {
					ChatIDs []string `json:"chat_ids"`
				} `json:"group"`
				InScenario bool `json:"in_scenario"`
				ContactWay *struct {
					ConfigID string `json:"config_id"`
					QRCode   string `json:"qr_code"`
				} `json:"contact_way"`
			} `json:"channels"`
		}
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/channels", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATE\tNAME\tKIND\tSTAFF / GROUPS\tQR CODE")
		for _, c := range out.Channels {
			qr := "— (wecombot channel create " + c.State + ")"
			if c.Kind == "group" {
				qr = "— (wecombot channel create --group " + c.State + ")"
			}
			who := strings.Join(c.Staff, ",")
			if c.Group != nil {
				who = strings.Join(c.Group.ChatIDs, ",") + fmt.Sprintf(" (%d joined)", c.Joins)
			}
			if c.ContactWay != nil && c.ContactWay.QRCode != "" {
				qr = c.ContactWay.QRCode
			}
			name := c.Name
			if !c.InScenario {
				name = "(not in the scenario)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.State, name, c.Kind, who, qr)
		}
		return tw.Flush()
	case "create":
		body := map[string]any{"remark": *remark, "group": *group}
		if *staff != "" {
			body["staff"] = strings.Split(*staff, ",")
		}
		var out map[string]any
		code, err := api.do(ctx, http.MethodPost, "/api/v1/channels/"+url.PathEscape(pos[0])+"/contact_way", body, &out)
		if err != nil {
			return err
		}
		if code == http.StatusAccepted {
			fmt.Fprintf(stdout, "queued: %v\n", out["detail"])
			return nil
		}
		fmt.Fprintf(stdout, "state:     %v\nconfig_id: %v\nqr_code:   %v\n", out["state"], out["config_id"], out["qr_code"])
		return nil
	}
	fmt.Fprint(stderr, channelUsage)
	return &exitError{exitUsage, fmt.Errorf("unknown channel command %q", sub)}
}

// localURL turns a listen address into a URL on this machine.
func localURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("WECOMBOT_LISTEN %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// adminClient calls the running bot's admin API.
type adminClient struct {
	base, token string
}

func (c *adminClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("is the bot running? %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return resp.StatusCode, fmt.Errorf("%s", resp.Status)
	}
	return resp.StatusCode, json.Unmarshal(raw, out)
}
