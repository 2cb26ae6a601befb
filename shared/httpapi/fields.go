// Reading the protocol's fields from a query string, and a request's media type.

package httpapi

import (
	"mime"
	"net/http"
	"net/url"

	"github.com/flowgate/flowgate/shared/protocol"
)

// query reads the fields of a request that carries them in its query string
// (the test GET, the status GET, an octet POST), and which library sent them.
func (w *statusWriter) query(r *http.Request) (protocol.Dialect, protocol.Fields, error) {
	q := r.URL.Query()
	fields := queryFields(q)
	d, err := w.detect(mapKeys(q), fields)
	return d, fields, err
}

// mapKeys lists the names of a query string's fields.
func mapKeys(q url.Values) []string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	return names
}

// queryFields looks fields up in a query string. A field given twice is
// treated as absent-and-wrong by taking neither: flow.js never repeats one.
func queryFields(q url.Values) protocol.Fields {
	return func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) != 1 {
			return "", false
		}
		return v[0], true
	}
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}
