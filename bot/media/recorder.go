package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
)

// Recorder is an Uploader for the sandbox and simulate: it uploads nothing
// and hands out ids derived from the content and a counter, so previews
// show what production would upload, and when, deterministically.
type Recorder struct {
	mu sync.Mutex
	n  int
}

func (r *Recorder) next(data []byte) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:4]), r.n)
}

// UploadImage implements Uploader.
func (r *Recorder) UploadImage(_ context.Context, _ string, data []byte) (string, error) {
	return "https://wework.qpic.cn/wwpic/sim-" + r.next(data) + "/0", nil
}

// UploadMedia implements Uploader.
func (r *Recorder) UploadMedia(_ context.Context, kind, _ string, data []byte) (string, error) {
	return "sim-" + kind + "-" + r.next(data), nil
}
