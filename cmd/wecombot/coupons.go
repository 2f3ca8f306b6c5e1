package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wecombot/wecombot/bot/couponcode"
)

const couponsUsage = `Usage:
  wecombot coupons import POOL FILE.csv   add codes to a pool (first column; a bad row names its line and nothing is imported)
  wecombot coupons generate POOL N        make N codes now for a pool with a generate section; prints them
  wecombot coupons grant POOL EXTERNAL_USERID
                                          give a member one code (issued and sent by the engine)
  wecombot coupons report                 stock, issued, redeemed and expired per pool and hook

The commands talk to the running bot's admin API (WECOMBOT_LISTEN on this
machine, or --server URL) with WECOMBOT_ADMIN_TOKEN.
`

func coupons(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var operator *string
	nargs := map[string]int{"import": 2, "generate": 2, "grant": 2, "report": 0}
	sc, done, err := parseSubcommand("coupons", couponsUsage, nargs, args, stdout, stderr, func(fs *flag.FlagSet) {
		operator = fs.String("operator", "", "who grants (grant; kept in the event log)")
	})
	if done || err != nil {
		return err
	}
	sub, pos := sc.sub, sc.pos
	// Check the file before anything else: its errors need no server.
	var csvBody []byte
	if sub == "import" {
		b, err := os.ReadFile(pos[1])
		if err != nil {
			return &exitError{exitUsage, err}
		}
		codes, err := couponcode.ParseCSV(strings.NewReader(string(b)))
		if err != nil {
			return fmt.Errorf("%s: %w (nothing imported)", pos[1], err)
		}
		csvBody = b
		fmt.Fprintf(stderr, "%s: %d codes\n", pos[1], len(codes))
	}
	api, err := adminFor(sc.server, getenv, stderr)
	if err != nil {
		return err
	}
	poolPath := func(p string) string { return "/api/v1/coupons/" + url.PathEscape(p) }
	switch sub {
	case "import":
		var out struct {
			Imported int `json:"imported"`
			Free     int `json:"free"`
		}
		if err := api.raw(ctx, http.MethodPost, poolPath(pos[0])+"/import", "text/csv", csvBody, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d codes into %s; %d in stock\n", out.Imported, pos[0], out.Free)
	case "generate":
		count, err := strconv.Atoi(pos[1])
		if err != nil || count < 1 {
			return &exitError{exitUsage, fmt.Errorf("the number of codes must be a positive number, got %q", pos[1])}
		}
		var out struct {
			Codes []string `json:"codes"`
		}
		if _, err := api.do(ctx, http.MethodPost, poolPath(pos[0])+"/generate?n="+strconv.Itoa(count), nil, &out); err != nil {
			return err
		}
		for _, c := range out.Codes {
			fmt.Fprintln(stdout, c)
		}
	case "grant":
		body := map[string]string{"external_userid": pos[1], "operator": *operator,
			"request_id": fmt.Sprintf("cli-%d", time.Now().UnixNano())}
		var out struct {
			Seq uint64 `json:"seq"`
		}
		if _, err := api.do(ctx, http.MethodPost, poolPath(pos[0])+"/grant", body, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "grant queued as event %d; the member gets the code (or the pool's fallback) shortly\n", out.Seq)
	case "report":
		var out struct {
			Pools []struct {
				Pool     string `json:"pool"`
				Hook     string `json:"hook"`
				Issued   int    `json:"issued"`
				Redeemed int    `json:"redeemed"`
				Expired  int    `json:"expired"`
				Stock    int    `json:"stock"`
			} `json:"pools"`
		}
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/coupons", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POOL\tHOOK\tSTOCK\tISSUED\tREDEEMED\tEXPIRED\tCONVERSION")
		for _, p := range out.Pools {
			stock := strconv.Itoa(p.Stock)
			if p.Stock < 0 {
				stock = "∞"
			}
			hook := p.Hook
			if hook == "" {
				hook = "(all)"
			} else {
				stock = ""
			}
			conv := "-"
			if p.Issued > 0 {
				conv = fmt.Sprintf("%.0f%%", 100*float64(p.Redeemed)/float64(p.Issued))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", p.Pool, hook, stock, p.Issued, p.Redeemed, p.Expired, conv)
		}
		return tw.Flush()
	}
	return nil
}

// raw sends a non-JSON body (a CSV upload) and decodes the JSON answer.
func (c *adminClient) raw(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the bot running? %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(raw, out)
}
