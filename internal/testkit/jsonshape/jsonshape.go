// Package jsonshape tells the shape of a JSON document: the paths of its
// leaf fields, without their values. Tests compare two documents' shapes,
// e.g. the event an emulator sends against the one AWS documents.
package jsonshape

import (
	"encoding/json"
	"slices"
)

// Paths lists the paths of a JSON document's leaf fields, sorted and
// without repeats: ".a.b" for a field in an object, "[]" for an element of
// an array (so every element of a list has the same path).
func Paths(b []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(prefix+"."+k, c)
			}
		case []any:
			for _, c := range v {
				walk(prefix+"[]", c)
			}
		default:
			out = append(out, prefix)
		}
	}
	walk("", v)
	slices.Sort(out)
	return slices.Compact(out), nil
}
