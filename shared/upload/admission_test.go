package upload_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/flowgate/flowgate/shared/upload"
)

// admissionLog records what the service asks and tells its Admission.
type admissionLog struct {
	refuse error
	asked  []upload.State
	told   []string
}

func (a *admissionLog) Admit(ctx context.Context, info upload.Info, st upload.State) (func(bool, bool), error) {
	a.asked = append(a.asked, st)
	if a.refuse != nil {
		return nil, a.refuse
	}
	return func(taken, ready bool) { a.told = append(a.told, fmt.Sprint(taken, ready)) }, nil
}

// TestAdmission: the service asks its Admission before each chunk with the
// upload's state, tells it how the chunk went, and a refusal is Put's answer
// and stores nothing.
func TestAdmission(t *testing.T) {
	e := newSvcEnv(t)
	ctx := context.Background()
	adm := &admissionLog{}
	e.svc.Admission = adm
	in := svcInfo("admitted", 20, 10)
	chunk := make([]byte, 10)

	if _, err := e.svc.Put(ctx, in, 1, svcBody(chunk)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Put(ctx, in, 2, svcBody(chunk[:3])); err == nil {
		t.Fatal("a short chunk was taken")
	}
	if ready, err := e.svc.Put(ctx, in, 2, svcBody(chunk)); err != nil || !ready {
		t.Fatalf("last chunk: ready %v, %v", ready, err)
	}
	if _, err := e.svc.Put(ctx, in, 1, svcBody(chunk)); err != nil { // a late duplicate
		t.Fatal(err)
	}
	wantAsked := []upload.State{upload.StateUnknown, upload.StateReceiving, upload.StateReceiving, upload.StateReady}
	wantTold := []string{"true false", "false false", "true true", "true false"}
	if fmt.Sprint(adm.asked) != fmt.Sprint(wantAsked) || fmt.Sprint(adm.told) != fmt.Sprint(wantTold) {
		t.Fatalf("asked %v, told %v; want %v, %v", adm.asked, adm.told, wantAsked, wantTold)
	}

	full := errors.New("full")
	e.svc.Admission = &admissionLog{refuse: full}
	other := svcInfo("refused", 20, 10)
	if _, err := e.svc.Put(ctx, other, 1, svcBody(chunk)); !errors.Is(err, full) {
		t.Fatalf("refused chunk: %v, want the Admission's error", err)
	}
	if _, err := e.ledger.Get(ctx, other.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("a refused upload has a record: %v", err)
	}
	if _, err := os.Stat(e.stagingPath(other.Key)); !os.IsNotExist(err) {
		t.Fatalf("a refused chunk left bytes: %v", err)
	}
}
