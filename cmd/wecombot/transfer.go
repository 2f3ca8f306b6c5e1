package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/wecomapi"
)

const transferUsage = `Usage:
  wecombot transfer FROM TO [--customers ID,...] [--no-groups] [--resigned] [--message TEXT] [--wait DURATION] [--server URL]
  wecombot transfer list [--server URL]
  wecombot transfer unassigned [--server URL]

Moves staff member FROM's customers (all of them, or those --customers
lists) and the customer groups FROM owns to staff member TO, through the
running bot: 在职继承 (transfer_customer, groupchat/onjob_transfer), or with
--resigned 离职继承 for staff who have left (resigned/transfer_customer,
groupchat/transfer). WeCom completes each customer's move within 24 h and
the customer may refuse; the bot polls the results (transfer_result) and
moves each member's follow record when it is done. Members keep their
stage, history, points and coupons.

--message is what WeCom tells the customer on an on-job transfer (≤200
characters; WeCom's default text when empty). --wait waits that long for
the transfer to settle and prints where it stands.
"list" prints the transfers; "unassigned" the customers of departed staff
still waiting for a new one (get_unassigned_list).
`

// transferCmd is `wecombot transfer`.
func transferCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var customers, message *string
	var noGroups, resigned *bool
	var wait *time.Duration
	if len(args) > 0 && args[0] != "list" && args[0] != "unassigned" && !strings.HasPrefix(args[0], "-") && args[0] != "help" {
		args = append([]string{"move"}, args...) // FROM TO
	}
	sc, done, err := parseSubcommand("transfer", transferUsage, map[string]int{"move": 2, "list": 0, "unassigned": 0}, args, stdout, stderr, func(fs *flag.FlagSet) {
		customers = fs.String("customers", "", "comma-separated external_userids (default: all of FROM's)")
		noGroups = fs.Bool("no-groups", false, "leave FROM's customer groups alone")
		resigned = fs.Bool("resigned", false, "FROM has left the company (离职继承)")
		message = fs.String("message", "", "what WeCom tells the customer (在职继承 only, ≤200 characters)")
		wait = fs.Duration("wait", 0, "wait this long for the transfer to settle")
	})
	if done || err != nil {
		return err
	}
	api, err := adminFor(sc.server, getenv, stderr)
	if err != nil {
		return err
	}
	switch sc.sub {
	case "list":
		var out struct {
			Transfers []transferAnswer `json:"transfers"`
		}
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/transfers", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFROM\tTO\tCUSTOMERS\tGROUPS")
		for _, t := range out.Transfers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d moved, %d failed\n", t.ID, t.From, t.To, t.countsLine(), t.GroupsMoved, t.GroupsFailed)
		}
		return tw.Flush()
	case "unassigned":
		var out struct {
			Customers []struct {
				Handover string `json:"handover_userid"`
				ID       string `json:"external_userid"`
				Name     string `json:"name"`
				Left     int64  `json:"dimission_time"`
			} `json:"customers"`
			Detail string `json:"detail"`
		}
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/transfers/unassigned", nil, &out); err != nil {
			return err
		}
		if out.Detail != "" {
			fmt.Fprintln(stdout, out.Detail)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPARTED\tCUSTOMER\tNAME\tLEFT")
		for _, c := range out.Customers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Handover, c.ID, c.Name, time.Unix(c.Left, 0).Format("2006-01-02"))
		}
		return tw.Flush()
	}
	pos := sc.pos
	body := map[string]any{"from": pos[0], "to": pos[1], "resigned": *resigned, "message": *message, "groups": !*noGroups}
	if *customers != "" {
		body["customers"] = strings.Split(*customers, ",")
		if !flagSet(args, "no-groups") {
			body["groups"] = false
		}
	}
	var created struct {
		ID string `json:"id"`
	}
	if _, err := api.do(ctx, http.MethodPost, "/api/v1/transfers", body, &created); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "transfer %s queued: %s → %s\n", created.ID, pos[0], pos[1])
	if *wait <= 0 {
		fmt.Fprintf(stdout, "wecombot transfer list shows where it stands\n")
		return nil
	}
	deadline := time.Now().Add(*wait)
	var t transferAnswer
	for {
		t = transferAnswer{} // maps decode into what they hold: start afresh
		code, err := api.do(ctx, http.MethodGet, "/api/v1/transfers/"+url.PathEscape(created.ID), nil, &t)
		if err != nil && code != http.StatusNotFound {
			return err
		}
		if err == nil && !t.Open && len(t.Customers) > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "customers: %s; groups: %d moved, %d failed\n", t.countsLine(), t.GroupsMoved, t.GroupsFailed)
	var failed []string
	for id, why := range t.Failures {
		failed = append(failed, "  "+id+": "+why)
	}
	sort.Strings(failed)
	for _, f := range failed {
		fmt.Fprintln(stdout, f)
	}
	return nil
}

// flagSet reports whether --name was given on the command line.
func flagSet(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || a == "-"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

type transferAnswer struct {
	ID           string            `json:"id"`
	From         string            `json:"from"`
	To           string            `json:"to"`
	Customers    map[string]string `json:"customers"`
	Failures     map[string]string `json:"failures"`
	Counts       map[string]int    `json:"counts"`
	Open         bool              `json:"open"`
	GroupsMoved  int               `json:"groups_moved"`
	GroupsFailed int               `json:"groups_failed"`
}

func (t transferAnswer) countsLine() string {
	return fmt.Sprintf("%d done, %d waiting, %d failed", t.Counts["done"], t.Counts["waiting"]+t.Counts["requested"], t.Counts["failed"])
}

// unassignedLister reads get_unassigned_list for the console (nil in the sandbox).
func unassignedLister(c *wecomapi.Client) server.UnassignedLister {
	if c == nil {
		return nil
	}
	return func(ctx context.Context, limit int) ([]server.UnassignedCustomer, error) {
		list, err := c.UnassignedCustomers(ctx, limit)
		if err != nil {
			return nil, err
		}
		out := make([]server.UnassignedCustomer, len(list))
		for i, u := range list {
			out[i] = server.UnassignedCustomer{HandoverUserID: u.HandoverUserID, ExternalUserID: u.ExternalUserID, DimissionTime: u.DimissionTime}
		}
		return out, nil
	}
}
