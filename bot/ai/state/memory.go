// Package state is what the AI feature keeps in the store: the remembered
// conversation per member or staff member, which messages were answered,
// failed replies in a row, and finished AI bot streams. Only the engine
// writes it (inside the ai.answer event's transaction); the AI sender reads
// memory for the prompt. It imports nothing but bot.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// KV buckets the AI feature keeps, in the store's key-value space:
//
//	ai_memory    <scope> → Memory (the last turns with one member or staff member)
//	ai_done      <ref> → present once the message's reply was produced
//	ai_failures  <scope> → failed replies in a row (hand-off after N)
//	aibot_streams <stream id> → StreamState once an AI bot answer finished
const (
	BucketMemory   = bot.BucketAIMemory
	BucketDone     = bot.BucketAIDone
	BucketFailures = bot.BucketAIFailures
	BucketStreams  = bot.BucketAIBotStreams
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

// StreamPollWindow is how long WeCom keeps polling an AI bot stream after
// the message (6 minutes), less a margin: an answer finished later goes to
// the message's response_url.
const StreamPollWindow = 5*time.Minute + 30*time.Second

// Scope is the memory scope of the person an AI reply answers.
func Scope(p *bot.AIReply) string {
	if p.MemberID != "" {
		return MemberScope(p.MemberID)
	}
	return StaffScope(p.StaffID)
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

// CountFailure keeps scope's count of failed replies in a row and reports
// when it reaches threshold (then starts over); a success resets it.
func CountFailure(tx bot.Tx, scope string, failed bool, threshold int) (handoff bool, err error) {
	n := 0
	if raw, err := tx.Get(BucketFailures, scope); err == nil {
		fmt.Sscan(string(raw), &n)
	} else if !errors.Is(err, bot.ErrNotFound) {
		return false, err
	}
	if !failed {
		if n == 0 {
			return false, nil
		}
		return false, tx.Delete(BucketFailures, scope)
	}
	n++
	if threshold > 0 && n >= threshold {
		return true, tx.Delete(BucketFailures, scope)
	}
	return false, tx.Put(BucketFailures, scope, []byte(fmt.Sprint(n)))
}

// Answered reports whether the message ref was answered (MarkAnswered).
func Answered(tx bot.Tx, ref string) (bool, error) {
	_, err := tx.Get(BucketDone, ref)
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MarkAnswered records that ref's reply was produced (value: its source).
func MarkAnswered(tx bot.Tx, ref, source string) error {
	return tx.Put(BucketDone, ref, []byte(source))
}

// StreamState is an AI bot answer as WeCom polls it: the text so far
// (cumulative, each poll shows all of it) and whether it is complete.
type StreamState struct {
	Content  string    `json:"content"`
	Finished bool      `json:"finished"`
	Updated  time.Time `json:"updated"`
}

// PutStream records a finished AI bot answer in the store, so a poll after
// a restart still gets it.
func PutStream(tx bot.Tx, id string, st StreamState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.Put(BucketStreams, id, raw)
}

// StoredStream reads a finished AI bot answer from the store.
func StoredStream(tx bot.Tx, id string) (StreamState, bool, error) {
	var st StreamState
	raw, err := tx.Get(BucketStreams, id)
	if errors.Is(err, bot.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	return st, json.Unmarshal(raw, &st) == nil, nil
}
