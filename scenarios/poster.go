package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // poster backgrounds may be JPEG
	_ "image/png"
	"strconv"
	"strings"
)

// The 任务宝 poster (referral.poster): a personal share image per member —
// the scenario's background, her name and her referral contact-me QR code.
// bot/poster renders it; the engine sends it through 微信客服.

// Poster is the compiled referral.poster section.
type Poster struct {
	Pos
	// Keywords (微信客服) send her poster as an image, with Text.
	Keywords []string
	Text     *Template
	// BackgroundData is the picture's file (PNG or JPEG, checked to decode
	// at load), BackgroundWidth × BackgroundHeight its size, and
	// BackgroundSource where it was read. The file is kept, not the decoded
	// picture: a 1080×900 background is 3.9 MB decoded for the life of the
	// process, and a poster is drawn once per member who asks (Background).
	BackgroundData                    []byte
	BackgroundWidth, BackgroundHeight int
	BackgroundSource                  string
	Layout                            PosterLayout
}

// Background decodes the background picture.
func (p *Poster) Background() (image.Image, error) {
	img, _, err := image.Decode(bytes.NewReader(p.BackgroundData))
	if err != nil {
		return nil, fmt.Errorf("poster background %s: %w", p.BackgroundSource, err)
	}
	return img, nil
}

// IsKeyword reports whether text asks for the poster.
func (p *Poster) IsKeyword(text string) bool {
	for _, k := range p.Keywords {
		if strings.Contains(text, k) {
			return true
		}
	}
	return false
}

// Align values of the poster's name.
const (
	AlignLeft   = "left"
	AlignCenter = "center"
)

// PosterText is where her name goes: baseline-left at (X, Y), or centred on
// X with Align center, Size pixels high.
type PosterText struct {
	X, Y, Size int
	Color      color.RGBA
	Align      string
	// MaxChars cuts a longer name with … (default 12).
	MaxChars int
}

// PosterBox is the QR code's square: top-left (X, Y), Size pixels a side.
type PosterBox struct{ X, Y, Size int }

// PosterLayout places the member's name and code on the background.
type PosterLayout struct {
	Name PosterText
	QR   PosterBox
}

// PosterQuiet is the white margin drawn around the code; scanners need one.
const PosterQuiet = 12

// ErrPosterLayout is a layout that doesn't fit its background.
var ErrPosterLayout = errors.New("poster layout outside the background")

// Check reports whether l fits a background of w×h pixels.
func (l PosterLayout) Check(w, h int) error {
	q := l.QR
	if q.Size < 80 || q.X-PosterQuiet < 0 || q.Y-PosterQuiet < 0 || q.X+q.Size+PosterQuiet > w || q.Y+q.Size+PosterQuiet > h {
		return fmt.Errorf("%w: qr {x: %d, y: %d, size: %d} and its %d px white margin must lie inside the %dx%d background, size at least 80", ErrPosterLayout, q.X, q.Y, q.Size, PosterQuiet, w, h)
	}
	n := l.Name
	if n.Size < 8 || n.X < 0 || n.X > w || n.Y-n.Size < 0 || n.Y > h {
		return fmt.Errorf("%w: name {x: %d, y: %d, size: %d} must lie inside the %dx%d background (y is the baseline), size at least 8", ErrPosterLayout, n.X, n.Y, n.Size, w, h)
	}
	return nil
}

type posterSpec struct {
	Pos
	Keywords   []string        `yaml:"keywords"`
	Text       string          `yaml:"text"`
	Background *imageSpec      `yaml:"background"`
	Name       *posterTextSpec `yaml:"name"`
	QR         *posterBoxSpec  `yaml:"qr"`
}

type posterTextSpec struct {
	Pos
	X        int    `yaml:"x"`
	Y        int    `yaml:"y"`
	Size     int    `yaml:"size"`
	Color    string `yaml:"color"`
	Align    string `yaml:"align"`
	MaxChars int    `yaml:"max_chars"`
}

type posterBoxSpec struct {
	Pos
	X    int `yaml:"x"`
	Y    int `yaml:"y"`
	Size int `yaml:"size"`
}

func parseColor(s string) (color.RGBA, bool) {
	hex, ok := strings.CutPrefix(s, "#")
	if !ok || len(hex) != 6 {
		return color.RGBA{}, false
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return color.RGBA{}, false
	}
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 0xff}, true
}

func (c *compiler) poster(s *posterSpec) *Poster {
	if s == nil {
		return nil
	}
	p := &Poster{Pos: s.Pos, Keywords: c.keywordList(s.Pos, "keywords", s.Keywords), Text: c.template(s.Pos, "text", s.Text)}
	if len(p.Keywords) == 0 {
		c.ps.at(s.Pos, "keywords", "required: the words (e.g. 海报) a member sends in 微信客服 to get her poster")
	}
	switch {
	case s.Background == nil || strings.TrimSpace(s.Background.File) == "":
		c.ps.at(s.Pos, "background", "required: {file: images/poster.png}, a PNG or JPEG beside this file")
	case s.Background.URL != "" || s.Background.MediaID != "" || s.Background.PicURL != "":
		c.ps.at(s.Background.Pos, "", "a poster background is a file: {file: images/poster.png}")
	default:
		bg := s.Background
		src, data, err := readBeside(c.beside(bg.Pos.File), bg.File, "poster background")
		if err != nil {
			c.ps.at(bg.Pos, "file", "%v", err)
			break
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			c.ps.at(bg.Pos, "file", "%s is not a PNG or JPEG picture", bg.File)
			break
		}
		b := img.Bounds()
		p.BackgroundData, p.BackgroundWidth, p.BackgroundHeight, p.BackgroundSource = data, b.Dx(), b.Dy(), src
	}
	if s.Name == nil {
		c.ps.at(s.Pos, "name", "required: where her name goes, {x, y, size}")
	} else {
		n := s.Name
		p.Layout.Name = PosterText{X: n.X, Y: n.Y, Size: n.Size, Align: n.Align, MaxChars: n.MaxChars, Color: color.RGBA{0x2d, 0x2a, 0x24, 0xff}}
		if n.Color != "" {
			col, ok := parseColor(n.Color)
			if !ok {
				c.ps.at(n.Pos, "color", "%q: want #rrggbb", n.Color)
			}
			p.Layout.Name.Color = col
		}
		switch n.Align {
		case "":
			p.Layout.Name.Align = AlignLeft
		case AlignLeft, AlignCenter:
		default:
			c.ps.at(n.Pos, "align", "%q: left or center", n.Align)
		}
		if n.MaxChars < 0 {
			c.ps.at(n.Pos, "max_chars", "must not be negative")
		}
	}
	if s.QR == nil {
		c.ps.at(s.Pos, "qr", "required: the QR code's square, {x, y, size}")
	} else {
		p.Layout.QR = PosterBox{X: s.QR.X, Y: s.QR.Y, Size: s.QR.Size}
	}
	if p.BackgroundData != nil && s.Name != nil && s.QR != nil {
		if err := p.Layout.Check(p.BackgroundWidth, p.BackgroundHeight); err != nil {
			at := s.QR.Pos
			if !strings.Contains(err.Error(), "qr {") {
				at = s.Name.Pos
			}
			c.ps.at(at, "", "%v", err)
		}
	}
	return p
}
