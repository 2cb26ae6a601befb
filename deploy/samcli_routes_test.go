package deploy

// How `sam local start-api` finds the routes of an AWS::Serverless::Api
// in its resolved properties (see samcli_resolve_test.go for the
// resolving): a model of SAM CLI's OpenAPI parser and route collector
// (samcli/commands/local/lib/swagger, samcli/lib/providers), checked by
// TestSAMLocalModel.
//
//   - Authorizers come from components.securitySchemes, which must be a
//     mapping of mappings: anything else, such as an unresolved Fn::If
//     there, stops SAM CLI. A scheme becomes a local authorizer only if
//     its x-amazon-apigateway-authorizer is of type token or request and
//     its authorizerUri names a Lambda function; a token authorizer also
//     needs `in: header` and a header name. Anything else, Cognito user
//     pools included, is skipped with a warning. --disable-authorizer
//     skips this step altogether.
//   - Each operation under paths whose x-amazon-apigateway-integration is
//     of type aws_proxy becomes a route, on the function its uri names. An
//     operation whose uri names no function is dropped without an error.
//   - An operation's security: absent means the document's default
//     authorizer (a root-level security), one requirement names the
//     authorizer, an empty list means none. Anything but a list stops SAM
//     CLI, with --disable-authorizer too; so do two requirements.
//   - A route whose authorizer is not a local one (Cognito) runs without
//     an authorizer.
//   - Routes of one path and one function are merged into one route of
//     several methods unless their operationIds differ, and the merged
//     route keeps one authorizer for all its methods (which one depends on
//     the order of a Python set): without operationIds, the JWT authorizer
//     can land on the CORS preflight. This model refuses such a merge when
//     the authorizers differ.
//   - The function is taken from the uri: from a string, the first Lambda
//     function ARN in it (arn:aws:lambda:...:function:NAME), else whatever
//     sits between /functions/ and /invocations; from an Fn::Sub left
//     unresolved, its ${X.Arn} or ${X.Alias} stands for function X. The
//     name is what follows the last ":function:".
//   - Binary media types are the body's x-amazon-apigateway-binary-media-
//     types and the resource's BinaryMediaTypes, with ~1 read as /.

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// samRoute is one route `sam local start-api` mounts.
type samRoute struct {
	Method, Path, Function string
	Operation              string // its operationId
	// Authorizer is the local authorizer that runs before the function:
	// a name of samAPI.Authorizers, or "" for none.
	Authorizer string
}

// samAuthorizer is a Lambda authorizer SAM CLI runs locally.
type samAuthorizer struct {
	Type, Function, IdentitySource string
}

// samAPI is what `sam local start-api` serves for one AWS::Serverless::Api.
type samAPI struct {
	Routes      []samRoute
	Authorizers map[string]samAuthorizer
	// AnswersPreflight: SAM CLI answers OPTIONS itself (the resource has a
	// Cors property) instead of passing it to the function.
	AnswersPreflight bool
	// BinaryMediaTypes: a request with one of these types, or any type if
	// */* is among them, reaches the function base64-encoded.
	BinaryMediaTypes []string
}

// samCrash is what stops SAM CLI: Kind names the Python exception it
// raises (AttributeError where it reads something that is not a mapping).
type samCrash struct{ Kind, Msg string }

func (c samCrash) Error() string { return c.Kind + ": " + c.Msg }

func crash(kind, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return samCrash{kind, msg}
}

// samDiscover reads one resolved AWS::Serverless::Api's properties the way
// SAM CLI's route discovery does; a samCrash is what stops SAM CLI.
func samDiscover(props map[string]any, disableAuthorizer bool) (*samAPI, error) {
	api := &samAPI{Authorizers: map[string]samAuthorizer{}, AnswersPreflight: truthy(props["Cors"])}
	if props["Auth"] != nil {
		return nil, errors.New("not modelled: the Auth property")
	}
	doc, ok := props["DefinitionBody"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not modelled: DefinitionBody %v (only an inline OpenAPI document)", props["DefinitionBody"])
	}
	version := ""
	if v := doc["swagger"]; truthy(v) {
		version = fmt.Sprint(v)
	} else if v := doc["openapi"]; truthy(v) {
		version = fmt.Sprint(v)
	}
	defaultAuthorizer := ""
	if !disableAuthorizer {
		if !strings.HasPrefix(version, "3.") {
			return nil, fmt.Errorf("not modelled: OpenAPI version %q (only 3.x)", version)
		}
		components, ok := mappingAt(doc, "components")
		if !ok {
			return nil, crash("AttributeError", "components is %v, not a mapping", doc["components"])
		}
		schemes, ok := mappingAt(components, "securitySchemes")
		if !ok {
			return nil, crash("AttributeError", "components.securitySchemes is %v, not a mapping", components["securitySchemes"])
		}
		for name, s := range schemes {
			scheme, ok := s.(map[string]any)
			if !ok {
				return nil, crash("AttributeError", "security scheme %q is %v, not a mapping", name, s)
			}
			a, err := samLambdaAuthorizer(name, scheme)
			if err != nil {
				return nil, err
			}
			if a != nil {
				api.Authorizers[name] = *a
			}
		}
		if root := doc["security"]; truthy(root) {
			l, ok := root.([]any)
			switch {
			case !ok:
				return nil, fmt.Errorf("not modelled: root security %v", root)
			case len(l) > 1:
				return nil, crash("MultipleAuthorizerException", "root security %v", root)
			case len(mapOf(l[0])) != 1:
				return nil, crash("InvalidSecurityDefinition", "root security %v names no single authorizer", root)
			}
			defaultAuthorizer = firstKey(mapOf(l[0]))
		}
	}
	paths, ok := mappingAt(doc, "paths")
	if !ok {
		return nil, crash("AttributeError", "paths is %v, not a mapping", doc["paths"])
	}
	for path, item := range paths {
		ops, ok := item.(map[string]any)
		if !ok {
			return nil, crash("AttributeError", "path %s is %v, not a mapping", path, item)
		}
		for method, o := range ops {
			fn, err := samIntegrationFunction(path, method, o)
			if err != nil {
				return nil, err
			}
			if fn == "" {
				continue // not a Lambda proxy: SAM CLI mounts nothing
			}
			if strings.EqualFold(method, "x-amazon-apigateway-any-method") {
				method = "ANY"
			}
			route := samRoute{Method: strings.ToUpper(method), Path: path, Function: fn, Operation: str(mapOf(o)["operationId"])}
			useDefault := true
			if sec, present := mapOf(o)["security"]; present && sec != nil {
				l, ok := sec.([]any)
				if !ok {
					return nil, crash("InvalidSecurityDefinition", "%s %s: security is %v, not a list", method, path, sec)
				}
				if len(l) > 1 {
					return nil, crash("MultipleAuthorizerException", "%s %s: more than one security requirement", method, path)
				}
				if len(l) == 1 && !reflect.DeepEqual(l[0], map[string]any{}) {
					req, ok := l[0].(map[string]any)
					if !ok || len(req) != 1 {
						return nil, crash("InvalidSecurityDefinition", "%s %s: security requirement %v names no single authorizer", method, path, l[0])
					}
					route.Authorizer = firstKey(req)
				} else {
					useDefault = false
				}
			}
			if route.Authorizer == "" && useDefault {
				route.Authorizer = defaultAuthorizer
			}
			if _, local := api.Authorizers[route.Authorizer]; !local {
				route.Authorizer = "" // SAM CLI warns and runs the route without one
			}
			api.Routes = append(api.Routes, route)
		}
	}
	merged := map[string]samRoute{}
	for _, rt := range api.Routes {
		key := rt.Function + " " + rt.Path + " " + rt.Operation
		if other, ok := merged[key]; ok && other.Authorizer != rt.Authorizer {
			return nil, fmt.Errorf("%s %s and %s %s share a function and an operationId (%q): SAM CLI merges them into one route with one authorizer (%q or %q) for both; give each operation its own operationId",
				other.Method, other.Path, rt.Method, rt.Path, rt.Operation, other.Authorizer, rt.Authorizer)
		}
		merged[key] = rt
	}
	sort.Slice(api.Routes, func(i, j int) bool {
		return api.Routes[i].Path+" "+api.Routes[i].Method < api.Routes[j].Path+" "+api.Routes[j].Method
	})
	seen := map[string]bool{}
	for _, v := range append(listOf(doc["x-amazon-apigateway-binary-media-types"]), listOf(props["BinaryMediaTypes"])...) {
		if s, ok := v.(string); ok && !seen[strings.ReplaceAll(s, "~1", "/")] {
			seen[strings.ReplaceAll(s, "~1", "/")] = true
			api.BinaryMediaTypes = append(api.BinaryMediaTypes, strings.ReplaceAll(s, "~1", "/"))
		}
	}
	sort.Strings(api.BinaryMediaTypes)
	return api, nil
}

// mappingAt is m[key] as a mapping: empty if the key is absent, not ok if
// the value is anything else (null included), which SAM CLI cannot read.
func mappingAt(m map[string]any, key string) (map[string]any, bool) {
	v, present := m[key]
	if !present {
		return map[string]any{}, true
	}
	out, ok := v.(map[string]any)
	return out, ok
}

// samLambdaAuthorizer is the local authorizer a security scheme makes, or
// nil when SAM CLI skips the scheme.
func samLambdaAuthorizer(name string, scheme map[string]any) (*samAuthorizer, error) {
	ext := scheme["x-amazon-apigateway-authorizer"]
	if !truthy(ext) {
		return nil, nil
	}
	a, ok := ext.(map[string]any)
	if !ok {
		return nil, crash("AttributeError", "%s: x-amazon-apigateway-authorizer is %v, not a mapping", name, ext)
	}
	typ, ok := orString(a["type"])
	if !ok {
		return nil, crash("AttributeError", "%s: authorizer type %v", name, a["type"])
	}
	fn := samFunctionName(a["authorizerUri"])
	typ = strings.ToLower(typ)
	if fn == "" || typ != "token" && typ != "request" {
		return nil, nil // Cognito user pools among them
	}
	if typ == "request" {
		return nil, fmt.Errorf("not modelled: %s is a request authorizer", name)
	}
	header := str(scheme["name"])
	if str(scheme["in"]) != "header" || header == "" {
		return nil, nil
	}
	return &samAuthorizer{Type: typ, Function: fn, IdentitySource: "method.request.header." + header}, nil
}

// orString is a string value, "" for a missing one.
func orString(v any) (string, bool) {
	if v == nil {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

// samIntegrationFunction is the function an operation's Lambda proxy
// integration calls, or "" when it has none.
func samIntegrationFunction(path, method string, op any) (string, error) {
	in, ok := mapOf(op)["x-amazon-apigateway-integration"].(map[string]any)
	if !ok || len(in) == 0 {
		return "", nil
	}
	typ, ok := in["type"].(string)
	if !ok {
		return "", crash("AttributeError", "%s %s: integration type %v", method, path, in["type"])
	}
	if strings.ToLower(typ) != "aws_proxy" {
		return "", nil
	}
	return samFunctionName(in["uri"]), nil
}

var (
	samSubFunctionArn  = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\.(Arn|Alias)\}`)
	samLambdaArnInURI  = regexp.MustCompile(`arn:aws:lambda:[^:]+:[^:]+:function:[^:/]+(?::[^/]+)?`)
	samFunctionsInURI  = regexp.MustCompile(`/functions/([^/]+)/invocations`)
	samNameInArn       = regexp.MustCompile(`^.*:function:([^:]*)`)
	samStageVariable   = regexp.MustCompile(`^\$\{stageVariables\..+\}`)
	samValidNamePrefix = regexp.MustCompile(`^[a-zA-Z0-9-_]+`)
)

// samFunctionName is the function an integration or authorizer URI names,
// or "".
func samFunctionName(uri any) string {
	if m, ok := uri.(map[string]any); ok && len(m) == 1 {
		if sub, ok := m["Fn::Sub"]; ok {
			if l, ok := sub.([]any); ok && len(l) > 0 {
				sub = l[0]
			}
			if s, ok := sub.(string); ok {
				uri = samSubFunctionArn.ReplaceAllStringFunc(s, func(ref string) string {
					return "arn:aws:lambda:${AWS::Region}:123456789012:function:" + samSubFunctionArn.FindStringSubmatch(ref)[1]
				})
			}
		}
	}
	s, ok := uri.(string)
	if !ok || s == "" {
		return ""
	}
	arn := samLambdaArnInURI.FindString(s)
	if arn == "" {
		if m := samFunctionsInURI.FindStringSubmatch(s); m != nil {
			arn = m[1]
		}
	}
	m := samNameInArn.FindStringSubmatch(arn)
	if m == nil || samStageVariable.MatchString(m[1]) || !samValidNamePrefix.MatchString(m[1]) {
		return ""
	}
	return m[1]
}
