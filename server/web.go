package server

import (
	"bytes"
	"embed"
	"errors"
	"net/http"
	"path"
	"strconv"
)

// The page's files (SVC-11), embedded: no CDN, no build step.
//
//go:embed web/index.html web/app.js web/style.css
var webFiles embed.FS

// csp allows this server's own scripts, styles and API only: no inline
// script, no other origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var webTypes = map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

// pageMaxNodesMark is the placeholder of index.html that the server
// replaces with Config.PageMaxNodes (a meta element: the CSP forbids
// inline script, and the page reads its settings from there).
const pageMaxNodesMark = "{{page_max_nodes}}"

// pageIndex returns index.html with the page's settings filled in.
func pageIndex(maxNodes int) ([]byte, error) {
	b, err := webFiles.ReadFile("web/index.html")
	if err != nil || !bytes.Contains(b, []byte(pageMaxNodesMark)) {
		return nil, errors.New("server: the embedded index.html lacks its settings mark (a build defect)")
	}
	return bytes.ReplaceAll(b, []byte(pageMaxNodesMark), []byte(strconv.Itoa(maxNodes))), nil
}

// servePage answers the page's routes with index.html; the script reads
// the path and draws the list, a workflow, an entry or the ledger.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	webHeaders(w, "web/index.html")
	w.Write(s.index)
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
	webHeaders(w, name)
	w.Write(b)
}

func webHeaders(w http.ResponseWriter, name string) {
	h := w.Header()
	h.Set("Content-Type", webTypes[path.Ext(name)])
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
