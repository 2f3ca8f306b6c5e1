package bot

import (
	"strings"
	"unicode/utf8"
)

// WeCom's text limits per surface, in bytes (UTF-8: a Chinese character is 3).
const (
	// MaxKfText: kf/send_msg text.content.
	MaxKfText = 2048
	// MaxAppText: message/send text.content (WeCom truncates beyond it).
	MaxAppText = 2048
	// MaxGroupWelcomeText: group_welcome_template text.content.
	MaxGroupWelcomeText = 3000
	// MaxAIBotText: AI bot stream and markdown content.
	MaxAIBotText = 20480
)

// Ellipsis marks a text cut to fit its surface.
const Ellipsis = "…"

// sentenceEnds are where a cut text may end.
var sentenceEnds = []string{"。", "！", "？", "；", "\n", "!", "?", ". ", ";"}

// Clip returns text if it fits in max bytes; otherwise it cuts at the last
// sentence end that keeps at least half the room (else at a character
// boundary) and appends Ellipsis, all within max bytes.
func Clip(text string, max int) string {
	if len(text) <= max {
		return text
	}
	room := max - len(Ellipsis)
	if room <= 0 {
		return ""
	}
	cut := room
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	head := text[:cut]
	best := -1
	for _, end := range sentenceEnds {
		if i := strings.LastIndex(head, end); i >= 0 && i+len(end) > best {
			best = i + len(end)
		}
	}
	if best >= room/2 {
		head = head[:best]
	}
	return strings.TrimRight(head, " \n") + Ellipsis
}

// FitSurface cuts the text of a kf, staff or group welcome payload to what
// WeCom accepts there; other payloads are returned as they are.
func FitSurface(payload any) any {
	switch p := payload.(type) {
	case KfMessage:
		p.Text = Clip(p.Text, MaxKfText)
		return p
	case StaffMessage:
		p.Text = Clip(p.Text, MaxAppText)
		return p
	case GroupWelcome:
		p.Text = Clip(p.Text, MaxGroupWelcomeText)
		return p
	}
	return payload
}
