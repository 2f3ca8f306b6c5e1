package scenarios

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/wecombot/wecombot/bot"
)

// WeCom's media limits (media/upload, media/uploadimg).
const (
	// MaxUploadImgBytes is media/uploadimg's limit (JPG/PNG): images up to
	// this size become a permanent pic_url.
	MaxUploadImgBytes = 2 << 20
	// MaxImageBytes, MaxVideoBytes and MaxFileBytes are media/upload's limits.
	MaxImageBytes = 10 << 20
	MaxVideoBytes = 10 << 20
	MaxFileBytes  = 20 << 20
	// minMediaBytes: WeCom refuses files of 5 bytes or less.
	minMediaBytes = 5
)

var mediaLimit = map[string]int{"image": MaxImageBytes, "video": MaxVideoBytes, "file": MaxFileBytes}

type mediaRole int

const (
	roleID     mediaRole = iota // a raw media_id (expires 3 days after upload)
	rolePicURL                  // a picture URL (must come from media/uploadimg)
	roleFile                    // a file beside the scenario
	roleURL                     // an https URL to fetch
)

// mediaKey is one of the mutually exclusive ways an attachment names its media.
type mediaKey struct {
	key   string
	value string
	role  mediaRole
}

// media checks that exactly one way is used and, for a file or URL, returns
// the reference the media library uploads. A file is read now: missing,
// empty or too large is a problem at file:line. picture marks an image shown
// as a picture (pic_url allowed, uploadimg preferred).
func (c *compiler) media(p Pos, kind string, picture bool, keys ...mediaKey) *bot.MediaRef {
	var set []mediaKey
	var names []string
	for _, k := range keys {
		names = append(names, k.key)
		if strings.TrimSpace(k.value) != "" {
			set = append(set, k)
		}
	}
	if len(set) != 1 {
		c.ps.at(p, "", "needs exactly one of %s", strings.Join(names, ", "))
		return nil
	}
	k := set[0]
	switch k.role {
	case roleID:
		c.ps.warn(p, k.key, "a media_id from media/upload expires 3 days after upload (\u4ec5\u4e09\u5929\u5185\u6709\u6548); name the file instead (file: images/x.png) and wecombot uploads and renews it")
		return nil
	case rolePicURL:
		return nil
	case roleURL:
		u, err := url.Parse(k.value)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			c.ps.at(p, k.key, "want an https:// URL, got %q", k.value)
			return nil
		}
		name := path.Base(u.Path)
		if name == "." || name == "/" {
			name = kind
		}
		ref := bot.MediaRef{Source: k.value, Name: name, Kind: kind, URL: true, Permanent: picture && isUploadImgName(name)}
		c.sc.Media = append(c.sc.Media, ref)
		return &ref
	}
	resolved, data, err := readBeside(c.beside(p.File), k.value, kind+" file")
	if err != nil {
		c.ps.at(p, k.key, "%v", err)
		return nil
	}
	limit := mediaLimit[kind]
	switch {
	case len(data) <= minMediaBytes:
		c.ps.at(p, k.key, "%s is %d bytes; WeCom refuses files of %d bytes or less", k.value, len(data), minMediaBytes)
		return nil
	case len(data) > limit:
		c.ps.at(p, k.key, "%s is %.1f MB; WeCom allows %s files up to %d MB", k.value, float64(len(data))/(1<<20), kind, limit>>20)
		return nil
	case kind == "video" && !strings.EqualFold(filepath.Ext(k.value), ".mp4"):
		c.ps.at(p, k.key, "%s: WeCom accepts MP4 videos only", k.value)
		return nil
	}
	sum := sha256.Sum256(data)
	ref := bot.MediaRef{Source: resolved, Name: filepath.Base(k.value), Kind: kind, SHA256: hex.EncodeToString(sum[:]),
		Permanent: picture && len(data) <= MaxUploadImgBytes && isUploadImgName(k.value)}
	if kind == "image" && !isImageName(k.value) {
		c.ps.at(p, k.key, "%s: WeCom accepts JPG and PNG images", k.value)
		return nil
	}
	c.sc.Media = append(c.sc.Media, ref)
	return &ref
}

func isUploadImgName(name string) bool { return isImageName(name) }

func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// ReadMedia reads a file the scenario attaches (MediaRef.Source of a file):
// a path, or "embedded:…" inside the binary.
func ReadMedia(source string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(source, "embedded:"); ok {
		return defaultFS.ReadFile(rest)
	}
	_, data, err := readBeside("", source, "media file")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return data, nil
}
