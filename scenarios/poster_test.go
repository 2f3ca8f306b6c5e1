package scenarios

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// posterDir writes a 400×600 PNG background and returns the directory.
func posterDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "images", "bg.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewRGBA(image.Rect(0, 0, 400, 600))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "not.png"), []byte("this is not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPosterSection(t *testing.T) {
	t.Parallel()
	dir := posterDir(t)
	const head = `brand: {name: 测试}
referral:
  keywords: [邀请]
  poster:
    keywords: [海报]
    text: "{{.Name}} 的海报"
`
	cases := []struct{ name, yaml, want string }{
		{"ok", `    background: {file: images/bg.png}
    name: {x: 200, y: 100, size: 40, color: "#ffffff", align: center}
    qr: {x: 100, y: 300, size: 200}
`, ""},
		{"missing background file", `    background: {file: images/nope.png} #<-
    name: {x: 200, y: 100, size: 40}
    qr: {x: 100, y: 300, size: 200}
`, "referral.poster.background.file: cannot read poster background"},
		{"not a picture", `    background: {file: images/not.png} #<-
    name: {x: 200, y: 100, size: 40}
    qr: {x: 100, y: 300, size: 200}
`, "images/not.png is not a PNG or JPEG picture"},
		{"qr outside", `    background: {file: images/bg.png}
    name: {x: 200, y: 100, size: 40}
    qr: {x: 250, y: 300, size: 200} #<-
`, "qr {x: 250, y: 300, size: 200} and its 12 px white margin must lie inside the 400x600 background"},
		{"name outside", `    background: {file: images/bg.png}
    name: {x: 200, y: 700, size: 40} #<-
    qr: {x: 100, y: 300, size: 200}
`, "name {x: 200, y: 700, size: 40} must lie inside the 400x600 background"},
		{"bad colour", `    background: {file: images/bg.png}
    name: {x: 200, y: 100, size: 40, color: white} #<-
    qr: {x: 100, y: 300, size: 200}
`, `referral.poster.name.color: "white": want #rrggbb`},
		{"no qr", `    background: {file: images/bg.png}
    name: {x: 200, y: 100, size: 40}
`, "referral.poster.qr: required"}, // at the poster: line (4)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := head + tc.yaml
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			sc, err := Load(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				p := sc.Referral.Poster
				if p == nil || p.BackgroundWidth != 400 || p.Layout.QR.Size != 200 || p.Layout.Name.Color.R != 0xff || !p.IsKeyword("我要海报") {
					t.Fatalf("poster %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			line := 4 // the poster: line, when no line is marked
			if strings.Contains(doc, "#<-") {
				line = markedLine(t, doc)
			}
			want := fmt.Sprintf("%s:%d: ", filepath.Base(path), line)
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want a problem at %s containing %q; got:\n%v", want, tc.want, err)
			}
		})
	}
}
