package receiver

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The partner portal: static files embedded in the binary, no build step and nothing
// from a CDN, driving the partner API from the browser with the partner's API key.
const pathPortal = "/portal"

//go:embed portal
var portalFiles embed.FS

// portalCSP allows the page's own script and style and calls to this receiver only: no
// inline script, no other origin, no framing.
const portalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

var portalHandler = func() http.Handler {
	sub, err := fs.Sub(portalFiles, "portal")
	if err != nil {
		panic(err)
	}
	return http.StripPrefix(pathPortal+"/", http.FileServerFS(sub))
}()

func (s *Server) handlePortal(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rej := reject(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed", "use GET")
		rej.allow = http.MethodGet
		return rej
	}
	if r.URL.Path == pathPortal {
		http.Redirect(w, r, pathPortal+"/", http.StatusMovedPermanently)
		rec.outcome, rec.status = outcomeAnswered, http.StatusMovedPermanently
		return nil
	}
	h := w.Header()
	h.Set("Content-Security-Policy", portalCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	portalHandler.ServeHTTP(w, r)
	return nil
}

func portalRoute(path string) bool {
	return path == pathPortal || strings.HasPrefix(path, pathPortal+"/")
}
