package jsonshape

import (
	"slices"
	"testing"
)

func TestPaths(t *testing.T) {
	got, err := Paths([]byte(`{"b":{"c":1,"d":[{"e":true},{"e":false,"f":null}]},"a":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".a", ".b.c", ".b.d[].e", ".b.d[].f"}
	if !slices.Equal(got, want) {
		t.Errorf("Paths = %q, want %q", got, want)
	}
	if _, err := Paths([]byte(`{"a":`)); err == nil {
		t.Error("a cut-off document has a shape")
	}
}
