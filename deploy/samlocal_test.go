package deploy

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/shared/awsdeploy"
)

// `sam local start-api` mounts every route of the API, on the function the
// API calls on AWS, for every AuthMode and with --disable-authorizer: read
// the way SAM CLI reads the template (samcli_resolve_test.go,
// samcli_routes_test.go), not the way CloudFormation does. A Lambda authorizer runs locally on exactly the
// routes it guards on AWS; a Cognito authorizer cannot run locally, so its
// routes run without one (the upload function then answers 401: see
// docs/deploy.md). OPTIONS reaches the function, and the binary media types
// are make dev's.
func TestSAMLocalRoutes(t *testing.T) {
	src, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw := parseTemplate(t, "template.yaml", src)
	for _, v := range variants {
		cfn := evaluate(t, raw, v.params)
		want := awsRoutes(t, cfn)
		sam := samResolve(t, "template.yaml", src, v.params)
		for _, disable := range []bool{false, true} {
			name := v.name
			if disable {
				name += " --disable-authorizer"
			}
			api, err := samDiscover(mapOf(sam["UploadApi"]["Properties"]), disable)
			if err != nil {
				t.Errorf("%s: sam local start-api stops before serving: %v", name, err)
				continue
			}
			got := map[string]samRoute{}
			for _, r := range api.Routes {
				got[r.Method+" "+r.Path] = r
			}
			if !mapsEqual(boolSet(got), boolSet(want)) {
				t.Errorf("%s: sam local mounts %v, the API has %v", name, sortedKeys(boolSet(got)), sortedKeys(boolSet(want)))
			}
			authorized := 0
			for key, w := range want {
				r, ok := got[key]
				if !ok {
					continue
				}
				if r.Function != w.Function || !isFunction(raw, r.Function) {
					t.Errorf("%s: %s runs %q locally, %s on AWS", name, key, r.Function, w.Function)
				}
				wantAuth := samAuthorizer{}
				if !disable {
					wantAuth = w.Authorizer
				}
				gotAuth := api.Authorizers[r.Authorizer]
				if gotAuth != wantAuth || (gotAuth.Function != "" && !isFunction(raw, gotAuth.Function)) {
					t.Errorf("%s: %s has the local authorizer %q %+v, want %+v", name, key, r.Authorizer, gotAuth, wantAuth)
				}
				if gotAuth != (samAuthorizer{}) {
					authorized++
				}
			}
			if mode := v.params["AuthMode"]; mode == awsdeploy.AuthJWT && !disable && authorized == 0 {
				t.Errorf("%s: no route has the JWT authorizer locally", name)
			}
			if api.AnswersPreflight {
				t.Errorf("%s: SAM CLI would answer OPTIONS itself; on AWS the function does", name)
			}
			types := slices.Clone(apigw.BinaryMediaTypes)
			sort.Strings(types)
			if !slices.Equal(api.BinaryMediaTypes, types) || !slices.Contains(types, "*/*") {
				t.Errorf("%s: sam local's binary media types %v, make dev's %v", name, api.BinaryMediaTypes, types)
			}
		}
	}
}

// awsRoute is a route as API Gateway serves it, and the Lambda authorizer
// SAM CLI would run for it locally (none for a Cognito user pool).
type awsRoute struct {
	Function   string // logical ID
	Authorizer samAuthorizer
}

// awsRoutes reads the routes of the API from the template as
// CloudFormation evaluates it.
func awsRoutes(t *testing.T, s *stack) map[string]awsRoute {
	body := get(s.props("UploadApi"), "DefinitionBody")
	out := map[string]awsRoute{}
	for key := range routes(t, s) {
		m, p, _ := strings.Cut(key, " ")
		op := get(body, "paths", p, strings.ToLower(m))
		r := awsRoute{Function: functionOfURI(s, str(get(op, "x-amazon-apigateway-integration", "uri")))}
		if sec := listOf(get(op, "security")); len(sec) == 1 {
			scheme := get(body, "components", "securitySchemes", firstKey(mapOf(sec[0])))
			switch typ := str(get(scheme, "x-amazon-apigateway-authorizer", "type")); typ {
			case "token":
				r.Authorizer = samAuthorizer{Type: typ,
					Function:       functionOfURI(s, str(get(scheme, "x-amazon-apigateway-authorizer", "authorizerUri"))),
					IdentitySource: "method.request.header." + str(get(scheme, "name"))}
			case "cognito_user_pools":
				// SAM CLI runs no Cognito authorizer.
			default:
				t.Errorf("%s: authorizer type %q: what would SAM CLI do?", key, typ)
			}
		}
		out[key] = r
	}
	return out
}

// functionOfURI is the function whose ARN an integration or authorizer URI
// holds.
func functionOfURI(s *stack, uri string) string {
	for _, id := range s.ofType("AWS::Serverless::Function") {
		if strings.Contains(uri, "/functions/"+s.getAtt(id, "Arn")+"/invocations") {
			return id
		}
	}
	return ""
}

// isFunction tells whether SAM CLI finds a function of that name in the
// template: its logical ID, or its FunctionName.
func isFunction(raw map[string]any, name string) bool {
	for id, r := range mapOf(raw["Resources"]) {
		typ := str(get(r, "Type"))
		if typ != "AWS::Serverless::Function" && typ != "AWS::Lambda::Function" {
			continue
		}
		if id == name || get(r, "Properties", "FunctionName") == name {
			return true
		}
	}
	return false
}

func boolSet[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
