package wecomapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work/kf"
)

// WeCom error codes the client treats specially.
const (
	CodeSystemBusy          int64 = -1
	CodeTransport           int64 = -2 // ours: network error, timeout or HTTP error status (metrics label "http")
	CodeUnknown             int64 = -3 // ours: an answer or library error without an errcode
	CodeInvalidCredential   int64 = 40001
	CodeInvalidCorpID       int64 = 40013
	CodeInvalidToken        int64 = 40014
	CodeTagNameExists       int64 = 40071
	CodeInvalidExternalUser int64 = 40096
	CodeInvalidMediaID      int64 = 40007
	CodeInvalidChatID       int64 = 40050
	CodeInvalidTag          int64 = 40068
	CodeWelcomeCodeUsed     int64 = 41051
	CodeWelcomeBeingSent    int64 = 41096
	CodeTokenExpired        int64 = 42001
	CodeFrequencyLimit      int64 = 45009
	CodeConcurrencyLimit    int64 = 45033
	CodeAPIForbidden        int64 = 48002
	CodeInvalidSuiteID      int64 = 48003
	CodeNoPrivilege         int64 = 60011
	CodeUntrustedIP         int64 = 60020
	CodeInvalidWebhook      int64 = 93000
	CodeKfOverLimit         int64 = 95001
	CodeKfWindowClosed      int64 = 95002
	CodeKfSessionState      int64 = 95018
	CodeAgentMismatch       int64 = 301002
)

// CodeKfDuplicateMsgID is the errcode of kf/send_msg refusing a msgid it
// has seen: WeCom documents that a reused msgid is refused (the first send
// was delivered) but not with which code; 40058 is its invalid-parameter code.
const CodeKfDuplicateMsgID int64 = 40058

// AgentMismatchHint is what operators read when WeCom answers 301002 to message/send.
const AgentMismatchHint = "this access token may not act for that agentid: WECOM_AGENT_ID is not the AgentId of WECOM_SECRET's app — copy both from the same app (应用管理 → the app → AgentId and Secret)"

// TrustedIPHint is what operators read when WeCom answers 60020.
const TrustedIPHint = "the server's egress IP is not in the app's 企业可信IP (trusted IP) list — add it in the admin console, or set WECOMBOT_EGRESS_PROXY to a proxy whose IP is listed"

// APIError is a failed WeCom call, classified. Its text never holds an
// access_token, secret or webhook key.
type APIError struct {
	// API is the path under /cgi-bin/ ("externalcontact/send_welcome_msg", "gettoken", "webhook/send").
	API string
	// Code is WeCom's errcode, or CodeTransport for network errors, timeouts and HTTP error statuses.
	Code int64
	// Msg is WeCom's errmsg or the transport error, redacted.
	Msg string
	// HTTPStatus is set when WeCom (or a proxy) answered with an HTTP error status.
	HTTPStatus int
	// Timeout is set when the call timed out.
	Timeout bool
	// dialFailed: the connection was never made (refused, DNS): nothing was sent.
	dialFailed bool
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("wecom %s: errcode %d", e.API, e.Code)
	if e.Code == CodeTransport || e.Code == CodeUnknown {
		s = "wecom " + e.API
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if h := e.Hint(); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// Retryable reports whether trying again later may succeed: system busy,
// rate limits, HTTP 5xx/429, timeouts and network errors, and a token still
// refused after one refresh. 41096 (the welcome is already being sent) is
// final: resending could only race the first send.
func (e *APIError) Retryable() bool {
	switch e.Code {
	case CodeTransport:
		// A 4xx other than 429 means a wrong base URL or proxy: retrying won't fix it.
		return e.HTTPStatus == 0 || e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests
	case CodeSystemBusy, CodeFrequencyLimit, CodeConcurrencyLimit:
		return true
	case CodeInvalidToken, CodeTokenExpired:
		return true
	case CodeInvalidCredential:
		// From gettoken it means a wrong secret: retrying cannot help.
		return e.API != apiGetToken
	}
	return false
}

// Overloaded reports whether the answer says WeCom (or the way to it) is
// overloaded or down for this API — 45009/45033 frequency and concurrency
// limits, -1 system busy, HTTP 5xx/429, timeouts and network errors: the
// throttle then holds the whole API back, not just this call.
func (e *APIError) Overloaded() bool {
	switch e.Code {
	case CodeSystemBusy, CodeFrequencyLimit, CodeConcurrencyLimit:
		return true
	case CodeTransport:
		return e.HTTPStatus == 0 || e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests
	}
	return false
}

// answerLost reports whether the request may have reached WeCom although no
// answer came back: a timeout, or a network error other than failing to
// connect at all.
func (e *APIError) answerLost() bool {
	if e.Code != CodeTransport || e.HTTPStatus != 0 {
		return false
	}
	if e.Timeout {
		return true
	}
	return !e.dialFailed
}

// HeldError is a call the throttle refused before it went out: WeCom
// answered this API with overload moments ago. Retryable; nothing was sent.
type HeldError struct {
	API   string
	Until time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("wecom %s: held back until %s (WeCom answered it with a rate limit or an outage; nothing sent)", e.API, e.Until.Format("15:04:05.000"))
}

// HeldUntil is when the API may be called again (the pipeline reads it).
func (e *HeldError) HeldUntil() time.Time { return e.Until }

// Hint says in plain words what the error means and what to do, or "" for
// codes without a specific hint.
func (e *APIError) Hint() string {
	switch e.Code {
	case CodeSystemBusy:
		return "WeCom is busy (temporary); try again with backoff"
	case CodeTransport:
		switch {
		case e.Timeout:
			return "no answer from WeCom in time (temporary?) — if it persists, check the network or WECOMBOT_EGRESS_PROXY"
		case e.HTTPStatus == 429:
			return "rate limited at HTTP level (temporary); try again with backoff"
		case e.HTTPStatus >= 500:
			return "WeCom or the egress proxy answered with a server error (temporary?); try again with backoff"
		case e.HTTPStatus != 0:
			return "unexpected HTTP status: check WECOM_API_BASE and WECOMBOT_EGRESS_PROXY"
		}
		return "network error reaching WeCom — if it persists, check DNS, firewall or WECOMBOT_EGRESS_PROXY"
	case CodeInvalidCredential:
		if e.API == apiGetToken {
			return "WECOM_SECRET (or WECOM_KF_SECRET) is not the app's Secret — copy it again from 应用管理 → the app → Secret"
		}
		return "access_token refused even after a refresh"
	case CodeInvalidCorpID:
		return "WECOM_CORP_ID is wrong — copy 企业ID from 我的企业 → 企业信息"
	case CodeInvalidToken, CodeTokenExpired:
		return "access_token refused even after a refresh; try again later"
	case CodeFrequencyLimit, CodeConcurrencyLimit:
		return "WeCom rate or concurrency limit (temporary); try again with backoff"
	case CodeWelcomeCodeUsed:
		return "the welcome code was already used or expired (valid 20 s, usable once; another app or the staff's own 欢迎语 may have used it); not retried"
	case CodeWelcomeBeingSent:
		return "the welcome message is already being sent (another app in the corp, or an earlier attempt, took the welcome code first; check the apps' 可见范围); not resent"
	case CodeInvalidMediaID:
		return "invalid or expired media_id: temporary media (media/upload) is valid 3 days — name the file (image: {file: …}) so wecombot uploads and renews it"
	case CodeInvalidTag:
		return "invalid corp tag id: the tag was deleted in the admin console (客户标签); the tag library is reloaded"
	case CodeKfOverLimit:
		return "微信客服 allows at most 5 messages per customer message; wait for the customer to write again"
	case CodeKfWindowClosed:
		return "微信客服 allows replies only within 48 hours of the customer's last message; not retried"
	case CodeKfSessionState:
		return "the 微信客服 session is queued, held by a person or ended: the bot may not send; not retried"
	case CodeAPIForbidden:
		return "API forbidden: give the app the 客户联系 (customer contact) permission (客户与上下游 → 客户联系 → API → 可调用接口的应用) and put the staff in the app's 可见范围 (visible range)"
	case CodeInvalidSuiteID:
		return "invalid suite_id: a third-party (服务商) app's credentials were used; wecombot runs as a self-built app (自建应用) — use its corp id and Secret"
	case CodeAgentMismatch:
		if e.API == apiMessageSend || e.API == apiAgentGet {
			return AgentMismatchHint
		}
		return "no privilege on this user, department or app: put them in the app's 可见范围 (visible range), and check that WECOM_AGENT_ID belongs to WECOM_SECRET's app"
	case CodeNoPrivilege:
		return "no privilege (指定的成员/部门/标签参数无权限): add the staff member to the app's 可见范围 (visible range, 应用管理 → the app → 可见范围) and make sure the app may call 客户联系 (客户与上下游 → 客户联系 → API → 可调用接口的应用)"
	case CodeUntrustedIP:
		return TrustedIPHint
	case CodeInvalidExternalUser:
		return "invalid external_userid: the customer id is wrong or belongs to another corp or app"
	case CodeInvalidWebhook:
		return "invalid group robot webhook key: the robot was removed or the key is wrong — update robot_key_files"
	case CodeTagNameExists:
		return "a corp tag with this name already exists in the group"
	}
	return ""
}

// IsStaleMedia reports WeCom refusing a media id as invalid or expired
// (40007): the media library uploads the file again.
func IsStaleMedia(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Code == CodeInvalidMediaID
}

// Classify reports whether an error from this package is worth retrying.
// Context cancellation and deadlines count as retryable: the action is
// still owed.
func Classify(err error) (retry bool) {
	if err == nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Retryable()
	}
	var held *HeldError
	if errors.As(err, &held) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return false
}

// HTTPStatusError is what the transport returns for an HTTP error status, so
// the status survives the library's error handling.
type HTTPStatusError struct {
	Status int
	Path   string
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("HTTP %d from %s", e.Status, e.Path)
}

var (
	// credentialInText finds credentials in URLs or query strings inside arbitrary text.
	credentialInText = regexp.MustCompile(`(?i)\b((?:access_token|corpsecret|secret|key)=)[^&\s"',;)]+`)
	// codeInMessage finds the errcode WeCom repeats in its errmsg ("… more info at
	// https://open.work.weixin.qq.com/devtool/query?e=60020"), or the marker the
	// transport adds when it doesn't.
	codeInMessage = regexp.MustCompile(`(?:devtool/query\?e=|\[errcode )(-?\d+)`)
)

const redacted = "REDACTED"

// RedactURL returns u with access_token, corpsecret, secret and key query
// values and any userinfo password replaced, for logs and errors.
func RedactURL(u string) string {
	if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
		if parsed.User != nil {
			if _, has := parsed.User.Password(); has {
				parsed.User = url.UserPassword(parsed.User.Username(), redacted)
			}
		}
		parsed.RawQuery = credentialInText.ReplaceAllString(parsed.RawQuery, "${1}"+redacted)
		u = parsed.String()
	}
	return redactText(u)
}

// redactText scrubs credentials from any text that may embed a URL (library
// and net/http errors carry the full request URL).
func redactText(s string) string {
	return credentialInText.ReplaceAllString(s, "${1}"+redacted)
}

// kfCodes maps the kf package's error values back to their codes: its
// SendMsg returns them instead of the errcode.
var kfCodes = map[kf.Error]int64{
	kf.SDKInvalidCredential:      CodeInvalidCredential,
	kf.SDKInvalidCorpID:          CodeInvalidCorpID,
	kf.SDKAccessTokenInvalid:     CodeInvalidToken,
	kf.SDKAccessTokenMissing:     41001,
	kf.SDKAccessTokenExpired:     CodeTokenExpired,
	kf.SDKApiFreqOutOfLimit:      CodeFrequencyLimit,
	kf.SDKApiForbidden:           CodeAPIForbidden,
	kf.SDKInvalidOpenKFID:        95000,
	kf.SDKOpenKFIDNotExist:       95004,
	kf.SDKWeWorkAlready:          95011,
	kf.SDKNotUseInWeCom:          95012,
	kf.SDKApiNotOpen:             95017,
	kf.SDKMediaIDExceedMinLength: 40058,
}

// toAPIError turns whatever the library (or our transport) returned into an
// *APIError with a redacted message.
func toAPIError(api string, err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var common *util.CommonError
	if errors.As(err, &common) {
		return &APIError{API: api, Code: common.ErrCode, Msg: redactText(common.ErrMsg)}
	}
	var status *HTTPStatusError
	if errors.As(err, &status) {
		return &APIError{API: api, Code: CodeTransport, HTTPStatus: status.Status, Msg: fmt.Sprintf("HTTP %d", status.Status)}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &APIError{API: api, Code: CodeTransport, Timeout: true, Msg: "timeout"}
	}
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) {
		// The url.Error text starts with the request URL: keep only the cause.
		cause := err
		if urlErr != nil {
			cause = urlErr.Err
		}
		var opErr *net.OpError
		dial := errors.As(err, &opErr) && opErr.Op == "dial"
		return &APIError{API: api, Code: CodeTransport, Msg: redactText(cause.Error()), dialFailed: dial}
	}
	msg := redactText(err.Error())
	var kfErr kf.Error
	if errors.As(err, &kfErr) {
		if code, ok := kfCodes[kfErr]; ok {
			return &APIError{API: api, Code: code, Msg: msg}
		}
	}
	if m := codeInMessage.FindStringSubmatch(msg); m != nil {
		if code, perr := strconv.ParseInt(m[1], 10, 64); perr == nil {
			return &APIError{API: api, Code: code, Msg: msg}
		}
	}
	// Anything else (an unparsable answer, a library-side error) is not
	// known to be transient: final.
	return &APIError{API: api, Code: CodeUnknown, Msg: msg}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
