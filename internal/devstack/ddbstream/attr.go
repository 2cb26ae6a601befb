package ddbstream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"
)

// Item is an item (or an item's key) as the DynamoDB JSON protocol carries
// it: attribute name -> attribute value ({"S": "x"}, {"N": "1"}, ...). The
// values stay raw, so that a stream record carries exactly what the table
// returned.
type Item map[string]json.RawMessage

// Canonical renders an attribute value so that two values DynamoDB holds
// equal render the same: numbers normalized ("1.0" and "1" are one number),
// sets sorted (a set has no order), maps by sorted name.
func Canonical(v json.RawMessage) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil || len(m) != 1 {
		return "", fmt.Errorf("ddbstream: %s is not an attribute value", v)
	}
	var b strings.Builder
	for typ, val := range m {
		b.WriteString(typ)
		b.WriteByte(':')
		switch typ {
		case "S", "B":
			var s string
			if err := json.Unmarshal(val, &s); err != nil {
				return "", fmt.Errorf("ddbstream: %s value %s: %w", typ, val, err)
			}
			b.WriteString(quote(s))
		case "N":
			var s string
			if err := json.Unmarshal(val, &s); err != nil {
				return "", fmt.Errorf("ddbstream: N value %s: %w", val, err)
			}
			b.WriteString(normalNumber(s))
		case "SS", "BS", "NS":
			var l []string
			if err := json.Unmarshal(val, &l); err != nil {
				return "", fmt.Errorf("ddbstream: %s value %s: %w", typ, val, err)
			}
			out := make([]string, len(l))
			for i, s := range l {
				if typ == "NS" {
					out[i] = normalNumber(s)
				} else {
					out[i] = quote(s)
				}
			}
			sort.Strings(out)
			b.WriteString("[" + strings.Join(out, ",") + "]")
		case "L":
			var l []json.RawMessage
			if err := json.Unmarshal(val, &l); err != nil {
				return "", fmt.Errorf("ddbstream: L value %s: %w", val, err)
			}
			b.WriteByte('[')
			for i, e := range l {
				c, err := Canonical(e)
				if err != nil {
					return "", err
				}
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(c)
			}
			b.WriteByte(']')
		case "M":
			var mm Item
			if err := json.Unmarshal(val, &mm); err != nil {
				return "", fmt.Errorf("ddbstream: M value %s: %w", val, err)
			}
			c, err := CanonicalItem(mm)
			if err != nil {
				return "", err
			}
			b.WriteString(c)
		case "BOOL", "NULL":
			b.Write(bytes.TrimSpace(val))
		default:
			return "", fmt.Errorf("ddbstream: unknown attribute type %q", typ)
		}
	}
	return b.String(), nil
}

// CanonicalItem is Canonical for a whole item (or key).
func CanonicalItem(it Item) (string, error) {
	names := make([]string, 0, len(it))
	for n := range it {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		c, err := Canonical(it[n])
		if err != nil {
			return "", fmt.Errorf("attribute %q: %w", n, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(n) + "=" + c)
	}
	b.WriteByte('}')
	return b.String(), nil
}

// Equal reports whether two items (nil for "no item") hold the same data.
// A value that does not parse makes them unequal: better a record too many
// than a change lost.
func Equal(a, b Item) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	ca, err1 := CanonicalItem(a)
	cb, err2 := CanonicalItem(b)
	return err1 == nil && err2 == nil && ca == cb
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// normalNumber renders a DynamoDB number (up to 38 digits, exact) in one
// form; a string that is not a number stays as it is.
func normalNumber(s string) string {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return s
	}
	return r.RatString()
}

// Size approximates DynamoDB's size of an item: each attribute's name plus
// its value (strings and binaries by length, numbers about one byte per two
// digits plus one, a list or map 3 bytes plus its elements, sets their
// members). The stream record's SizeBytes is the size of its keys and images.
func Size(it Item) int64 {
	var n int64
	for name, v := range it {
		n += int64(len(name)) + valueSize(v)
	}
	return n
}

func valueSize(v json.RawMessage) int64 {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return int64(len(v))
	}
	var n int64
	for typ, val := range m {
		switch typ {
		case "S":
			var s string
			json.Unmarshal(val, &s)
			n += int64(len(s)) // UTF-8 bytes
		case "B":
			var s string
			json.Unmarshal(val, &s)
			b, _ := base64.StdEncoding.DecodeString(s)
			n += int64(len(b))
		case "N":
			var s string
			json.Unmarshal(val, &s)
			n += numberSize(s)
		case "SS", "BS", "NS":
			var l []string
			json.Unmarshal(val, &l)
			for _, s := range l {
				switch typ {
				case "NS":
					n += numberSize(s)
				case "BS":
					b, _ := base64.StdEncoding.DecodeString(s)
					n += int64(len(b))
				default:
					n += int64(len(s))
				}
			}
		case "L":
			var l []json.RawMessage
			json.Unmarshal(val, &l)
			n += 3
			for _, e := range l {
				n += 1 + valueSize(e)
			}
		case "M":
			var mm Item
			json.Unmarshal(val, &mm)
			n += 3 + Size(mm) + int64(len(mm))
		default: // BOOL, NULL
			n++
		}
	}
	return n
}

func numberSize(s string) int64 {
	digits := 0
	for _, c := range s {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	return int64((digits+1)/2 + 1)
}
