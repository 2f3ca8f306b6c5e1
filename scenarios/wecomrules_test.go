package scenarios

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// notify absent means notify (WeCom's default); notify: false is kept.
func TestGroupWelcomeNotifyDefault(t *testing.T) {
	sc, err := LoadBytes("s.yaml", []byte(`
brand: {name: 山茶集}
group_welcome:
  default:
    text: hi
  templates:
    - name: quiet
      notify: false
      text: hello
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.GroupWelcomes) != 2 || !sc.GroupWelcomes[0].Notify || sc.GroupWelcomes[1].Notify {
		t.Fatalf("notify = %v, %v; want true (absent), false", sc.GroupWelcomes[0].Notify, sc.GroupWelcomes[1].Notify)
	}
}

func writeScenario(t *testing.T, yaml string, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte("brand: {name: 山茶集}\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Attachments name files beside the scenario (or https URLs); the compiled
// attachment carries a reference with the content hash for the media library.
func TestMediaFilesAndURLs(t *testing.T) {
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)
	dir := writeScenario(t, `
welcome:
  default:
    text: hi
    attachments:
      - image: {file: images/menu.png}
      - video: {url: "https://cdn.example.com/v/intro.mp4"}
      - file: {file: docs/price.pdf}
      - miniprogram: {title: 点单, appid: wx1, page: pages/i, pic_file: images/menu.png}
`, map[string][]byte{"images/menu.png": png, "docs/price.pdf": []byte("%PDF-1.4 price list")})
	sc, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	atts := sc.DefaultWelcome.Attachments
	if len(atts) != 4 {
		t.Fatalf("%d attachments", len(atts))
	}
	img, _ := atts[0].Render(TemplateData{})
	if img.Media == nil || !img.Media.Permanent || img.Media.Kind != "image" || img.Media.Name != "menu.png" ||
		img.Media.Source != filepath.Join(dir, "images/menu.png") || len(img.Media.SHA256) != 64 {
		t.Errorf("image ref %+v", img.Media)
	}
	video, _ := atts[1].Render(TemplateData{})
	if video.Media == nil || !video.Media.URL || video.Media.Name != "intro.mp4" || video.Media.Kind != "video" || video.Media.Permanent {
		t.Errorf("video ref %+v", video.Media)
	}
	mini, _ := atts[3].Render(TemplateData{})
	if mini.Media == nil || mini.Media.Permanent || mini.Media.Kind != "image" {
		t.Errorf("mini-program cover ref %+v (a pic_media_id is temporary media)", mini.Media)
	}
	if len(sc.Media) != 4 || len(sc.Warnings) != 0 {
		t.Errorf("scenario media %d, warnings %v", len(sc.Media), sc.Warnings)
	}
	data, err := ReadMedia(img.Media.Source)
	if err != nil || !bytes.Equal(data, png) {
		t.Errorf("ReadMedia: %v", err)
	}
}

func TestMediaProblemsAndWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		files      map[string][]byte
		want       string
	}{
		{"missing file", `
welcome:
  default:
    text: hi
    attachments:
      - image: {file: images/nope.png}
`, nil, "s.yaml:7: welcome.default.attachments[0].image.file: cannot read image file"},
		{"oversized video", `
welcome:
  default:
    text: hi
    attachments:
      - video: {file: big.mp4}
`, map[string][]byte{"big.mp4": make([]byte, MaxVideoBytes+1)}, "s.yaml:7: welcome.default.attachments[0].video.file: big.mp4 is 10.0 MB; WeCom allows video files up to 10 MB"},
		{"tiny file", `
welcome:
  default:
    text: hi
    attachments:
      - file: {file: a.txt}
`, map[string][]byte{"a.txt": []byte("abc")}, "5 bytes or less"},
		{"two ways", `
welcome:
  default:
    text: hi
    attachments:
      - image: {file: a.png, url: "https://x.example/a.png"}
`, map[string][]byte{"a.png": bytes.Repeat([]byte{1}, 10)}, "needs exactly one of media_id, pic_url, file, url"},
		{"http url", `
welcome:
  default:
    text: hi
    attachments:
      - file: {url: "http://x.example/a.pdf"}
`, nil, "want an https:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeScenario(t, tc.yaml, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A raw media_id still works, with a warning naming file:line.
	sc, err := Load(writeScenario(t, `
welcome:
  default:
    text: hi
    attachments:
      - video: {media_id: 3a8asd892asd8asd}
`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Warnings) != 1 || !strings.Contains(sc.Warnings[0].Error(), "s.yaml:7: welcome.default.attachments[0].video.media_id: a media_id from media/upload expires 3 days") {
		t.Errorf("warnings %v", sc.Warnings)
	}
}

// Texts longer than their surface allows load, with a warning naming file:line.
func TestTextLimitWarnings(t *testing.T) {
	long := strings.Repeat("山茶拿铁今天第二杯半价。", 100)
	sc, err := LoadBytes("s.yaml", []byte("brand: {name: 山茶集}\ngroup_welcome:\n  default:\n    text: "+long+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Warnings) != 1 || !strings.Contains(sc.Warnings[0].Error(), "s.yaml:4: group_welcome.default.text: 3600 bytes; WeCom allows 3000") {
		t.Errorf("warnings %v", sc.Warnings)
	}
}
