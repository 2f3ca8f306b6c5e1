package fakewecom

import (
	"fmt"
	"net/http"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// WeCom answers add_contact_way with qr_code, the URL of a picture of the
// contact-me code. By default the fake's qr_code is a placeholder URL; with
// ServeQRCodes it is a picture the fake serves (GET /qr/<config_id>.png), a
// real QR code of ContactMeURL(config_id), so tests that draw the picture
// (任务宝 posters) can decode what they drew.

// ServeQRCodes makes add_contact_way's qr_code a fetchable QR picture.
func (s *Server) ServeQRCodes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveQR = true
}

// ContactMeURL is what the picture of contact way configID encodes.
func ContactMeURL(configID string) string { return "https://work.weixin.qq.com/ca/cawcde" + configID }

func (s *Server) qrCodeURLLocked(configID string) string {
	if !s.serveQR {
		return "https://wework.example/qr/" + configID
	}
	return s.srv.URL + "/qr/" + configID + ".png"
}

// serveQRPicture answers GET /qr/<config_id>.png.
func (s *Server) serveQRPicture(w http.ResponseWriter, r *http.Request) bool {
	id, ok := strings.CutPrefix(r.URL.Path, "/qr/")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, ".png")
	if !ok || id == "" {
		http.NotFound(w, r)
		return true
	}
	png, err := qrcode.Encode(ContactMeURL(id), qrcode.Medium, 430)
	if err != nil {
		http.Error(w, fmt.Sprint(err), http.StatusInternalServerError)
		return true
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(png)
	return true
}
