package ai

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/scenarios"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"营业时间", []string{"营业", "业时", "时间"}},
		{"山茶Latte大杯", []string{"山茶", "latte", "大杯"}},
		{"券", []string{"券"}},
		{"Hello, World 2024!", []string{"hello", "world", "2024"}},
		{"几点开门？7点", []string{"几点", "点开", "开门", "7", "点"}},
		{"", []string{}},
		{"，。！", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Tokens(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tokens(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func demoIndex(t testing.TB) *Index {
	sc := scenarios.LoadDefault()
	var docs []Doc
	for _, f := range sc.AI.FAQ {
		docs = append(docs, Doc{Q: f.Q, A: f.A, Keywords: f.Keywords})
	}
	return NewIndex(docs)
}

func TestSearchDemoFAQ(t *testing.T) {
	ix := demoIndex(t)
	tests := []struct {
		query string
		want  string // substring of the best answer; "" = nothing good enough
	}{
		{"你们几点开门呀", "07:00-22:00"},
		{"山茶拿铁有咖啡因吗", "乌龙茶底"},
		{"能开发票吗", "申请开票"},
		{"可以点外卖吗", "满 25 元起送"},
		{"饮品能做少糖去冰吗", "无糖/少糖"},
		{"公司想团购50杯", "团购价"},
		{"补卡要多少积分", "补卡"},
		{"今天天气怎么样", ""},
		{"asdfgh", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			hits := ix.Search(tt.query, 3)
			good := len(hits) > 0 && hits[0].Coverage >= DefaultMinCoverage
			if tt.want == "" {
				if good {
					t.Fatalf("%q: unexpected confident hit %q (coverage %.2f)", tt.query, hits[0].Doc.Q, hits[0].Coverage)
				}
				return
			}
			if !good {
				t.Fatalf("%q: no confident hit: %+v", tt.query, hits)
			}
			if !strings.Contains(hits[0].Doc.A, tt.want) {
				t.Fatalf("%q: best hit %q (%.2f), want the entry containing %q", tt.query, hits[0].Doc.Q, hits[0].Score, tt.want)
			}
		})
	}
}

func TestSearchOrderAndLimit(t *testing.T) {
	ix := NewIndex([]Doc{
		{Q: "发票怎么开", A: "小程序里申请开票"},
		{Q: "外卖", A: "美团饿了么"},
		{Q: "发票 发票 抬头", A: "发票抬头可以修改，发票"},
	})
	hits := ix.Search("发票抬头", 5)
	if len(hits) != 2 {
		t.Fatalf("hits = %d, want 2 (the entry without a shared term is never returned)", len(hits))
	}
	if !strings.Contains(hits[0].Doc.Q, "抬头") || hits[0].Score < hits[1].Score {
		t.Fatalf("order wrong: %+v", hits)
	}
	if got := ix.Search("发票", 1); len(got) != 1 {
		t.Fatalf("k=1 returned %d", len(got))
	}
	if got := (*Index)(nil).Search("x", 3); got != nil {
		t.Fatal("nil index should return nothing")
	}
}

// syntheticFAQ makes n distinct FAQ entries from a vocabulary of tea-shop words.
func syntheticFAQ(n int) []Doc {
	words := []string{"门店", "营业", "外卖", "发票", "积分", "会员", "打卡", "优惠", "新品", "拿铁", "乌龙", "桂花", "冷萃",
		"少糖", "去冰", "退款", "团购", "定制", "生日", "咖啡因", "杯套", "配送", "地址", "电话", "小程序", "美团", "饿了么",
		"包装", "保质期", "过敏", "牛奶", "燕麦奶", "椰奶", "甜度", "温度", "大杯", "中杯", "季节", "限定", "礼盒"}
	r := rand.New(rand.NewPCG(1, 2))
	docs := make([]Doc, n)
	for i := range docs {
		pick := func(k int) string {
			var b strings.Builder
			for range k {
				b.WriteString(words[r.IntN(len(words))])
			}
			return b.String()
		}
		docs[i] = Doc{Q: fmt.Sprintf("%s问题%d", pick(3), i), A: pick(12), Keywords: []string{words[r.IntN(len(words))]}}
	}
	return docs
}

// BenchmarkSearch10k measures BM25 retrieval over 10,000 FAQ entries.
func BenchmarkSearch10k(b *testing.B) {
	ix := NewIndex(syntheticFAQ(10000))
	queries := []string{"门店几点营业？", "外卖可以开发票吗", "会员积分怎么打卡", "拿铁少糖去冰", "燕麦奶过敏怎么办", "团购礼盒定制"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ix.Search(queries[i%len(queries)], 3)
	}
}

// BenchmarkIndex10k measures building the index (once per scenario load).
func BenchmarkIndex10k(b *testing.B) {
	docs := syntheticFAQ(10000)
	for b.Loop() {
		NewIndex(docs)
	}
}
