package bolt

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// appendEventJSON appends json.Marshal's bytes of ev with Seq 0 (the
// ingest log adds it: withSeq) without encoding/json's reflection, which
// was a tenth of the server's CPU per acknowledged callback. It reports
// false, having appended nothing, for what it does not encode exactly as
// json.Marshal does — a time json.Marshal refuses — so the caller asks
// encoding/json, for the same bytes or the same error
// (FuzzEventJSONIsJSONMarshal).
func appendEventJSON(dst []byte, ev *bot.Event) ([]byte, bool) {
	if !jsonTimeOK(ev.At) || !jsonTimeOK(ev.ReceivedAt) {
		return dst, false
	}
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, string(ev.Type))
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, ev.Source)
	dst = appendField(dst, `,"dedupe_key":`, ev.DedupeKey)
	dst = append(dst, `,"at":"`...)
	dst = ev.At.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","received_at":"`...)
	dst = ev.ReceivedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst = appendField(dst, `,"wecom_event":`, ev.WeComEvent)
	dst = appendField(dst, `,"change_type":`, ev.ChangeType)
	dst = appendField(dst, `,"staff_id":`, ev.StaffID)
	dst = appendField(dst, `,"external_user_id":`, ev.ExternalUserID)
	dst = appendField(dst, `,"state":`, ev.State)
	dst = appendField(dst, `,"welcome_code":`, ev.WelcomeCode)
	dst = appendField(dst, `,"fail_reason":`, ev.FailReason)
	dst = appendField(dst, `,"chat_id":`, ev.ChatID)
	dst = appendField(dst, `,"update_detail":`, ev.UpdateDetail)
	dst = appendIntField(dst, `,"join_scene":`, ev.JoinScene)
	dst = appendIntField(dst, `,"quit_scene":`, ev.QuitScene)
	dst = appendIntField(dst, `,"mem_change_cnt":`, ev.MemChangeCnt)
	if len(ev.MemChangeList) > 0 {
		dst = append(dst, `,"mem_change_list":[`...)
		for i, m := range ev.MemChangeList {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, m)
		}
		dst = append(dst, ']')
	}
	dst = appendField(dst, `,"last_mem_ver":`, ev.LastMemVer)
	dst = appendField(dst, `,"cur_mem_ver":`, ev.CurMemVer)
	dst = appendField(dst, `,"tag_id":`, ev.TagID)
	dst = appendField(dst, `,"tag_type":`, ev.TagType)
	dst = appendField(dst, `,"strategy_id":`, ev.StrategyID)
	dst = appendField(dst, `,"content":`, ev.Content)
	dst = appendField(dst, `,"msg_id":`, ev.MsgID)
	dst = appendField(dst, `,"agent_id":`, ev.AgentID)
	dst = appendField(dst, `,"event_key":`, ev.EventKey)
	dst = appendField(dst, `,"kf_token":`, ev.KfToken)
	dst = appendField(dst, `,"open_kfid":`, ev.OpenKfID)
	if len(ev.Data) > 0 {
		keys := make([]string, 0, len(ev.Data))
		for k := range ev.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys) // json.Marshal's order of map keys
		dst = append(dst, `,"data":{`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, ev.Data[k])
		}
		dst = append(dst, '}')
	}
	dst = appendField(dst, `,"raw":`, ev.Raw)
	return append(dst, '}'), true
}

// appendField appends an omitempty string field: name is `,"name":`.
func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendJSONString(append(dst, name...), v)
}

func appendIntField(dst []byte, name string, v int) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, name...), int64(v), 10)
}

// jsonTimeOK reports whether t.MarshalJSON succeeds, and so gives its
// RFC 3339 form with nanoseconds in quotes: a year of four digits and a
// zone offset of whole minutes under 24 hours (time's
// appendStrictRFC3339).
func jsonTimeOK(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	if off < 0 {
		off = -off
	}
	return off%60 == 0 && off < 24*3600
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping
// (json.Marshal's): '<', '>' and '&' as \u003c…, control characters,
// invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
