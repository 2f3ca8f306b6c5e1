package server

import (
	"context"
	"net/http"
	"sort"
)

// Campaign and coupon reports come from the features that keep them (the
// check-in and coupon features), through these small interfaces; when a
// feature is not wired the console shows an empty state, never made-up data.

// CampaignReader reports check-in campaigns.
type CampaignReader interface {
	Campaigns(ctx context.Context, days int) ([]CampaignReport, error)
}

// CampaignReport is one campaign's participation.
type CampaignReport struct {
	Name string `json:"name"`
	// Days are participants per day (yyyy-mm-dd), oldest first.
	Days []DayCount `json:"days"`
	// Streaks counts members by current streak length.
	Streaks []StreakCount `json:"streaks"`
	Leaders []Leader      `json:"leaders"`
}

// DayCount is how many members did something on a day.
type DayCount struct {
	Day     string `json:"day"`
	Members int    `json:"members"`
}

// StreakCount is how many members have a streak of Days.
type StreakCount struct {
	Days    int `json:"days"`
	Members int `json:"members"`
}

// Leader is one leaderboard row.
type Leader struct {
	ExternalUserID string `json:"external_user_id"`
	Name           string `json:"name"`
	Score          int64  `json:"score"`
}

// CouponReader reports coupon pools.
type CouponReader interface {
	CouponPools(ctx context.Context) ([]CouponPoolReport, error)
}

// CouponPoolReport is one pool's numbers (Hook empty), or one hook's within
// the pool.
type CouponPoolReport struct {
	Pool     string `json:"pool"`
	Hook     string `json:"hook,omitempty"`
	Issued   int    `json:"issued"`
	Redeemed int    `json:"redeemed"`
	Expired  int    `json:"expired"`
	Unused   int    `json:"unused"`
	// OrderFen sums the orders that redeemed a code; Conversion is Redeemed/Issued.
	OrderFen   int64   `json:"order_fen"`
	Conversion float64 `json:"conversion"`
	// Stock is what can still be issued (-1: generated without limit); Low
	// is set at or below the pool's stock alert. Pool rows only.
	Stock int  `json:"stock"`
	Low   bool `json:"low,omitempty"`
}

// apiCampaigns answers GET /api/v1/campaigns: check-ins per day over the
// last `days` days, the streak distribution and the leaderboard, counted
// from the engine's check-in days (every campaign together), plus the
// campaign feature's own per-campaign reports when it is wired.
func (s *Server) apiCampaigns(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "days")
	days := q.int("days", 30, 1, 366)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	a, err := s.agg.get(r.Context(), false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	today := s.o.Now().In(a.Zone)
	perDay := make([]DayCount, 0, days)
	for i := days - 1; i >= 0; i-- {
		d := today.AddDate(0, 0, -i).Format("2006-01-02")
		perDay = append(perDay, DayCount{Day: d, Members: a.CheckInsByDay[d]})
	}
	streaks := make([]StreakCount, 0, len(a.Streaks))
	for d, n := range a.Streaks {
		streaks = append(streaks, StreakCount{Days: d, Members: n})
	}
	sort.Slice(streaks, func(i, j int) bool { return streaks[i].Days < streaks[j].Days })
	leaders := a.Leaders
	if leaders == nil {
		leaders = []leader{}
	}
	body := map[string]any{
		"computed_at": a.ComputedAt,
		"check_ins":   map[string]any{"days": perDay, "longest_streaks": streaks, "leaderboard": leaders},
		"campaigns":   []CampaignReport{},
		"available":   s.o.Campaigns != nil,
	}
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil {
			names := make([]string, 0, len(sc.Campaigns))
			for _, c := range sc.Campaigns {
				names = append(names, c.Name)
			}
			body["configured"] = names
		}
	}
	if s.o.Campaigns != nil {
		reports, err := s.o.Campaigns.Campaigns(r.Context(), days)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if reports != nil {
			body["campaigns"] = reports
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// configuredPool is a coupon pool as the scenario defines it.
type configuredPool struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ValueFen    int64  `json:"value_fen"`
	MinSpendFen int64  `json:"min_spend_fen,omitempty"`
	PerMember   int    `json:"per_member,omitempty"`
}

// apiCoupons answers GET /api/v1/coupons: the pools the scenario defines and,
// when the coupon feature is wired, issued/redeemed/expired/stock per pool and hook.
func (s *Server) apiCoupons(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	configured := []configuredPool{}
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil {
			for _, p := range sc.Coupons {
				configured = append(configured, configuredPool{Name: p.Name, Description: p.Description, ValueFen: p.ValueFen,
					MinSpendFen: p.MinSpendFen, PerMember: p.PerMember})
			}
		}
	}
	body := map[string]any{"configured": configured, "pools": []CouponPoolReport{}, "available": s.o.Coupons != nil}
	if s.o.Coupons != nil {
		pools, err := s.o.Coupons.CouponPools(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if pools != nil {
			body["pools"] = pools
		}
	}
	writeJSON(w, http.StatusOK, body)
}
