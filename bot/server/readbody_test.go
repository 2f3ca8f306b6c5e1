package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadBody: a callback body is read whole with or without a
// Content-Length, a body shorter than its Content-Length is an error, and
// more than MaxBodyBytes is a *http.MaxBytesError whatever the header says.
func TestReadBody(t *testing.T) {
	big := strings.Repeat("A", MaxBodyBytes+1)
	for _, tc := range []struct {
		name   string
		body   string
		length int64
		tooBig bool
		err    bool
	}{
		{name: "with length", body: "<xml>1</xml>", length: 12},
		{name: "chunked", body: "<xml>1</xml>", length: -1},
		{name: "shorter than its length", body: "<xml>", length: 12, err: true},
		{name: "declared too large", body: big, length: int64(len(big)), tooBig: true},
		{name: "too large, chunked", body: big, length: -1, tooBig: true},
		{name: "exactly the limit", body: big[1:], length: MaxBodyBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/wecom/callback", io.NopCloser(strings.NewReader(tc.body)))
			r.ContentLength = tc.length
			got, err := readBody(httptest.NewRecorder(), r)
			var mbe *http.MaxBytesError
			switch {
			case tc.tooBig:
				if !errors.As(err, &mbe) {
					t.Fatalf("err %v, want a MaxBytesError", err)
				}
			case tc.err:
				if err == nil {
					t.Fatalf("read %q, want an error", got)
				}
			case err != nil || string(got) != tc.body:
				t.Fatalf("read %d bytes, err %v; want the %d-byte body", len(got), err, len(tc.body))
			}
		})
	}
}
