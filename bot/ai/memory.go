package ai

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// KV buckets the AI sender keeps, in the store's key-value space:
//
//	ai_memory    <scope> → Memory (the last turns with one member or staff member)
//	ai_done      <ref> → present once the message's reply was produced
//	ai_failures  <scope> → failed replies in a row (hand-off after N)
//	aibot_streams <stream id> → StreamState once an AI bot answer finished
const (
	BucketMemory   = "ai_memory"
	BucketDone     = "ai_done"
	BucketFailures = "ai_failures"
	BucketStreams  = "aibot_streams"
)

// maxStoredTurns bounds a scope's stored memory, whatever the scenario asks.
const maxStoredTurns = 40

// Turn is one remembered message.
type Turn struct {
	// Role is "user" or "assistant".
	Role string    `json:"role"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
	// Ref is the inbound message the turn belongs to (its reply shares it).
	Ref string `json:"ref"`
}

// Memory is the remembered conversation of one scope: a member ("m:<id>")
// or a staff member ("s:<id>"). Nothing of another scope is ever read into
// a prompt.
type Memory struct {
	Turns []Turn `json:"turns"`
}

// MemberScope and StaffScope name memory scopes.
func MemberScope(id string) string { return "m:" + id }

// StaffScope names a staff member's memory scope.
func StaffScope(id string) string { return "s:" + id }

// LoadMemory reads a scope's memory (empty when none).
func LoadMemory(tx bot.Tx, scope string) (Memory, error) {
	var m Memory
	raw, err := tx.Get(BucketMemory, scope)
	if errors.Is(err, bot.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read memory %s: %w", scope, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		// A damaged record must not block replies: start over.
		return Memory{}, nil
	}
	return m, nil
}

// Remember appends the exchange for ref unless it is already there (a
// retried delivery), keeping the last maxStoredTurns turns.
func Remember(tx bot.Tx, scope, ref string, at time.Time, question, answer string) error {
	m, err := LoadMemory(tx, scope)
	if err != nil {
		return err
	}
	for _, t := range m.Turns {
		if t.Ref == ref {
			return nil
		}
	}
	m.Turns = append(m.Turns, Turn{Role: "user", Text: question, At: at, Ref: ref}, Turn{Role: "assistant", Text: answer, At: at, Ref: ref})
	if n := len(m.Turns); n > maxStoredTurns {
		m.Turns = append([]Turn(nil), m.Turns[n-maxStoredTurns:]...)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(BucketMemory, scope, raw)
}

// Window returns the most recent turns that fit: at most exchanges
// question/answer pairs and at most budget estimated tokens, oldest first,
// never starting with an answer.
func (m Memory) Window(exchanges, budget int) []Turn {
	if exchanges <= 0 || len(m.Turns) == 0 {
		return nil
	}
	start := len(m.Turns)
	used := 0
	for i := len(m.Turns) - 1; i >= 0; i-- {
		cost := EstimateTokens(m.Turns[i].Text)
		if budget > 0 && used+cost > budget {
			break
		}
		used += cost
		start = i
	}
	if start < len(m.Turns) && m.Turns[start].Role == "assistant" {
		start++
	}
	if max := len(m.Turns) - 2*exchanges; start < max {
		start = max
	}
	return m.Turns[start:]
}

// EstimateTokens guesses a text's token count without a tokenizer: about
// one token per Han character and one per four other bytes.
func EstimateTokens(s string) int {
	n, other := 0, 0
	for _, r := range s {
		if r >= utf8.RuneSelf {
			n++
		} else {
			other++
		}
	}
	return n + (other+3)/4
}
