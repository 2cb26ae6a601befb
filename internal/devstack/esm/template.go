package esm

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// TemplateSource is one DynamoDB event of a function in a SAM template.
type TemplateSource struct {
	// Function and Event are the logical IDs of the function and its event.
	Function, Event string
	// Table is the logical ID of the table whose stream the event reads
	// (Stream: !GetAtt Table.StreamArn).
	Table string
	// OnFailure is the logical ID of the on-failure destination
	// (DestinationConfig.OnFailure.Destination: !GetAtt Queue.Arn), or "".
	OnFailure string
	// Config is the event's settings, Lambda's defaults where the template
	// is silent; FunctionName is Function.
	Config Config
}

// LoadTemplate reads the DynamoDB events of function from a SAM template
// (template.yaml), so that the dev stack gives up where the deployment
// does. Settings must be literals in the template: one that is an intrinsic
// (a !Ref to a parameter, say) is an error, not a guess.
func LoadTemplate(path, function string) ([]TemplateSource, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("esm: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("esm: %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("esm: %s is empty", path)
	}
	root := doc.Content[0]
	fn := child(child(root, "Resources"), function)
	if fn == nil {
		return nil, fmt.Errorf("esm: %s has no resource %s", path, function)
	}
	props := child(fn, "Properties")
	timeout := child(props, "Timeout")
	if timeout == nil {
		timeout = child(child(child(root, "Globals"), "Function"), "Timeout")
	}
	events := child(props, "Events")
	var out []TemplateSource
	for i := 0; events != nil && i+1 < len(events.Content); i += 2 {
		name, ev := events.Content[i].Value, events.Content[i+1]
		if lit(child(ev, "Type")) != "DynamoDB" {
			continue
		}
		src, err := loadEvent(function, name, child(ev, "Properties"), timeout)
		if err != nil {
			return nil, fmt.Errorf("esm: %s: %s event %s: %w", path, function, name, err)
		}
		out = append(out, src)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("esm: %s: %s has no DynamoDB event", path, function)
	}
	return out, nil
}

func loadEvent(function, event string, p, timeout *yaml.Node) (TemplateSource, error) {
	src := TemplateSource{Function: function, Event: event, Config: Defaults()}
	c := &src.Config
	c.FunctionName = function
	var err error
	if src.Table, err = getAtt(child(p, "Stream"), "StreamArn"); err != nil {
		return src, fmt.Errorf("Stream: %w", err)
	}
	if d := child(child(child(p, "DestinationConfig"), "OnFailure"), "Destination"); d != nil {
		if src.OnFailure, err = getAtt(d, "Arn"); err != nil {
			return src, fmt.Errorf("OnFailure destination: %w", err)
		}
		c.HasOnFailure = true
	}
	ints := []struct {
		name string
		set  func(int)
	}{
		{"BatchSize", func(n int) { c.BatchSize = n }},
		{"MaximumBatchingWindowInSeconds", func(n int) { c.MaximumBatchingWindow = time.Duration(n) * time.Second }},
		{"ParallelizationFactor", func(n int) { c.ParallelizationFactor = n }},
		{"MaximumRetryAttempts", func(n int) { c.MaximumRetryAttempts = n }},
		{"MaximumRecordAgeInSeconds", func(n int) {
			c.MaximumRecordAge = time.Duration(n) * time.Second
			if n < 0 {
				c.MaximumRecordAge = -1
			}
		}},
	}
	for _, f := range ints {
		if n := child(p, f.name); n != nil {
			v, err := intLiteral(n)
			if err != nil {
				return src, fmt.Errorf("%s: %v", f.name, err)
			}
			f.set(v)
		}
	}
	if timeout != nil {
		v, err := intLiteral(timeout)
		if err != nil {
			return src, fmt.Errorf("Timeout: %v", err)
		}
		c.FunctionTimeout = time.Duration(v) * time.Second
	}
	if n := child(p, "StartingPosition"); n != nil {
		c.StartingPosition = literal(n, &err)
	}
	if n := child(p, "BisectBatchOnFunctionError"); n != nil {
		b := literal(n, &err)
		if err == nil {
			c.BisectBatchOnFunctionError, err = strconv.ParseBool(b)
		}
	}
	if err != nil {
		return src, err
	}
	if n := child(p, "Enabled"); n != nil && lit(n) == "false" {
		return src, fmt.Errorf("the event is disabled")
	}
	if n := child(p, "TumblingWindowInSeconds"); n != nil {
		return src, fmt.Errorf("TumblingWindowInSeconds is not emulated")
	}
	if n := child(p, "FunctionResponseTypes"); n != nil {
		for _, t := range n.Content {
			if literal(t, &err) == "ReportBatchItemFailures" {
				c.ReportBatchItemFailures = true
			}
		}
	}
	if f := child(child(p, "FilterCriteria"), "Filters"); f != nil {
		for _, item := range f.Content {
			text := literal(child(item, "Pattern"), &err)
			if err != nil {
				return src, fmt.Errorf("filter pattern: %w", err)
			}
			pat, err := ParsePattern(text)
			if err != nil {
				return src, err
			}
			c.Filters = append(c.Filters, pat)
		}
	}
	if err != nil {
		return src, err
	}
	return src, c.Validate()
}

// child returns the value under key in a mapping node, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lit is a plain scalar's value, or "".
func lit(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return ""
	}
	return n.Value
}

// literal is lit that records an error for an intrinsic or a missing value.
func literal(n *yaml.Node, err *error) string {
	if n == nil {
		if *err == nil {
			*err = fmt.Errorf("missing value")
		}
		return ""
	}
	if n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		if *err == nil {
			*err = fmt.Errorf("line %d: not a literal (%s %s)", n.Line, n.Tag, n.Value)
		}
		return ""
	}
	return n.Value
}

func intLiteral(n *yaml.Node) (int, error) {
	var err error
	s := literal(n, &err)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// getAtt reads !GetAtt Resource.attr (or Fn::GetAtt: [Resource, attr]) and
// returns Resource.
func getAtt(n *yaml.Node, attr string) (string, error) {
	if n == nil {
		return "", fmt.Errorf("missing")
	}
	var parts []string
	switch {
	case n.Tag == "!GetAtt" && n.Kind == yaml.ScalarNode:
		parts = strings.SplitN(n.Value, ".", 2)
	case n.Tag == "!GetAtt" && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			parts = append(parts, c.Value)
		}
	case child(n, "Fn::GetAtt") != nil:
		for _, c := range child(n, "Fn::GetAtt").Content {
			parts = append(parts, c.Value)
		}
	}
	if len(parts) != 2 || parts[1] != attr {
		return "", fmt.Errorf("line %d: want !GetAtt Resource.%s", n.Line, attr)
	}
	return parts[0], nil
}
