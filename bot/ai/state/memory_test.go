package state

import (
	"strings"
	"testing"
	"time"
)

func TestMemoryWindow(t *testing.T) {
	var m Memory
	at := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := range 5 {
		q := strings.Repeat("问", 10)
		m.Turns = append(m.Turns, Turn{Role: "user", Text: q, At: at, Ref: string(rune('a' + i))},
			Turn{Role: "assistant", Text: strings.Repeat("答", 10), At: at, Ref: string(rune('a' + i))})
	}
	if got := m.Window(2, 0); len(got) != 4 || got[0].Role != "user" || got[0].Ref != "d" {
		t.Fatalf("2 exchanges: %+v", got)
	}
	// 35 tokens fit three turns; a window never starts with an answer.
	if got := m.Window(10, 35); len(got) != 2 || got[0].Role != "user" {
		t.Fatalf("token budget: %d turns %+v", len(got), got)
	}
	if got := m.Window(0, 100); got != nil {
		t.Fatal("memory_turns 0 remembers nothing")
	}
	if EstimateTokens("山茶 latte") != 2+2 {
		t.Fatalf("EstimateTokens = %d", EstimateTokens("山茶 latte"))
	}
}
