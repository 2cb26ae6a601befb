package deploy

// A reader and evaluator for the part of CloudFormation the template uses:
// YAML with the short tags (!Ref, !GetAtt, !Sub, !If ...), parameters,
// conditions, SAM's Globals, and the intrinsic functions, resolved for a
// chosen set of parameter values. Resources get made-up physical names and
// ARNs of the right shape (arn:aws:s3:::..., arn:aws:dynamodb:...:table/...),
// so that what the template wires together (an environment variable naming
// the bucket, an IAM statement on the bucket's objects) can be compared as
// plain strings, the way AWS will see them.

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	region    = "us-east-1"
	account   = "123456789012"
	stackName = "flowgate"
)

// noValue is AWS::NoValue: the key or list element holding it disappears.
type noValue struct{}

// readTemplate parses a template into plain Go values (map[string]any,
// []any, string, int, float64, bool, nil), short tags turned into their
// long form ({"Ref": x}, {"Fn::Sub": x} ...).
func readTemplate(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseTemplate(t, path, b)
}

// parseTemplate is readTemplate for a template in memory; name is for errors.
func parseTemplate(t testing.TB, name string, b []byte) map[string]any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	v, err := fromNode(doc.Content[0])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a mapping", name)
	}
	return m
}

var shortTags = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!If": "Fn::If",
	"!Equals": "Fn::Equals", "!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or", "!Select": "Fn::Select",
	"!Split": "Fn::Split", "!Join": "Fn::Join", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64",
	"!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue", "!Cidr": "Fn::Cidr",
}

func fromNode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return fromNode(n.Alias)
	}
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("line %d: key %q twice", n.Content[i].Line, k)
			}
			val, err := fromNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = val
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			val, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			i, err := strconv.Atoi(n.Value)
			if err != nil {
				return nil, err
			}
			v = i
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, err
			}
			v = f
		case "!!bool":
			v = n.Value == "true"
		case "!!null":
			v = nil
		default:
			v = n.Value
		}
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	fn, ok := shortTags[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	if n.Tag == "!GetAtt" {
		if s, ok := v.(string); ok {
			res, attr, ok := strings.Cut(s, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %s", n.Line, s)
			}
			v = []any{res, attr}
		}
	}
	return map[string]any{fn: v}, nil
}

// stack is a template evaluated for one set of parameter values.
type stack struct {
	raw        map[string]any
	params     map[string]string
	conditions map[string]bool
	resources  map[string]map[string]any // raw, only those whose condition holds
	evaluated  map[string]map[string]any // evaluated properties, by logical ID
	busy       map[string]bool
	err        error
}

// evaluate resolves the template for the given parameters (others take
// their defaults). Errors (an unknown reference, a reference to a resource
// that its condition left out, an unsupported function) fail the test.
func evaluate(t testing.TB, raw map[string]any, overrides map[string]string) *stack {
	t.Helper()
	s := &stack{raw: raw, params: map[string]string{}, conditions: map[string]bool{},
		resources: map[string]map[string]any{}, evaluated: map[string]map[string]any{}, busy: map[string]bool{}}
	for name, p := range mapOf(raw["Parameters"]) {
		def, ok := mapOf(p)["Default"]
		if ok {
			s.params[name] = fmt.Sprint(def)
		}
	}
	for k, v := range overrides {
		if _, ok := mapOf(raw["Parameters"])[k]; !ok {
			t.Fatalf("no parameter %s", k)
		}
		s.params[k] = v
	}
	for name := range mapOf(raw["Parameters"]) {
		if _, ok := s.params[name]; !ok {
			t.Fatalf("parameter %s has no default and no value", name)
		}
	}
	for name := range mapOf(raw["Conditions"]) {
		s.condition(name)
	}
	globals := mapOf(mapOf(raw["Globals"])["Function"])
	for id, r := range mapOf(raw["Resources"]) {
		res := mapOf(r)
		if c, ok := res["Condition"].(string); ok && !s.condition(c) {
			continue
		}
		if res["Type"] == "AWS::Serverless::Function" {
			props := mapOf(res["Properties"])
			merged := map[string]any{}
			for k, v := range globals {
				merged[k] = v
			}
			for k, v := range props {
				merged[k] = v
			}
			res = copyMap(res)
			res["Properties"] = merged
		}
		s.resources[id] = res
	}
	for id := range s.resources {
		s.props(id)
	}
	if s.err != nil {
		t.Fatalf("evaluate %v: %v", overrides, s.err)
	}
	return s
}

func (s *stack) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
	}
}

func (s *stack) condition(name string) bool {
	if v, ok := s.conditions[name]; ok {
		return v
	}
	def, ok := mapOf(s.raw["Conditions"])[name]
	if !ok {
		s.fail("no condition %s", name)
		return false
	}
	v, _ := s.eval(def).(bool)
	s.conditions[name] = v
	return v
}

// props returns a resource's evaluated properties.
func (s *stack) props(id string) map[string]any {
	if p, ok := s.evaluated[id]; ok {
		return p
	}
	r, ok := s.resources[id]
	if !ok {
		s.fail("resource %s is referenced but does not exist under these conditions", id)
		return map[string]any{}
	}
	if s.busy[id] {
		return map[string]any{} // a cycle through names; physical names never need it
	}
	s.busy[id] = true
	p, _ := s.eval(r["Properties"]).(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	s.evaluated[id] = p
	return p
}

func (s *stack) typeOf(id string) string {
	r, ok := s.resources[id]
	if !ok {
		s.fail("resource %s is referenced but does not exist under these conditions", id)
		return ""
	}
	return r["Type"].(string)
}

// ref is what Ref gives for a resource.
func (s *stack) ref(id string) string {
	switch s.typeOf(id) {
	case "AWS::S3::Bucket":
		return stackName + "-" + strings.ToLower(id) + "-1a2b3c"
	case "AWS::DynamoDB::Table":
		return stackName + "-" + id + "-1A2B3C"
	case "AWS::Events::EventBus":
		return fmt.Sprint(s.props(id)["Name"])
	case "AWS::Logs::LogGroup":
		return fmt.Sprint(s.props(id)["LogGroupName"])
	case "AWS::SQS::Queue":
		return "https://sqs." + region + ".amazonaws.com/" + account + "/" + stackName + "-" + id + "-1A2B3C"
	case "AWS::SNS::Topic":
		return "arn:aws:sns:" + region + ":" + account + ":" + stackName + "-" + id + "-1A2B3C"
	case "AWS::Serverless::Api":
		return "api" + strings.ToLower(id[:3]) + "12345"
	case "AWS::Serverless::Function":
		return stackName + "-" + id + "-1A2B3C"
	}
	return stackName + "-" + id + "-1A2B3C"
}

func (s *stack) getAtt(id, attr string) string {
	ref := s.ref(id)
	switch s.typeOf(id) + "." + attr {
	case "AWS::S3::Bucket.Arn":
		return "arn:aws:s3:::" + ref
	case "AWS::DynamoDB::Table.Arn":
		return "arn:aws:dynamodb:" + region + ":" + account + ":table/" + ref
	case "AWS::DynamoDB::Table.StreamArn":
		return "arn:aws:dynamodb:" + region + ":" + account + ":table/" + ref + "/stream/2026-01-01T00:00:00.000"
	case "AWS::Events::EventBus.Arn":
		return "arn:aws:events:" + region + ":" + account + ":event-bus/" + ref
	case "AWS::Logs::LogGroup.Arn":
		return "arn:aws:logs:" + region + ":" + account + ":log-group:" + ref + ":*"
	case "AWS::SQS::Queue.Arn":
		return "arn:aws:sqs:" + region + ":" + account + ":" + stackName + "-" + id + "-1A2B3C"
	case "AWS::SQS::Queue.QueueName":
		return stackName + "-" + id + "-1A2B3C"
	case "AWS::IAM::Role.Arn":
		return "arn:aws:iam::" + account + ":role/" + stackName + "-" + id + "-1A2B3C"
	case "AWS::Serverless::Function.Arn":
		return "arn:aws:lambda:" + region + ":" + account + ":function:" + ref
	}
	s.fail("GetAtt %s.%s is not modelled", id, attr)
	return ""
}

var pseudo = map[string]string{
	"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
	"AWS::StackName": stackName, "AWS::URLSuffix": "amazonaws.com",
	"AWS::StackId": "arn:aws:cloudformation:" + region + ":" + account + ":stack/" + stackName + "/1",
}

func (s *stack) refName(name string) any {
	if name == "AWS::NoValue" {
		return noValue{}
	}
	if v, ok := pseudo[name]; ok {
		return v
	}
	if v, ok := s.params[name]; ok {
		return v
	}
	return s.ref(name)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (s *stack) sub(text string, vars map[string]any) string {
	return subVar.ReplaceAllStringFunc(text, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return fmt.Sprint(v)
		}
		if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			return s.getAtt(res, attr)
		}
		return fmt.Sprint(s.refName(name))
	})
}

// eval resolves intrinsic functions in v.
func (s *stack) eval(v any) any {
	switch x := v.(type) {
	case []any:
		out := []any{}
		for _, e := range x {
			if r := s.eval(e); r != (noValue{}) {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if r, ok := s.intrinsic(k, arg); ok {
					return r
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			if r := s.eval(e); r != (noValue{}) {
				out[k] = r
			}
		}
		return out
	}
	return v
}

func (s *stack) intrinsic(fn string, arg any) (any, bool) {
	list := func(n int) []any {
		l, ok := arg.([]any)
		if !ok || (n > 0 && len(l) != n) {
			s.fail("%s: want a list of %d, got %v", fn, n, arg)
			return make([]any, max(n, 0))
		}
		return l
	}
	switch fn {
	case "Ref":
		return s.refName(fmt.Sprint(arg)), true
	case "Condition":
		return s.condition(fmt.Sprint(arg)), true
	case "Fn::GetAtt":
		l := list(2)
		return s.getAtt(fmt.Sprint(l[0]), fmt.Sprint(l[1])), true
	case "Fn::Sub":
		if text, ok := arg.(string); ok {
			return s.sub(text, nil), true
		}
		l := list(2)
		vars, _ := s.eval(l[1]).(map[string]any)
		return s.sub(fmt.Sprint(l[0]), vars), true
	case "Fn::If":
		l := list(3)
		if s.condition(fmt.Sprint(l[0])) {
			return s.eval(l[1]), true
		}
		return s.eval(l[2]), true
	case "Fn::Equals":
		l := list(2)
		return fmt.Sprint(s.eval(l[0])) == fmt.Sprint(s.eval(l[1])), true
	case "Fn::Not":
		l := list(1)
		b, _ := s.eval(l[0]).(bool)
		return !b, true
	case "Fn::And", "Fn::Or":
		all := fn == "Fn::And"
		for _, c := range list(-1) {
			b, _ := s.eval(c).(bool)
			if all != b {
				return !all, true
			}
		}
		return all, true
	case "Fn::Join":
		l := list(2)
		var parts []string
		for _, p := range s.eval(l[1]).([]any) {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, fmt.Sprint(l[0])), true
	case "Fn::Split":
		l := list(2)
		var out []any
		for _, p := range strings.Split(fmt.Sprint(s.eval(l[1])), fmt.Sprint(l[0])) {
			out = append(out, p)
		}
		return out, true
	case "Fn::Select":
		l := list(2)
		i, _ := strconv.Atoi(fmt.Sprint(s.eval(l[0])))
		items, _ := s.eval(l[1]).([]any)
		if i < 0 || i >= len(items) {
			s.fail("Fn::Select %d of %v", i, items)
			return "", true
		}
		return items[i], true
	}
	if strings.HasPrefix(fn, "Fn::") {
		s.fail("%s is not modelled", fn)
		return nil, true
	}
	return nil, false
}

// outputs evaluates the Outputs section.
func (s *stack) outputs() map[string]string {
	out := map[string]string{}
	for name, o := range mapOf(s.raw["Outputs"]) {
		om := mapOf(o)
		if c, ok := om["Condition"].(string); ok && !s.condition(c) {
			continue
		}
		out[name] = fmt.Sprint(s.eval(om["Value"]))
	}
	return out
}

// ofType lists the logical IDs of the resources of a type, sorted.
func (s *stack) ofType(typ string) []string {
	var ids []string
	for id, r := range s.resources {
		if r["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// get walks a path of keys (and list indexes) through evaluated values.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = mapOf(v)[k]
		case int:
			l := listOf(v)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func strs(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, e := range listOf(v) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}
