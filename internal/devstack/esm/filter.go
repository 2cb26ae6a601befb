package esm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Pattern is an event filter pattern (Lambda FilterCriteria and EventBridge
// rules share the syntax), parsed from its JSON.
type Pattern map[string]any

// ParsePattern parses a filter pattern and checks that it uses only the
// syntax MatchPattern models, so that a pattern it cannot evaluate fails at
// load time rather than silently matching nothing.
func ParsePattern(s string) (Pattern, error) {
	var p Pattern
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("esm: filter pattern %s: %w", s, err)
	}
	if err := checkPattern(p); err != nil {
		return nil, fmt.Errorf("esm: filter pattern %s: %w", s, err)
	}
	return p, nil
}

// checkPattern walks the whole pattern (MatchPattern stops early).
func checkPattern(p map[string]any) error {
	for key, want := range p {
		switch w := want.(type) {
		case map[string]any:
			if err := checkPattern(w); err != nil {
				return err
			}
		case []any:
			for _, a := range w {
				if f, ok := a.(map[string]any); ok {
					if _, err := matchFilter(f, nil, false); err != nil {
						return err
					}
				}
			}
		default:
			return fmt.Errorf("pattern field %q: %v is neither a list nor an object", key, want)
		}
	}
	return nil
}

// MatchPattern evaluates a filter pattern on a JSON event (as decoded by
// encoding/json into map[string]any): every field of the pattern must match.
// A field's pattern is an object (matched against the event's object there)
// or a list of allowed values (strings, numbers, booleans, null) and content
// filters, any one of which may match; against an array in the event, a
// list matches if any element does. Content filters: exists (true or
// false), prefix, suffix, equals-ignore-case, anything-but (a value or a
// list of them), and numeric (=, <, <=, >, >= with a number, or two of them
// for a range). Anything else is an error, never a silent mismatch.
func MatchPattern(pattern map[string]any, event any) (bool, error) {
	ev, _ := event.(map[string]any)
	for key, want := range pattern {
		got, present := ev[key]
		switch w := want.(type) {
		case map[string]any:
			if !present {
				return false, nil
			}
			ok, err := MatchPattern(w, got)
			if err != nil || !ok {
				return false, err
			}
		case []any:
			ok, err := matchLeaf(w, got, present)
			if err != nil || !ok {
				return false, err
			}
		default:
			return false, fmt.Errorf("esm: pattern field %q: %v is neither a list nor an object", key, want)
		}
	}
	return true, nil
}

// MatchAny reports whether any of patterns matches the event; no patterns
// match everything (a mapping without filters takes every record).
func MatchAny(patterns []Pattern, event any) (bool, error) {
	if len(patterns) == 0 {
		return true, nil
	}
	for _, p := range patterns {
		ok, err := MatchPattern(p, event)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func matchLeaf(allowed []any, got any, present bool) (bool, error) {
	values := []any{got}
	if l, ok := got.([]any); ok {
		values = l // an array matches if any element does
	}
	for _, a := range allowed {
		if filter, ok := a.(map[string]any); ok {
			for _, v := range values {
				ok, err := matchFilter(filter, v, present)
				if err != nil || ok {
					return ok, err
				}
			}
			continue
		}
		if !present {
			continue
		}
		for _, v := range values {
			if reflect.DeepEqual(a, v) {
				return true, nil
			}
		}
	}
	return false, nil
}

// matchFilter evaluates one content filter ({"prefix": "x"}, ...) on a value.
func matchFilter(filter map[string]any, v any, present bool) (bool, error) {
	if len(filter) != 1 {
		return false, fmt.Errorf("esm: content filter %v: one operator per filter", filter)
	}
	for op, arg := range filter {
		switch op {
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return false, fmt.Errorf("esm: exists takes true or false, not %v", arg)
			}
			return b == present, nil
		case "prefix", "suffix", "equals-ignore-case":
			want, ok := arg.(string)
			if !ok {
				return false, fmt.Errorf("esm: %s takes a string, not %v", op, arg)
			}
			s, isStr := v.(string)
			if !present || !isStr {
				return false, nil
			}
			switch op {
			case "prefix":
				return strings.HasPrefix(s, want), nil
			case "suffix":
				return strings.HasSuffix(s, want), nil
			default:
				return strings.EqualFold(s, want), nil
			}
		case "anything-but":
			but, ok := arg.([]any)
			if !ok {
				but = []any{arg}
			}
			for _, b := range but {
				if _, isObj := b.(map[string]any); isObj {
					return false, fmt.Errorf("esm: anything-but with a nested filter is not modelled")
				}
			}
			if !present {
				return false, nil
			}
			for _, b := range but {
				if reflect.DeepEqual(b, v) {
					return false, nil
				}
			}
			return true, nil
		case "numeric":
			return matchNumeric(arg, v, present)
		default:
			return false, fmt.Errorf("esm: content filter %q is not modelled", op)
		}
	}
	return false, nil
}

func matchNumeric(arg, v any, present bool) (bool, error) {
	conds, ok := arg.([]any)
	if !ok || (len(conds) != 2 && len(conds) != 4) {
		return false, fmt.Errorf("esm: numeric takes [op, n] or [op, n, op, n], not %v", arg)
	}
	x, isNum := v.(float64)
	result := present && isNum
	for i := 0; i < len(conds); i += 2 {
		op, _ := conds[i].(string)
		n, isN := conds[i+1].(float64)
		if !isN {
			return false, fmt.Errorf("esm: numeric %v: %v is not a number", arg, conds[i+1])
		}
		var ok bool
		switch op {
		case "=":
			ok = x == n
		case "<":
			ok = x < n
		case "<=":
			ok = x <= n
		case ">":
			ok = x > n
		case ">=":
			ok = x >= n
		default:
			return false, fmt.Errorf("esm: numeric operator %q", op)
		}
		result = result && ok
	}
	return result, nil
}
