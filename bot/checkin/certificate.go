package checkin

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Certificate is a member's shareable check-in certificate (晒证书).
type Certificate struct {
	Title    string
	Name     string
	Campaign string
	Days     int
	// Text is the campaign's certificate text, rendered for the member.
	Text  string
	Date  string
	Brand string
}

// embeddedCJK is a GB2312 subset of WenQuanYi Micro Hei (Apache-2.0, see
// fonts/README.md): members' Chinese names and the campaign's text render
// with no font installed on the host.
//
//go:embed fonts/wqy-microhei-gb2312.ttf.gz
var embeddedCJK []byte

// CJKFontPaths are where the certificate looks for a fuller CJK font for
// characters outside the embedded subset (rare names); the first found is
// used, and characters no font has are left out.
var CJKFontPaths = []string{
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
	"/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
	"/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
	"/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
	"/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
	"/System/Library/Fonts/PingFang.ttc",
	"/System/Library/Fonts/STHeiti Medium.ttc",
}

var (
	fontsOnce sync.Once
	cjkFont   *opentype.Font
	systemCJK *opentype.Font
	latinReg  *opentype.Font
	latinBold *opentype.Font
	fontsErr  error
)

func loadFonts() {
	latinReg, fontsErr = opentype.Parse(goregular.TTF)
	if fontsErr != nil {
		return
	}
	if latinBold, fontsErr = opentype.Parse(gobold.TTF); fontsErr != nil {
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(embeddedCJK))
	if err != nil {
		fontsErr = fmt.Errorf("embedded CJK font: %w", err)
		return
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		fontsErr = fmt.Errorf("embedded CJK font: %w", err)
		return
	}
	if cjkFont, fontsErr = opentype.Parse(raw); fontsErr != nil {
		return
	}
	for _, p := range CJKFontPaths {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if f, err := opentype.Parse(raw); err == nil {
			systemCJK = f
			return
		}
		if c, err := opentype.ParseCollection(raw); err == nil && c.NumFonts() > 0 {
			if f, err := c.Font(0); err == nil {
				systemCJK = f
				return
			}
		}
	}
}

// Faces is a fallback chain of font faces for text drawn on images
// (certificates, 任务宝 posters): each rune is drawn with the first face that
// has it — Go's Latin font, the embedded CJK subset, then a system CJK font.
type Faces []font.Face

// NewFaces returns the chain at size (pixels at 72 DPI), bold or regular Latin.
func NewFaces(size float64, bold bool) (Faces, error) {
	fontsOnce.Do(loadFonts)
	if fontsErr != nil {
		return nil, fontsErr
	}
	var out Faces
	opts := &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull}
	latin := latinReg
	if bold {
		latin = latinBold
	}
	for _, f := range []*opentype.Font{latin, cjkFont, systemCJK} {
		if f == nil {
			continue
		}
		face, err := opentype.NewFace(f, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, face)
	}
	return out, nil
}

func (fs Faces) faceFor(r rune) font.Face {
	for _, f := range fs {
		if _, ok := f.GlyphAdvance(r); ok {
			return f
		}
	}
	return nil
}

// Width is s's advance in pixels (26.6 fixed point).
func (fs Faces) Width(s string) fixed.Int26_6 {
	var w fixed.Int26_6
	for _, r := range s {
		if f := fs.faceFor(r); f != nil {
			a, _ := f.GlyphAdvance(r)
			w += a
		}
	}
	return w
}

// Draw draws s with its left end at x (pixels) on baseline y; runes no
// face has are skipped.
func (fs Faces) Draw(dst draw.Image, col color.Color, s string, x, y int) {
	d := &font.Drawer{Dst: dst, Src: image.NewUniform(col), Dot: fixed.P(x, y)}
	for _, r := range s {
		f := fs.faceFor(r)
		if f == nil {
			continue
		}
		d.Face = f
		d.DrawString(string(r))
	}
}

// Center draws s centred in [0, width) on baseline y.
func (fs Faces) Center(dst draw.Image, col color.Color, s string, width, y int) {
	fs.Draw(dst, col, s, (width-fs.Width(s).Round())/2, y)
}

// Wrap breaks s into lines no wider than max pixels (by rune, which suits
// Chinese; Latin words may break mid-word).
func (fs Faces) Wrap(s string, max int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, r := range para {
			if fs.Width(line+string(r)).Round() > max && line != "" {
				lines = append(lines, line)
				line = ""
			}
			line += string(r)
		}
		lines = append(lines, line)
	}
	return lines
}

// Certificate image size (a phone-screen 3:4 portrait).
const certW, certH = 900, 1200

// PNG renders the certificate: title, member name, days, the campaign's
// text, date and brand on a framed card.
func (c *Certificate) PNG() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, certW, certH))
	cream := color.RGBA{0xfb, 0xf6, 0xe9, 0xff}
	green := color.RGBA{0x5f, 0x7f, 0x45, 0xff}
	ink := color.RGBA{0x2d, 0x2a, 0x24, 0xff}
	grey := color.RGBA{0x8a, 0x82, 0x72, 0xff}
	draw.Draw(img, img.Bounds(), image.NewUniform(cream), image.Point{}, draw.Src)
	frame := func(inset, thick int, col color.Color) {
		for _, r := range []image.Rectangle{
			image.Rect(inset, inset, certW-inset, inset+thick), image.Rect(inset, certH-inset-thick, certW-inset, certH-inset),
			image.Rect(inset, inset, inset+thick, certH-inset), image.Rect(certW-inset-thick, inset, certW-inset, certH-inset),
		} {
			draw.Draw(img, r, image.NewUniform(col), image.Point{}, draw.Src)
		}
	}
	frame(30, 8, green)
	frame(52, 2, green)

	title, err := NewFaces(52, true)
	if err != nil {
		return nil, fmt.Errorf("certificate fonts: %w", err)
	}
	big, _ := NewFaces(88, true)
	body, _ := NewFaces(34, false)
	small, _ := NewFaces(28, false)

	y := 200
	for _, l := range title.Wrap(c.Title, certW-160) {
		title.Center(img, green, l, certW, y)
		y += 70
	}
	y += 40
	small.Center(img, grey, "CERTIFICATE", certW, y)
	y += 150
	big.Center(img, ink, c.Name, certW, y)
	y += 110
	days := fmt.Sprintf("%s · %d 天 · %d DAYS", c.Campaign, c.Days, c.Days)
	body.Center(img, green, days, certW, y)
	y += 90
	for _, l := range body.Wrap(c.Text, certW-200) {
		body.Center(img, ink, l, certW, y)
		y += 52
	}
	// A seal: a ring with the day count.
	cx, cy, r := certW-200, certH-250, 90
	for py := cy - r - 6; py <= cy+r+6; py++ {
		for px := cx - r - 6; px <= cx+r+6; px++ {
			d2 := (px-cx)*(px-cx) + (py-cy)*(py-cy)
			if d2 <= (r+6)*(r+6) && d2 >= r*r {
				img.Set(px, py, color.RGBA{0xc0, 0x39, 0x2b, 0xff})
			}
		}
	}
	seal, _ := NewFaces(72, true)
	n := fmt.Sprint(c.Days)
	seal.Draw(img, color.RGBA{0xc0, 0x39, 0x2b, 0xff}, n, cx-seal.Width(n).Round()/2, cy+26)
	small.Draw(img, grey, c.Date, 110, certH-170)
	small.Draw(img, grey, c.Brand, 110, certH-125)

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
