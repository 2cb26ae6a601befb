package httpapi

import (
	"net/http"

	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// What the two client libraries do with an answer, read from their sources
// (flow.js 2.14.1's FlowChunk.status and testHandler, Resumable.js 1.1.0's
// ResumableChunk.status and test):
//
//	                 flow.js 2.14.1                        Resumable.js 1.1.0
//	chunk taken      200, 201, 202                         200, 201
//	gives up         404, 413, 415, 500, 501               400, 404, 415, 500, 501
//	                 (permanentErrors)                     (permanentErrors)
//	anything else    retried maxChunkRetries times         retried maxChunkRetries times
//	                 (default 0: the file fails at once)   (default 100)
//	                 after chunkRetryInterval (default     after chunkRetryInterval (default
//	                 none: at once)                        none: at once)
//	test GET         200-202: present; a permanent error   200, 201: present; anything
//	                 fails the file; anything else: send   else, errors too: send
//
// They disagree on two statuses only: 400 (Resumable.js gives up, flow.js
// retries) and 413 (flow.js gives up, Resumable.js retries). So:
//
//   - a condition that a retry may mend (storage down, a body cut short or
//     stalled, too many uploads at once) is answered with a status both
//     retry: 503, 408, 429; never 400 or 413;
//   - a refusal that no retry can mend keeps its status in the API for
//     flow.js (400 for a malformed request, 409 for a conflicting upload, 413
//     for a limit) but is 400 for Resumable.js, the one status among its
//     permanent errors that says "your request": otherwise Resumable.js would
//     send the same refused chunk 100 times, at once, before failing the
//     file. Only 409 and 413 change; the JSON error says what was refused.
//
// 401 stays 401 for both (its WWW-Authenticate header matters, and a page
// whose `headers` option is a function may send a fresh token on a retry).

// statusOf is the status a refusal of kind has in the API, before
// answerStatus adapts it to the library that sent the request. A chunk
// damaged on the way (Mismatch) gets 422, which neither library counts among
// its permanent errors: both send it again, which is what it needs. A kind
// this table does not know is answered as malformed input.
func statusOf(kind upload.Kind) int {
	switch kind {
	case upload.BadInput:
		return http.StatusBadRequest
	case upload.TooLarge:
		return http.StatusRequestEntityTooLarge
	case upload.Unsupported:
		return http.StatusUnsupportedMediaType
	case upload.Mismatch:
		return http.StatusUnprocessableEntity
	case upload.Conflict:
		return http.StatusConflict
	case upload.Interrupted:
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// answerStatus is the status that tells library what status means in the
// API.
func answerStatus(library protocol.Library, status int) int {
	if library == protocol.ResumableJS {
		switch status {
		case http.StatusConflict, http.StatusRequestEntityTooLarge:
			return http.StatusBadRequest
		}
	}
	return status
}
