package poster

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// maxQRCache bounds the QR pictures kept in memory (one per poster maker).
const maxQRCache = 512

// ErrNoPoster is a render asked of a scenario without referral.poster.
var ErrNoPoster = errors.New("the scenario has no referral.poster")

// Renderer draws members' posters with the scenario in force. Safe for
// concurrent use.
type Renderer struct {
	Scenario func() *scenarios.Scenario
	// Fetch downloads WeCom's qr_code picture (through the egress proxy in
	// production). Nil (the sandbox, which has no WeCom): the poster shows a
	// QR code of the qr_code URL itself, a preview.
	Fetch func(ctx context.Context, url string) ([]byte, error)

	mu sync.Mutex
	qr map[string]image.Image // qr_code URL → decoded picture
}

// Render draws p's poster as a PNG.
func (r *Renderer) Render(ctx context.Context, p bot.PosterRef) ([]byte, error) {
	sc := r.Scenario()
	if sc == nil || sc.Referral == nil || sc.Referral.Poster == nil {
		return nil, ErrNoPoster
	}
	if p.QRCode == "" {
		return nil, fmt.Errorf("poster of %s: her contact-me code is not made yet", p.Member)
	}
	qr, err := r.qrPicture(ctx, p.QRCode)
	if err != nil {
		return nil, err
	}
	ps := sc.Referral.Poster
	bg, err := ps.Background()
	if err != nil {
		return nil, err
	}
	return Render(bg, ps.Layout, p.Name, qr)
}

// Media renders a poster for the media library (bot/media Library.Render).
func (r *Renderer) Media(ctx context.Context, ref *bot.MediaRef) ([]byte, error) {
	if ref.Poster == nil {
		return nil, fmt.Errorf("%s is not a poster", ref.Source)
	}
	return r.Render(ctx, *ref.Poster)
}

func (r *Renderer) qrPicture(ctx context.Context, url string) (image.Image, error) {
	r.mu.Lock()
	img, ok := r.qr[url]
	r.mu.Unlock()
	if ok {
		return img, nil
	}
	var raw []byte
	var err error
	if r.Fetch == nil {
		raw, err = qrcode.Encode(url, qrcode.Medium, 430)
	} else {
		raw, err = r.Fetch(ctx, url)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch her contact-me code's picture: %w", err)
	}
	if img, err = Decode(raw); err != nil {
		return nil, fmt.Errorf("her contact-me code's picture: %w", err)
	}
	r.mu.Lock()
	if r.qr == nil || len(r.qr) >= maxQRCache {
		r.qr = map[string]image.Image{}
	}
	r.qr[url] = img
	r.mu.Unlock()
	return img, nil
}
