package bot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/bolt"
)

// TestUnionMembersPages: paging through the union of two terms in small
// pages yields every member holding either, once, in id order; the rarest
// union is chosen by the tallies, and a tag nobody holds is known empty.
func TestUnionMembersPages(t *testing.T) {
	t.Parallel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "u.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var want []string
	ctx := context.Background()
	if err := st.Update(ctx, func(tx bot.Tx) error {
		for i := range 100 {
			m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%03d", i), Stage: bot.StageAware}
			if i%2 == 0 {
				m.AddTag("even")
			}
			if i%3 == 0 {
				m.AddTag("three")
			}
			if i%2 == 0 || i%3 == 0 {
				want = append(want, m.ExternalUserID)
			}
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	union := []string{bot.IndexKey(bot.TermTag, "even"), bot.IndexKey(bot.TermTag, "three")}
	_ = st.View(ctx, func(tx bot.Tx) error {
		var got []string
		after := ""
		for range 100 {
			ids, more, err := bot.UnionMembers(tx, union, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids...)
			if !more {
				break
			}
			after = ids[len(ids)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("union pages\n got %v\nwant %v", got, want)
		}
		terms, none, err := bot.RarestUnion(tx, [][]string{{bot.IndexKey(bot.TermStage, "aware")}, union, {bot.IndexKey(bot.TermTag, "three")}})
		if err != nil || none || !slices.Equal(terms, []string{bot.IndexKey(bot.TermTag, "three")}) {
			t.Errorf("rarest: %q %v %v", terms, none, err)
		}
		if _, none, _ := bot.RarestUnion(tx, [][]string{union, {bot.IndexKey(bot.TermTag, "nobody")}}); !none {
			t.Error("a tag nobody holds is not known empty")
		}
		// A channel's tally counts by name only: never "nobody" from it.
		if _, none, _ := bot.RarestUnion(tx, [][]string{{bot.IndexKey(bot.TermChannel, "xhs")}}); none {
			t.Error("an estimated tally declared a channel empty")
		}
		return nil
	})
}
