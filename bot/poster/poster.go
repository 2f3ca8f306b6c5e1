// Package poster renders 任务宝 posters: a member's personal share image —
// the scenario's background picture, her name, and her personal "contact
// me" QR code (the referral code WeCom made for her with add_contact_way),
// so a friend who scans it is credited to her.
//
// WeCom hands out a contact-me code as a picture URL (qr_code); the poster
// draws that picture, scaled into the layout's box on a white quiet zone,
// so what friends scan is exactly WeCom's code.
package poster

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	_ "image/jpeg" // backgrounds and WeCom's QR pictures may be JPEG
	"image/png"

	"golang.org/x/image/draw"

	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// Decode decodes a background or QR picture (PNG or JPEG).
func Decode(data []byte) (image.Image, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("poster: not a PNG or JPEG picture: %w", err)
	}
	return img, nil
}

// Render draws the poster as a PNG the size of background.
func Render(background image.Image, l scenarios.PosterLayout, name string, qr image.Image) ([]byte, error) {
	b := background.Bounds()
	if err := l.Check(b.Dx(), b.Dy()); err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	stddraw.Draw(img, img.Bounds(), background, b.Min, stddraw.Src)

	q := l.QR
	const quiet = scenarios.PosterQuiet
	stddraw.Draw(img, image.Rect(q.X-quiet, q.Y-quiet, q.X+q.Size+quiet, q.Y+q.Size+quiet), image.White, image.Point{}, stddraw.Src)
	draw.CatmullRom.Scale(img, image.Rect(q.X, q.Y, q.X+q.Size, q.Y+q.Size), qr, qr.Bounds(), draw.Over, nil)

	faces, err := checkin.NewFaces(float64(l.Name.Size), true)
	if err != nil {
		return nil, fmt.Errorf("poster fonts: %w", err)
	}
	max := l.Name.MaxChars
	if max <= 0 {
		max = 12
	}
	if r := []rune(name); len(r) > max {
		name = string(r[:max-1]) + "…"
	}
	col := l.Name.Color
	if col.A == 0 {
		col = color.RGBA{0x2d, 0x2a, 0x24, 0xff}
	}
	x := l.Name.X
	if l.Name.Align == scenarios.AlignCenter {
		x -= faces.Width(name).Round() / 2
	}
	faces.Draw(img, col, name, x, l.Name.Y)

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
