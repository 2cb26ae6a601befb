// The Service's errors: storage unavailable, and the client's mistakes in the
// ledger's answer or in the chunk's body.

package upload

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/flowgate/flowgate/shared/exactlen"
)

// ErrUnavailable marks a failure of storage or the ledger: not the client's
// fault, worth a retry (the HTTP layer answers it with 503, which flow.js
// retries instead of failing the file).
var ErrUnavailable = errors.New("storage unavailable")

// Kind is what is wrong with a refused request.
type Kind int

const (
	// BadInput: fields that are malformed or do not add up, or a body that
	// is not the declared chunk; sending it again cannot help.
	BadInput Kind = iota + 1
	// TooLarge: over a limit (the file's size, the chunk's, their count,
	// the body's).
	TooLarge
	// Unsupported: a file of a type or name the site does not take.
	Unsupported
	// Mismatch: the chunk's bytes do not match the checksum its client sent:
	// damaged on the way, worth sending again.
	Mismatch
	// Conflict: the identifier belongs to another upload in progress, with
	// another size or chunking.
	Conflict
	// Interrupted: the body was cut off or stalled, most likely in transit:
	// worth sending again.
	Interrupted
)

// Kinds lists every Kind, for a layer that must answer each.
func Kinds() []Kind { return []Kind{BadInput, TooLarge, Unsupported, Mismatch, Conflict, Interrupted} }

func (k Kind) String() string {
	switch k {
	case BadInput:
		return "bad input"
	case TooLarge:
		return "too large"
	case Unsupported:
		return "unsupported"
	case Mismatch:
		return "checksum mismatch"
	case Conflict:
		return "conflict"
	case Interrupted:
		return "interrupted"
	}
	return "kind " + strconv.Itoa(int(k))
}

func ledgerErr(err error) error {
	if errors.Is(err, ErrConflict) {
		return &InputError{Kind: Conflict, Msg: ErrConflict.Error()}
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
// *InputError from the layer that reads the request (its body-size limit,
// a stalled body) keeps its meaning.
func bodyErr(err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	if errors.Is(err, exactlen.ErrShort) {
		return &InputError{Kind: BadInput, Msg: "chunk body is shorter than flowCurrentChunkSize"}
	}
	if errors.Is(err, exactlen.ErrLong) {
		return &InputError{Kind: BadInput, Msg: "chunk body is longer than flowCurrentChunkSize"}
	}
	// A body cut off is most likely a network problem, worth a retry.
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &InputError{Kind: Interrupted, Msg: "the request body ended before the chunk did (cut off or malformed)"}
	}
	return &InputError{Kind: BadInput, Msg: "could not read the chunk: " + err.Error()}
}
