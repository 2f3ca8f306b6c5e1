package server

import (
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The dashboard is static HTML, CSS and JavaScript written by hand and
// embedded in the binary (no Node build). The page and its assets carry no
// data, so they need no token; every number on the page comes from the
// admin API, which does (the page asks for the token and keeps it in
// sessionStorage). Member-supplied text only ever reaches the page through
// textContent, never as HTML, and the Content-Security-Policy allows no
// inline script.

//go:embed dashboard
var dashboardFS embed.FS

var dashboardIndexTmpl = template.Must(template.ParseFS(dashboardFS, "dashboard/index.html"))

// dashboardCSP allows only the dashboard's own scripts, styles and API.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// preferredLang picks zh or en from Accept-Language (Chinese unless the
// browser prefers English over Chinese).
func preferredLang(accept string) string {
	type pref struct {
		tag string
		q   float64
	}
	var prefs []pref
	for _, part := range strings.Split(accept, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		prefs = append(prefs, pref{strings.ToLower(tag), q})
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	for _, p := range prefs {
		switch {
		case strings.HasPrefix(p.tag, "zh"):
			return "zh"
		case strings.HasPrefix(p.tag, "en"):
			return "en"
		}
	}
	return "zh"
}

func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", dashboardCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// dashboardIndex serves the single page at /.
func (s *Server) dashboardIndex(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_ = dashboardIndexTmpl.Execute(w, map[string]any{
		"Lang":    preferredLang(r.Header.Get("Accept-Language")),
		"Sandbox": s.o.Sandbox,
		"Token":   s.o.AdminToken != "",
		"Zone":    s.brandZone().String(),
	})
}

// dashboardAsset serves /assets/{file} from the embedded directory.
func (s *Server) dashboardAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	data, err := fs.ReadFile(dashboardFS, path.Join("dashboard", name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	setPageHeaders(w)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}
