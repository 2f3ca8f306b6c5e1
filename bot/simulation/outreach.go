package simulation

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/scenarios"
)

// outreach prints each broadcast run's report (the API's and console's)
// and each member's SOP enrollments.
func (s *simulator) outreach(ctx context.Context) error {
	return s.store.View(ctx, func(tx bot.Tx) error {
		runs, err := engine.BroadcastRuns(tx)
		if err != nil {
			return err
		}
		if len(runs) > 0 {
			fmt.Fprintln(s.out, "# broadcasts")
		}
		for i := len(runs) - 1; i >= 0; i-- { // oldest first
			rep, err := engine.ReportBroadcast(tx, runs[i].ID, func(id uint64) (*bot.Action, error) { return s.store.Action(ctx, id) }, "", 1000)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s %s (%s, via %s): targeted %d, queued %d, tasks %d, confirmed %d, delivered %d, orders within 7 days %d (%s yuan)\n",
				s.fmtTime(rep.Occurrence), rep.Name, rep.Status, rep.Via, rep.Targeted, rep.Queued, rep.Tasks, rep.Confirmed, rep.Delivered,
				rep.Orders, scenarios.FormatYuan(rep.GMVFen))
			fmt.Fprintf(s.out, "  results: %s\n", countList(rep.Results))
			if len(rep.PerStaff) > 0 {
				fmt.Fprintf(s.out, "  per staff: %s\n", countList(rep.PerStaff))
			}
			for _, c := range rep.Customers {
				who := c.Member
				if who == "" {
					who = "group " + c.Chat
				}
				line := fmt.Sprintf("  %s (%s): %s", who, c.Staff, c.Status)
				if c.Reason != "" {
					line += " — " + c.Reason
				}
				fmt.Fprintln(s.out, line)
			}
		}
		header := false
		for _, id := range s.order {
			for _, sop := range s.sc.SOPs {
				e, err := engine.ReadSOPEnrollment(tx, id, sop.Name)
				if err != nil {
					return err
				}
				if e == nil {
					continue
				}
				if !header {
					fmt.Fprintln(s.out, "# sops")
					header = true
				}
				state := "ran to its last step " + s.fmtTime(e.Until)
				if !e.StoppedAt.IsZero() {
					state = "stopped " + s.fmtTime(e.StoppedAt) + " by " + e.Stop
				}
				fmt.Fprintf(s.out, "%s %s: started %s, %s\n", id, sop.Name, s.fmtTime(e.Started), state)
			}
		}
		// Each SOP's counts as its console page shows them.
		for _, sop := range s.sc.SOPs {
			st, err := engine.ReadSOPStats(tx, sop.Name)
			if err != nil {
				return err
			}
			if st.Enrolled == 0 {
				continue
			}
			line := fmt.Sprintf("%s: enrolled %d", sop.Name, st.Enrolled)
			if len(st.Stopped) > 0 {
				line += ", stopped: " + countList(st.Stopped)
			}
			fmt.Fprintln(s.out, line)
			for i, counts := range st.Steps {
				fmt.Fprintf(s.out, "  step %d (day %d, %s): %s\n", i+1, sop.Steps[min(i, len(sop.Steps)-1)].Day, sop.Steps[min(i, len(sop.Steps)-1)].Via, countList(counts))
			}
		}
		return nil
	})
}

// countList formats counts as "a 2, b 1" in key order.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
