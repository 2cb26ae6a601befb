// Package ledgertest drives an upload.Ledger the way the upload service
// does, for the ledgers' own tests, which count chunks without storing any.
package ledgertest

import (
	"context"
	"errors"

	"github.com/flowgate/flowgate/shared/upload"
)

// Count counts chunk n as the service does, without storing bytes: Lookup,
// then Count in the slot it gave, following the upload to its current
// generation when Count says it changed (where the service would move the
// chunk). A chunk that reads as counted, or of an upload past receiving, is
// not counted again.
func Count(ctx context.Context, l upload.Ledger, info upload.Info, n int) (bool, error) {
	slot, err := l.Lookup(ctx, info, n)
	if err != nil {
		return false, err
	}
	return CountIn(ctx, l, info, n, slot)
}

// CountIn is Count from a slot Lookup gave earlier (a chunk stored under it
// while the ledger may have moved on).
func CountIn(ctx context.Context, l upload.Ledger, info upload.Info, n int, slot upload.Slot) (bool, error) {
	for range 4 {
		if slot.Counted || slot.State.PastReceiving() {
			return false, nil
		}
		ready, err := l.Count(ctx, info, n, slot)
		var stale *upload.StaleSlotError
		if !errors.As(err, &stale) {
			return ready, err
		}
		slot = stale.Current
	}
	return false, errors.New("ledgertest: the upload's generation keeps changing")
}

// Lookup is l.Lookup for tests that look only at the state and whether the
// chunk reads as counted.
func Lookup(ctx context.Context, l upload.Ledger, info upload.Info, n int) (upload.State, bool, error) {
	slot, err := l.Lookup(ctx, info, n)
	return slot.State, slot.Counted, err
}
