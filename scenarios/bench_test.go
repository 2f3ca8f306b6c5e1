package scenarios

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// scenarioWithRules builds a scenario with n keyword rules of 3 keywords
// each (Chinese and Latin), every 50th rule a regex, replies templated.
func scenarioWithRules(tb testing.TB, n int) (*Scenario, []string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString(base + "keywords:\n  rate_limit: {max: 3, per: 10m}\n  rules:\n")
	for i := 0; i < n; i++ {
		if i%50 == 49 {
			fmt.Fprintf(&b, "    - {name: r%d, regex: '订单%d\\d{4}', reply: \"{{.Name}}，订单 %d 已收到\"}\n", i, i, i)
			continue
		}
		fmt.Fprintf(&b, "    - {name: r%d, keywords: [商品%d号, item%dx, 问题%d], reply: \"{{.Name}}你好，第 %d 条：你有 {{.Points}} 积分\"}\n", i, i, i, i, i)
	}
	sc, err := LoadBytes("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]string, 256)
	for i := range msgs {
		k := rng.IntN(n)
		switch i % 4 {
		case 0:
			msgs[i] = fmt.Sprintf("你好，请问商品%d号还有货吗？今天能送到吗", k)
		case 1:
			msgs[i] = fmt.Sprintf("hi, is ITEM%dX available in the store near me?", k)
		case 2:
			msgs[i] = "今天天气不错，随便聊聊，没有任何关键词的一条普通消息"
		default:
			msgs[i] = fmt.Sprintf("我的订单%d1234怎么还没到", k/50*50+49)
		}
	}
	return sc, msgs
}

func TestScenarioWithRulesMatches(t *testing.T) {
	sc, _ := scenarioWithRules(t, 1000)
	if r := sc.Match(SurfaceKf, "商品123号"); r == nil || r.Name != "r123" {
		t.Fatalf("got %v", r)
	}
	if r := sc.Match(SurfaceKf, "订单1491234"); r == nil || r.Name != "r149" {
		t.Fatalf("got %v", r)
	}
	// "商品1号" is a prefix of "商品12号"? No: the trailing 号 keeps them apart.
	if r := sc.Match(SurfaceKf, "商品12号"); r == nil || r.Name != "r12" {
		t.Fatalf("got %v", r)
	}
}

// BenchmarkMatchAndRender1000Rules matches a message against 1,000 keyword
// rules and renders the winning reply: the per-message cost of keyword
// auto-replies.
func BenchmarkMatchAndRender1000Rules(b *testing.B) {
	sc, msgs := scenarioWithRules(b, 1000)
	data := TemplateData{Name: "李小梅", Points: 120}
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := 0; b.Loop(); i++ {
		r := sc.Match(SurfaceKf, msgs[i%len(msgs)])
		if r == nil {
			continue
		}
		if _, err := r.Reply.Render(data); err != nil {
			b.Fatal(err)
		}
		hits++
	}
	b.ReportMetric(float64(hits)/float64(b.N), "hits/op")
}

// BenchmarkMatchNaive1000Rules is the linear scan the automaton replaces,
// for comparison.
func BenchmarkMatchNaive1000Rules(b *testing.B) {
	sc, msgs := scenarioWithRules(b, 1000)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		text := strings.ToLower(msgs[i%len(msgs)])
	rules:
		for _, r := range sc.Keywords.Rules {
			for _, kw := range r.Keywords {
				if strings.Contains(text, kw) {
					break rules
				}
			}
			if r.Regex != nil && r.Regex.MatchString(text) {
				break
			}
		}
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := loadDefault(); err != nil {
			b.Fatal(err)
		}
	}
}
