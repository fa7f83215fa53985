package server

import (
	"embed"
	"net/http"
	"path"
)

// The page's files (SVC-11), embedded: no CDN, no build step.
//
//go:embed web/index.html web/app.js web/style.css
var webFiles embed.FS

// csp allows this server's own scripts, styles and API only: no inline
// script, no other origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var webTypes = map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

// servePage answers the page's routes with index.html; the script reads
// the path and draws the list, a workflow, an entry or the ledger.
func servePage(w http.ResponseWriter, r *http.Request) {
	serveWebFile(w, "web/index.html")
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "app.js" && name != "style.css" {
		http.NotFound(w, r)
		return
	}
	serveWebFile(w, "web/"+name)
}

func serveWebFile(w http.ResponseWriter, name string) {
	b, err := webFiles.ReadFile(name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", webTypes[path.Ext(name)])
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.Write(b)
}
