package checkin_test

import (
	"slices"
	"testing"

	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// TestComputeReward pins the one reward rule the member and staff paths
// both apply: the day's points (none for a make-up), streak bonuses by the
// whole run the day joins, milestones by day count, each once.
func TestComputeReward(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("c.yaml", []byte(`brand: {name: t}
campaigns:
  - name: c
    start: 2025-03-01
    days: 10
    windows: ["06:00-09:00"]
    keywords: [打卡]
    makeup: {max: 2, within_days: 3}
    points: 10
    streak_bonus: [{days: 3, points: 20}, {days: 5, points: 50}]
    milestones:
      - {day: 3, points: 30, text: M3}
      - {day: 5, text: M5}
`))
	if err != nil {
		t.Fatal(err)
	}
	camp := sc.Campaigns[0]
	base, _ := checkin.ParseDay("2025-03-01")
	days := func(offs ...int) []checkin.Day {
		var out []checkin.Day
		for _, o := range offs {
			out = append(out, base+checkin.Day(o))
		}
		return out
	}
	cases := []struct {
		name       string
		p          checkin.Progress // after Record of day
		day        int
		makeup     bool
		points     int64
		bonuses    []int
		milestones []int
		score      int64
	}{
		{name: "first day", p: checkin.Progress{Days: days(0)}, day: 0, points: 10, score: 10},
		{name: "third in a row: bonus and milestone", p: checkin.Progress{Days: days(0, 1, 2)}, day: 2,
			points: 10, bonuses: []int{3}, milestones: []int{3}, score: 60},
		{name: "bonus and milestone given once", p: checkin.Progress{Days: days(0, 1, 2, 3), Bonuses: []int{3}, Milestones: []int{3}},
			day: 3, points: 10, score: 10},
		{name: "a broken run earns no bonus", p: checkin.Progress{Days: days(0, 1, 3)}, day: 3, points: 10, milestones: []int{3}, score: 40},
		{name: "make-up joins two runs: no day points, both bonuses", p: checkin.Progress{Days: days(0, 1, 2, 3, 4), Bonuses: []int{3}, Milestones: []int{3}},
			day: 2, makeup: true, bonuses: []int{5}, milestones: []int{5}, score: 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			rw := checkin.ComputeReward(camp, &p, base+checkin.Day(tc.day), tc.makeup)
			var bonuses, milestones []int
			for _, b := range rw.Bonuses {
				bonuses = append(bonuses, b.Days)
			}
			for _, m := range rw.Milestones {
				milestones = append(milestones, m.Day)
			}
			if rw.Points != tc.points || !slices.Equal(bonuses, tc.bonuses) || !slices.Equal(milestones, tc.milestones) || rw.Score() != tc.score {
				t.Fatalf("reward points %d bonuses %v milestones %v score %d; want %d %v %v %d",
					rw.Points, bonuses, milestones, rw.Score(), tc.points, tc.bonuses, tc.milestones, tc.score)
			}
			before := p.Score
			p.Apply(rw)
			if p.Score != before+tc.score {
				t.Errorf("score after Apply %d, want %d", p.Score, before+tc.score)
			}
			again := checkin.ComputeReward(camp, &p, base+checkin.Day(tc.day), tc.makeup)
			if len(again.Bonuses) != 0 || len(again.Milestones) != 0 {
				t.Errorf("applied reward earned again: %+v", again)
			}
		})
	}
}
