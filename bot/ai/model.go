package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Model errors, by what the caller should do about them.
var (
	// ErrRateLimited: the provider said 429; try again later (backoff).
	ErrRateLimited = errors.New("model rate limited (429)")
	// ErrUnavailable: timeout, 5xx, network, malformed or empty completion;
	// answer with the fallback now.
	ErrUnavailable = errors.New("model unavailable")
	// ErrRejected: the provider refused the request (4xx other than 429:
	// bad key, unknown model); retrying won't help.
	ErrRejected = errors.New("model rejected the request")
)

// ToolCall is a function the model asked to run.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolSpec describes a tool to the model.
type ToolSpec struct {
	Name        string
	Description string
	// Parameters is the JSON schema of the arguments.
	Parameters json.RawMessage
}

// Request is one completion request.
type Request struct {
	Messages []Message
	Tools    []ToolSpec
	// OnDelta, when set, asks for a streamed completion and receives each
	// piece of text as it arrives.
	OnDelta func(delta string)
}

// Completion is what the model answered: text, or tool calls to run.
type Completion struct {
	Text      string
	ToolCalls []ToolCall
}

// Model answers chat requests. OpenAI talks to any OpenAI-compatible API;
// the offline model answers from retrieval alone.
type Model interface {
	Complete(ctx context.Context, req Request) (Completion, error)
	// Name is the model's name for logs and /api/v1/status.
	Name() string
}

// OpenAIConfig configures an OpenAI-compatible model.
type OpenAIConfig struct {
	APIKey  string
	BaseURL string // default https://api.openai.com/v1
	Model   string // default gpt-4o-mini
	// HTTPClient defaults to one with a 60 s overall timeout (each call also
	// has the sender's own, shorter timeout).
	HTTPClient *http.Client
	// Temperature defaults to 0.3: a brand voice, not a poet.
	Temperature float32
}

// OpenAI is a Model on github.com/sashabaranov/go-openai.
type OpenAI struct {
	client *openai.Client
	cfg    OpenAIConfig
}

// NewOpenAI returns a model for cfg.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.Model == "" {
		cfg.Model = "gpt-4o-mini"
	}
	if cfg.Temperature == 0 {
		cfg.Temperature = 0.3
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	oc.HTTPClient = cfg.HTTPClient
	return &OpenAI{client: openai.NewClientWithConfig(oc), cfg: cfg}
}

// Name is the configured model name.
func (m *OpenAI) Name() string { return m.cfg.Model }

// Complete asks the model; with req.OnDelta set the answer is streamed.
func (m *OpenAI) Complete(ctx context.Context, req Request) (Completion, error) {
	creq := openai.ChatCompletionRequest{Model: m.cfg.Model, Temperature: m.cfg.Temperature}
	for _, msg := range req.Messages {
		om := openai.ChatCompletionMessage{Role: msg.Role, Content: msg.Content, ToolCallID: msg.ToolCallID}
		for _, tc := range msg.ToolCalls {
			om.ToolCalls = append(om.ToolCalls, openai.ToolCall{ID: tc.ID, Type: openai.ToolTypeFunction,
				Function: openai.FunctionCall{Name: tc.Name, Arguments: tc.Arguments}})
		}
		creq.Messages = append(creq.Messages, om)
	}
	for _, t := range req.Tools {
		creq.Tools = append(creq.Tools, openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: t.Name, Description: t.Description, Parameters: t.Parameters}})
	}
	if req.OnDelta == nil {
		resp, err := m.client.CreateChatCompletion(ctx, creq)
		if err != nil {
			return Completion{}, classify(ctx, err)
		}
		if len(resp.Choices) == 0 {
			return Completion{}, fmt.Errorf("%w: completion has no choices", ErrUnavailable)
		}
		msg := resp.Choices[0].Message
		c := Completion{Text: msg.Content}
		for _, tc := range msg.ToolCalls {
			c.ToolCalls = append(c.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		return c, checkCompletion(c)
	}
	creq.Stream = true
	stream, err := m.client.CreateChatCompletionStream(ctx, creq)
	if err != nil {
		return Completion{}, classify(ctx, err)
	}
	defer stream.Close()
	var text strings.Builder
	var calls []ToolCall
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Completion{}, classify(ctx, err)
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		d := chunk.Choices[0].Delta
		if d.Content != "" {
			text.WriteString(d.Content)
			req.OnDelta(d.Content)
		}
		for _, tc := range d.ToolCalls {
			i := len(calls) - 1
			if tc.Index != nil {
				i = *tc.Index
			} else if tc.ID != "" {
				i = len(calls)
			}
			for len(calls) <= i {
				calls = append(calls, ToolCall{})
			}
			if tc.ID != "" {
				calls[i].ID = tc.ID
			}
			calls[i].Name += tc.Function.Name
			calls[i].Arguments += tc.Function.Arguments
		}
	}
	c := Completion{Text: text.String(), ToolCalls: calls}
	return c, checkCompletion(c)
}

// checkCompletion rejects completions with neither text nor tool calls.
func checkCompletion(c Completion) error {
	if strings.TrimSpace(c.Text) == "" && len(c.ToolCalls) == 0 {
		return fmt.Errorf("%w: empty completion", ErrUnavailable)
	}
	return nil
}

// classify maps a go-openai error onto ErrRateLimited, ErrRejected or ErrUnavailable.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	status := 0
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status = apiErr.HTTPStatusCode
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
	}
	switch {
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %v", ErrRateLimited, err)
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
