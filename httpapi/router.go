package httpapi

import (
	"net/http"
	"strings"
)

// router matches the API's POST routes (/db/{env}, /req/{env},
// /watch/{env}) itself and hands everything else to the mux. The mux
// would give the same answer, but spends a lookup in its routing tree and
// an allocation for the wildcard's value on every request.
type router struct {
	mux    *http.ServeMux
	routes []route
}

// route is one POST route: a path prefix followed by one segment, the
// namespace, as the mux's pattern "{prefix}{env}" matches it.
type route struct {
	prefix, pattern string
	h               apiRoute
}

// apiRoute serves a request for namespace ns.
type apiRoute func(w http.ResponseWriter, r *http.Request, ns string)

// byPath serves a request the mux matched, the namespace being its
// {env} wildcard.
func (h apiRoute) byPath(w http.ResponseWriter, r *http.Request) { h(w, r, r.PathValue("env")) }

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		p := r.URL.EscapedPath()
		for _, rr := range rt.routes {
			ns, ok := strings.CutPrefix(p, rr.prefix)
			// An escaped or further segment is the mux's to decode or
			// refuse, as before.
			if ok && ns != "" && strings.IndexByte(ns, '/') < 0 && strings.IndexByte(ns, '%') < 0 {
				r.Pattern = rr.pattern // the metrics' route label, as the mux sets it
				rr.h(w, r, ns)
				return
			}
		}
	}
	rt.mux.ServeHTTP(w, r)
}
