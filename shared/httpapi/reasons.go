// What the handler reports: the Metrics it feeds and the fixed words that name
// the reason of each refusal.

package httpapi

import (
	"net/http"
	"strconv"
)

// Metrics is what the handler reports (metrics.Metrics implements it).
type Metrics interface {
	// ChunkReceived: a chunk was answered 200.
	ChunkReceived(bytes int64)
	// Rejected: a request was answered with an error status, for a reason
	// among the fixed words of reasonFor and the Reason* constants.
	Rejected(reason string, status int)
}

// Rejection reasons beyond those that follow from the status alone.
const (
	ReasonMissingToken   = "missing_token"
	ReasonInvalidToken   = "invalid_token"
	ReasonTooManyUploads = "too_many_uploads"
	ReasonBodyTooLarge   = "body_too_large"
	ReasonHeaderTooLarge = "header_too_large"
	ReasonDraining       = "draining"
)

// reasonFor names the rejection of a status when nothing more precise was
// said. The words are fixed: they become metric labels.
func reasonFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "origin_not_allowed"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestTimeout:
		return "body_timeout"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "limit_exceeded"
	case http.StatusUnsupportedMediaType:
		return "type_not_allowed"
	case http.StatusUnprocessableEntity:
		return "checksum_mismatch"
	case http.StatusTooManyRequests:
		return ReasonTooManyUploads
	case http.StatusRequestHeaderFieldsTooLarge:
		return ReasonHeaderTooLarge
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "status_" + strconv.Itoa(status)
}

// ReasonFor is reasonFor for other layers of the server (the local
// server's gate) that refuse requests before the handler sees them.
func ReasonFor(status int) string { return reasonFor(status) }
