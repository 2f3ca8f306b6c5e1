package poster

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/wecombot/wecombot/bot/poster/postertest"
	"github.com/wecombot/wecombot/scenarios"
)

// wecomQR stands in for the picture at WeCom's qr_code URL: a QR code of
// the member's contact-me link.
func wecomQR(t *testing.T, content string) image.Image {
	t.Helper()
	raw, err := qrcode.Encode(content, qrcode.Medium, 430)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func background(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(60 + y*100/h), 90, 70, 255})
		}
	}
	return img
}

// decodeQR reads the QR code in img's box (the whole image when box is empty).
func decodeQR(t *testing.T, img image.Image, box image.Rectangle) string {
	t.Helper()
	if !box.Empty() {
		img = img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(box)
	}
	text, err := postertest.DecodeQR(img)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestRenderPoster: the PNG has the background's size, her name is drawn,
// and the QR code on it decodes to her contact-me code.
func TestRenderPoster(t *testing.T) {
	t.Parallel()
	const code = "https://work.weixin.qq.com/ca/cawcde1a2b3c4d5e6f"
	layout := scenarios.PosterLayout{Name: scenarios.PosterText{X: 375, Y: 160, Size: 48, Color: color.RGBA{255, 255, 255, 255}, Align: scenarios.AlignCenter}, QR: scenarios.PosterBox{X: 235, Y: 900, Size: 280}}
	for _, tc := range []struct {
		name string
		w, h int
	}{{"phone portrait", 750, 1334}, {"square", 1080, 1300}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := Render(background(tc.w, tc.h), layout, "小艾 Alice 超长的名字会被截断哦", wecomQR(t, code))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(raw))
			if err != nil || cfg.Width != tc.w || cfg.Height != tc.h {
				t.Fatalf("PNG %dx%d (%v), want %dx%d", cfg.Width, cfg.Height, err, tc.w, tc.h)
			}
			img, _ := png.Decode(bytes.NewReader(raw))
			if got := decodeQR(t, img, image.Rect(200, 860, 550, 1220)); got != code {
				t.Errorf("QR decodes to %q, want %q", got, code)
			}
			if got := decodeQR(t, img, image.Rectangle{}); got != code {
				t.Errorf("whole poster's QR decodes to %q, want %q", got, code)
			}
			// The name is drawn: white pixels on the band around its baseline.
			white := 0
			for y := 110; y < 175; y++ {
				for x := 0; x < tc.w; x++ {
					if r, g, b, _ := img.At(x, y).RGBA(); r > 0xf000 && g > 0xf000 && b > 0xf000 {
						white++
					}
				}
			}
			if white < 200 {
				t.Errorf("name band has %d white pixels: the name was not drawn", white)
			}
		})
	}
}

func TestLayoutCheck(t *testing.T) {
	t.Parallel()
	name := scenarios.PosterText{X: 10, Y: 60, Size: 40}
	ok := scenarios.PosterLayout{Name: name, QR: scenarios.PosterBox{X: 20, Y: 100, Size: 200}}
	if err := ok.Check(300, 400); err != nil {
		t.Fatal(err)
	}
	for what, l := range map[string]scenarios.PosterLayout{
		"qr past the right edge": {Name: name, QR: scenarios.PosterBox{X: 150, Y: 100, Size: 200}},
		"qr too small":           {Name: name, QR: scenarios.PosterBox{X: 20, Y: 100, Size: 40}},
		"qr without margin":      {Name: name, QR: scenarios.PosterBox{X: 0, Y: 100, Size: 200}},
		"name below the bottom":  {Name: scenarios.PosterText{X: 10, Y: 500, Size: 40}, QR: ok.QR},
		"name above the top":     {Name: scenarios.PosterText{X: 10, Y: 20, Size: 40}, QR: ok.QR},
	} {
		if err := l.Check(300, 400); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	bad := scenarios.PosterLayout{Name: name, QR: scenarios.PosterBox{X: 150, Y: 100, Size: 200}}
	if _, err := Render(background(300, 400), bad, "x", background(10, 10)); err == nil {
		t.Error("Render drew a layout outside its background")
	}
}
