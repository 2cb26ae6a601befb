package httpapi

import (
	"net/http"
	"testing"

	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// TestStatusOfEveryKind: each kind of refusal the upload service speaks of
// has the status the API documents, and the one Resumable.js is told (see
// answerStatus); a kind missing from the table fails here, not in a client.
func TestStatusOfEveryKind(t *testing.T) {
	want := map[upload.Kind]struct{ flow, resumable int }{
		upload.BadInput:    {http.StatusBadRequest, http.StatusBadRequest},
		upload.TooLarge:    {http.StatusRequestEntityTooLarge, http.StatusBadRequest},
		upload.Unsupported: {http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType},
		upload.Mismatch:    {http.StatusUnprocessableEntity, http.StatusUnprocessableEntity},
		upload.Conflict:    {http.StatusConflict, http.StatusBadRequest},
		upload.Interrupted: {http.StatusRequestTimeout, http.StatusRequestTimeout},
	}
	for _, k := range upload.Kinds() {
		w, ok := want[k]
		if !ok {
			t.Errorf("kind %s has no status in this test's table", k)
			continue
		}
		if got := statusOf(k); got != w.flow {
			t.Errorf("kind %s: status %d, want %d", k, got, w.flow)
		}
		if got := answerStatus(protocol.ResumableJS, statusOf(k)); got != w.resumable {
			t.Errorf("kind %s for Resumable.js: status %d, want %d", k, got, w.resumable)
		}
	}
	if len(want) != len(upload.Kinds()) {
		t.Errorf("the table has %d kinds, upload.Kinds %d", len(want), len(upload.Kinds()))
	}
	if got := statusOf(0); got != http.StatusBadRequest {
		t.Errorf("an InputError without a kind: status %d, want 400", got)
	}
}
