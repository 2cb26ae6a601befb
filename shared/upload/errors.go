// The Service's errors: storage unavailable, and the client's mistakes in the
// ledger's answer or in the chunk's body.

package upload

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrUnavailable marks a failure of storage or the ledger: not the client's
// fault, worth a retry. The HTTP layer answers it with 503, which flow.js
// retries instead of failing the file.
var ErrUnavailable = errors.New("storage unavailable")

func ledgerErr(err error) error {
	if errors.Is(err, ErrConflict) {
		return &InputError{Status: http.StatusConflict, Msg: ErrConflict.Error()}
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return fmt.Errorf("%w: ledger: %w", ErrUnavailable, err)
}

func finish(b Body) error {
	if b.Finish == nil {
		return nil
	}
	if err := b.Finish(); err != nil {
		return bodyErr(err)
	}
	return nil
}

// bodyErr turns a problem reading the request into the answer for it. An
// *InputError or a body-size limit from the HTTP layer keeps its meaning.
func bodyErr(err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &InputError{Status: http.StatusRequestEntityTooLarge, Msg: "request body is over the size limit"}
	}
	if errors.Is(err, errTooLong) || errors.Is(err, errTooShort) {
		return &InputError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	// A body cut off is most likely a network problem: 408, which flow.js
	// and Resumable.js both retry (Resumable.js gives up on a 400).
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &InputError{Status: http.StatusRequestTimeout, Msg: "the request body ended before the chunk did (cut off or malformed)"}
	}
	return &InputError{Status: http.StatusBadRequest, Msg: "could not read the chunk: " + err.Error()}
}

var (
	errTooShort = errors.New("chunk body is shorter than flowCurrentChunkSize")
	errTooLong  = errors.New("chunk body is longer than flowCurrentChunkSize")
)
