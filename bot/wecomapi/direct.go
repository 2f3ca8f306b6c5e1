package wecomapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIs wecombot calls with its own requests (the library lacks them or
// reads files from disk only).
const (
	apiAgentGet            = "agent/get"
	apiMediaUpload         = "media/upload"
	apiMediaUploadImg      = "media/uploadimg"
	apiKfSendMsgOnEvent    = "kf/send_msg_on_event"
	apiKfServiceStateGet   = "kf/service_state/get"
	apiKfServiceStateTrans = "kf/service_state/trans"
	apiGroupMsgTask        = "externalcontact/get_groupmsg_task"
	apiGroupMsgSendResult  = "externalcontact/get_groupmsg_send_result"
	apiRemindGroupMsgSend  = "externalcontact/remind_groupmsg_send"
	apiCancelGroupMsgSend  = "externalcontact/cancel_groupmsg_send"
	apiGroupChatGet        = "externalcontact/groupchat/get"
)

// errorAnswer is the errcode/errmsg every WeCom answer carries.
type errorAnswer struct {
	ErrCode int64  `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// errorOf lets doJSON read errcode from any answer struct embedding errorAnswer.
func (e *errorAnswer) errorOf() *errorAnswer { return e }

type answer interface{ errorOf() *errorAnswer }

// doJSON calls api with our own HTTP request (the Client's base, proxy and
// timeout), inside call (token refresh, metrics, logging): a JSON body for
// POST when body is non-nil, GET otherwise.
func (c *Client) doJSON(ctx context.Context, api string, query url.Values, body any, out answer) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return invalid("encode %s request: %v", api, err)
		}
	}
	return c.do(ctx, api, query, func(u string) (*http.Request, error) {
		if body == nil {
			return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(raw))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}, out)
}

// doMultipart uploads data as the form field "media" named filename.
func (c *Client) doMultipart(ctx context.Context, api string, query url.Values, filename string, data []byte, out answer) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, err := w.CreatePart(map[string][]string{
		"Content-Disposition": {fmt.Sprintf(`form-data; name="media"; filename=%q; filelength=%d`, filename, len(data))},
		"Content-Type":        {"application/octet-stream"},
	})
	if err == nil {
		_, err = part.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return invalid("build %s upload: %v", api, err)
	}
	body := buf.Bytes()
	return c.do(ctx, api, query, func(u string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", w.FormDataContentType())
		}
		return req, err
	}, out)
}

func (c *Client) do(ctx context.Context, api string, query url.Values, build func(u string) (*http.Request, error), out answer) error {
	ts := c.tokenFor(api)
	return c.call(ctx, api, func() error {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		if ts != nil {
			token, err := ts.get(ctx)
			if err != nil {
				return err
			}
			q.Set("access_token", token)
		}
		req, err := build(c.base + "/cgi-bin/" + api + "?" + q.Encode())
		if err != nil {
			return err
		}
		resp, err := c.httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return &APIError{API: api, Code: CodeUnknown, Msg: "unreadable answer: " + redactText(err.Error())}
		}
		if e := out.errorOf(); e.ErrCode != 0 {
			return &APIError{API: api, Code: e.ErrCode, Msg: redactText(strings.TrimSpace(e.ErrMsg))}
		}
		return nil
	})
}

// CheckAgent asks WeCom about WECOM_AGENT_ID with WECOM_SECRET's token
// (agent/get): 301002 means the two belong to different apps, so every
// message/send to staff would fail.
func (c *Client) CheckAgent(ctx context.Context) error {
	if c.cfg.AgentID == "" {
		return nil
	}
	var out struct {
		errorAnswer
		Name string `json:"name"`
	}
	return c.doJSON(ctx, apiAgentGet, url.Values{"agentid": {c.cfg.AgentID}}, nil, &out)
}

// UploadImage uploads a JPG/PNG picture with media/uploadimg and returns its
// permanent URL, usable as pic_url in welcome, mass-send and group welcome
// messages (media.Uploader).
func (c *Client) UploadImage(ctx context.Context, name string, data []byte) (string, error) {
	var out struct {
		errorAnswer
		URL string `json:"url"`
	}
	if err := c.doMultipart(ctx, apiMediaUploadImg, nil, name, data, &out); err != nil {
		return "", err
	}
	if out.URL == "" {
		return "", &APIError{API: apiMediaUploadImg, Code: CodeUnknown, Msg: "answer without url"}
	}
	return out.URL, nil
}

// UploadMedia uploads temporary media (image, voice, video or file) with
// media/upload; WeCom keeps the media_id 3 days (media.Uploader).
func (c *Client) UploadMedia(ctx context.Context, kind, name string, data []byte) (string, error) {
	var out struct {
		errorAnswer
		MediaID string `json:"media_id"`
	}
	if err := c.doMultipart(ctx, apiMediaUpload, url.Values{"type": {kind}}, name, data, &out); err != nil {
		return "", err
	}
	if out.MediaID == "" {
		return "", &APIError{API: apiMediaUpload, Code: CodeUnknown, Msg: "answer without media_id"}
	}
	return out.MediaID, nil
}

// MaxFetchBytes bounds a fetched media URL (media/upload's largest kind, file, is 20 MB).
const MaxFetchBytes = 20 << 20

// Fetch downloads rawURL through the egress proxy (scenario media named by
// URL). A non-200 answer or a body over MaxFetchBytes is an error.
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: c.transport.next, Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return nil, &APIError{API: "fetch", Code: CodeTransport, Msg: redactText(err.Error())}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{API: "fetch", Code: CodeTransport, HTTPStatus: resp.StatusCode, Msg: fmt.Sprintf("HTTP %d from %s", resp.StatusCode, RedactURL(rawURL))}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxFetchBytes+1))
	if err != nil {
		return nil, &APIError{API: "fetch", Code: CodeTransport, Msg: redactText(err.Error())}
	}
	if len(data) > MaxFetchBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d MB", ErrInvalidAction, RedactURL(rawURL), MaxFetchBytes>>20)
	}
	return data, nil
}
