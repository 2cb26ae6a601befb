package deploy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/shared/auth"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/s3store"
)

var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// routes lists "METHOD /path" of the API's OpenAPI body.
func routes(t testing.TB, s *stack) map[string]bool {
	out := map[string]bool{}
	for path, ops := range mapOf(get(s.props("UploadApi"), "DefinitionBody", "paths")) {
		for m := range mapOf(ops) {
			out[strings.ToUpper(m)+" "+path] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("the API has no routes")
	}
	return out
}

// handlerRoutes asks the upload function's real handler (awsdeploy's mux
// and httpapi, through the Lambda proxy adapter) which method and path
// pairs it serves: anything but 404 and 405. No storage is touched: the
// requests carry no upload fields.
func handlerRoutes(t *testing.T, paths []string) map[string]bool {
	cfg, err := awsdeploy.Load(func(k string) string {
		return map[string]string{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	d := awsdeploy.NewWithAWS(cfg, aws.Config{Region: region}, slog.New(slog.DiscardHandler))
	h := httpadapter.New(d.Handler())
	out := map[string]bool{}
	for _, p := range paths {
		for _, m := range methods {
			resp, err := h.ProxyWithContext(context.Background(), events.APIGatewayProxyRequest{
				HTTPMethod: m, Path: p, Resource: p,
				Headers: map[string]string{"Origin": "https://site.example", "Access-Control-Request-Method": "POST"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				out[m+" "+p] = true
			}
		}
	}
	return out
}

// The API's routes are exactly the handler's, each a Lambda proxy
// integration of the upload function, and the function lets this API (and
// only it) invoke it on each of them.
func TestAPIRoutes(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, nil)
	declared := routes(t, s)
	paths := []string{"/", "/healthz", "/upload/x", "/status"}
	for r := range declared {
		_, p, _ := strings.Cut(r, " ")
		paths = append(paths, p)
	}
	served := handlerRoutes(t, paths)
	if !mapsEqual(declared, served) {
		t.Errorf("template routes %v, handler serves %v", sortedKeys(declared), sortedKeys(served))
	}
	fnArn := s.getAtt("UploadFunction", "Arn")
	for path, ops := range mapOf(get(s.props("UploadApi"), "DefinitionBody", "paths")) {
		for m, op := range mapOf(ops) {
			in := mapOf(get(op, "x-amazon-apigateway-integration"))
			if str(in["type"]) != "aws_proxy" || str(in["httpMethod"]) != "POST" ||
				str(in["uri"]) != "arn:aws:apigateway:"+region+":lambda:path/2015-03-31/functions/"+fnArn+"/invocations" {
				t.Errorf("%s %s: integration %v is not a proxy to the upload function", m, path, in)
			}
		}
	}
	var sourceArn string
	for _, id := range s.ofType("AWS::Lambda::Permission") {
		p := s.props(id)
		if str(p["FunctionName"]) == s.ref("UploadFunction") {
			if str(p["Principal"]) != "apigateway.amazonaws.com" || str(p["Action"]) != "lambda:InvokeFunction" {
				t.Errorf("%s: %v", id, p)
			}
			sourceArn = str(p["SourceArn"])
		}
	}
	stage := str(s.props("UploadApi")["StageName"])
	for r := range declared {
		m, p, _ := strings.Cut(r, " ")
		arn := "arn:aws:execute-api:" + region + ":" + account + ":" + s.ref("UploadApi") + "/" + stage + "/" + m + p
		if !globMatch(sourceArn, arn) {
			t.Errorf("the upload function's permission %q does not let the API call %s", sourceArn, arn)
		}
	}
	if globMatch(sourceArn, "arn:aws:execute-api:"+region+":"+account+":otherapi/"+stage+"/GET/upload") || sourceArn == "" {
		t.Errorf("the permission %q lets other APIs invoke the function", sourceArn)
	}
}

// BinaryMediaTypes: the template's list is the one the local API Gateway
// emulation (make dev) uses, and every Content-Type flow.js sends makes a
// binary (base64) body: multipart/form-data by default, and with method
// "octet" the file's own type, whatever it is, or none.
func TestBinaryMediaTypes(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, nil)
	var types []string
	for _, b := range strs(s.props("UploadApi")["BinaryMediaTypes"]) {
		types = append(types, strings.ReplaceAll(b, "~1", "/"))
	}
	for _, must := range []string{"multipart/form-data", "application/octet-stream"} {
		if !slices.Contains(types, must) {
			t.Errorf("BinaryMediaTypes %v lacks %s", types, must)
		}
	}
	a, b := slices.Clone(types), slices.Clone(apigw.BinaryMediaTypes)
	sort.Strings(a)
	sort.Strings(b)
	if !slices.Equal(a, b) {
		t.Errorf("template BinaryMediaTypes %v, apigw.BinaryMediaTypes (make dev's emulation) %v", a, b)
	}
	for _, ct := range []string{
		"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", "application/octet-stream",
		"image/jpeg", "video/mp4", "text/plain", "application/json", "application/pdf", "",
	} {
		if !apigw.IsBinary(types, ct) {
			t.Errorf("a chunk sent as %q would reach the function as text and be mangled", ct)
		}
	}
}

// Auth: none leaves every route open; cognito and jwt put the one
// authorizer on every route but the CORS preflights, of the kind the mode
// names, and the upload function reads the identity the same mode names.
func TestAPIAuth(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	for _, v := range variants {
		s := evaluate(t, raw, v.params)
		mode := s.params["AuthMode"]
		if got := functionEnv(s, "UploadFunction")["FLOWGATE_AUTH"]; got != mode || !slices.Contains(awsdeploy.AuthModes, mode) {
			t.Errorf("%s: the upload function's FLOWGATE_AUTH is %q for AuthMode %q", v.name, got, mode)
		}
		body := get(s.props("UploadApi"), "DefinitionBody")
		schemes := mapOf(get(body, "components", "securitySchemes"))
		for path, ops := range mapOf(get(body, "paths")) {
			for m, op := range mapOf(ops) {
				sec := listOf(get(op, "security"))
				switch {
				case m == "options" || mode == awsdeploy.AuthNone:
					if len(sec) != 0 {
						t.Errorf("%s: %s %s requires %v", v.name, m, path, sec)
					}
				default:
					if len(sec) != 1 || len(mapOf(sec[0])) != 1 || schemes[firstKey(mapOf(sec[0]))] == nil {
						t.Errorf("%s: %s %s has security %v, schemes %v", v.name, m, path, sec, schemes)
					}
				}
			}
		}
		_, authorizer := s.resources["AuthorizerFunction"]
		switch mode {
		case awsdeploy.AuthNone:
			if len(schemes) != 0 || authorizer {
				t.Errorf("%s: schemes %v, authorizer function %v", v.name, schemes, authorizer)
			}
		case awsdeploy.AuthCognito:
			a := mapOf(get(schemes, "FlowgateAuth", "x-amazon-apigateway-authorizer"))
			if str(a["type"]) != "cognito_user_pools" || strings.Join(strs(a["providerARNs"]), ",") != s.params["CognitoUserPoolArn"] || authorizer {
				t.Errorf("%s: authorizer %v", v.name, a)
			}
		case awsdeploy.AuthJWT:
			sch := mapOf(get(schemes, "FlowgateAuth"))
			a := mapOf(sch["x-amazon-apigateway-authorizer"])
			want := "arn:aws:apigateway:" + region + ":lambda:path/2015-03-31/functions/" + s.getAtt("AuthorizerFunction", "Arn") + "/invocations"
			if str(a["type"]) != "token" || str(a["authorizerUri"]) != want || str(sch["name"]) != "Authorization" || str(sch["in"]) != "header" {
				t.Errorf("%s: authorizer %v", v.name, sch)
			}
			// A cached policy is applied to every route: the authorizer's
			// policy must cover the stage, not the one method it saw.
			if ttl, _ := a["authorizerResultTtlInSeconds"].(int); ttl > 0 {
				stage := str(s.props("UploadApi")["StageName"])
				res, ok := auth.StageResource("arn:aws:execute-api:" + region + ":" + account + ":" + s.ref("UploadApi") + "/" + stage + "/GET/upload")
				for r := range routes(t, s) {
					m, p, _ := strings.Cut(r, " ")
					if !ok || !globMatch(res, "arn:aws:execute-api:"+region+":"+account+":"+s.ref("UploadApi")+"/"+stage+"/"+m+p) {
						t.Errorf("%s: a cached policy for GET /upload would refuse %s", v.name, r)
					}
				}
			}
			var perm bool
			for _, id := range s.ofType("AWS::Lambda::Permission") {
				p := s.props(id)
				if str(p["FunctionName"]) == s.ref("AuthorizerFunction") &&
					globMatch(str(p["SourceArn"]), "arn:aws:execute-api:"+region+":"+account+":"+s.ref("UploadApi")+"/authorizers/abc123") {
					perm = true
				}
			}
			if !perm {
				t.Errorf("%s: API Gateway may not invoke the authorizer", v.name)
			}
		}
		// Errors API Gateway answers itself carry CORS, or the page sees
		// no status at all.
		first := strings.TrimSpace(strings.Split(s.params["AllowedOrigins"], ",")[0])
		for _, typ := range []string{"DEFAULT_4XX", "DEFAULT_5XX"} {
			h := str(get(body, "x-amazon-apigateway-gateway-responses", typ, "responseParameters", "gatewayresponse.header.Access-Control-Allow-Origin"))
			if h != "'"+first+"'" {
				t.Errorf("%s: %s Access-Control-Allow-Origin %q, want '%s'", v.name, typ, h, first)
			}
		}
		// Throttling follows the parameters.
		ms := listOf(s.props("UploadApi")["MethodSettings"])
		if len(ms) == 0 || str(get(ms[0], "ThrottlingRateLimit")) != s.params["ThrottleRateLimit"] ||
			str(get(ms[0], "ThrottlingBurstLimit")) != s.params["ThrottleBurstLimit"] ||
			str(get(ms[0], "ResourcePath")) != "/*" || str(get(ms[0], "HttpMethod")) != "*" {
			t.Errorf("%s: method settings %v", v.name, ms)
		}
		if get(s.props("UploadApi"), "AlwaysDeploy") != true {
			t.Errorf("the API's body depends on parameters SAM's redeploy hash cannot see: AlwaysDeploy must be on")
		}
	}
}

// Every sample event in events/ fits the template: API events name a route
// of the API on its stage, with a base64 body exactly when API Gateway
// would send one; the authorizer event is for a route of the API; the
// consumer event passes its rule; stream records come from the ledger's
// stream and pass the assembler's filter.
func TestEventsMatchTemplate(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params)
	declared := routes(t, s)
	stage := str(s.props("UploadApi")["StageName"])
	var types []string
	for _, b := range strs(s.props("UploadApi")["BinaryMediaTypes"]) {
		types = append(types, strings.ReplaceAll(b, "~1", "/"))
	}
	files, _ := filepath.Glob("../events/*.json")
	if len(files) == 0 {
		t.Fatal("no sample events")
	}
	for _, f := range files {
		name := filepath.Base(f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fn, _, _ := strings.Cut(name, "-")
		if _, ok := s.resources[logicalID(fn)]; !ok {
			t.Errorf("%s: no function %s in the template", name, logicalID(fn))
			continue
		}
		switch fn {
		case "upload":
			var ev events.APIGatewayProxyRequest
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			rc := ev.RequestContext
			if !declared[ev.HTTPMethod+" "+ev.Resource] || ev.Path != ev.Resource || rc.ResourcePath != ev.Resource ||
				rc.HTTPMethod != ev.HTTPMethod || rc.Stage != stage || rc.Path != "/"+stage+ev.Path {
				t.Errorf("%s: %s %s (resource %s, context %s %s on stage %s) is not a route of the API on stage %s",
					name, ev.HTTPMethod, ev.Path, ev.Resource, rc.HTTPMethod, rc.Path, rc.Stage, stage)
			}
			if ev.Body != "" && ev.IsBase64Encoded != apigw.IsBinary(types, header(ev.Headers, "Content-Type")) {
				t.Errorf("%s: isBase64Encoded %v for Content-Type %q", name, ev.IsBase64Encoded, header(ev.Headers, "Content-Type"))
			}
		case "authorizer":
			var ev events.APIGatewayCustomAuthorizerRequest
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			parts := strings.SplitN(ev.MethodArn, "/", 4)
			typ := str(get(s.props("UploadApi"), "DefinitionBody", "components", "securitySchemes", "FlowgateAuth", "x-amazon-apigateway-authorizer", "type"))
			if len(parts) != 4 || parts[1] != stage || !declared[parts[2]+" /"+parts[3]] || !strings.EqualFold(ev.Type, typ) {
				t.Errorf("%s: %s (%s) is not a %s-authorized route of the API", name, ev.MethodArn, ev.Type, typ)
			}
		case "consumer":
			var ev map[string]any
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			pattern := mapOf(get(s.props("ConsumerFunction"), "Events", "UploadCompleted", "Properties", "Pattern"))
			if ok, err := matchPattern(pattern, ev); err != nil || !ok {
				t.Errorf("%s does not pass the consumer's rule %v (%v)", name, pattern, err)
			}
		case "assemble":
			var ev struct{ Records []map[string]any }
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			filters := streamFilters(t, s)
			for i, r := range ev.Records {
				if !strings.HasPrefix(str(r["eventSourceARN"]), "arn:aws:dynamodb:") || !strings.Contains(str(r["eventSourceARN"]), ":table/") ||
					!strings.Contains(str(r["eventSourceARN"]), "/stream/") || str(get(r, "dynamodb", "StreamViewType")) != "NEW_AND_OLD_IMAGES" {
					t.Errorf("%s record %d is not from a NEW_AND_OLD_IMAGES table stream", name, i)
				}
				if !anyMatch(t, filters, r) {
					t.Errorf("%s record %d (%s) would be filtered out before the assembler", name, i, r["eventName"])
				}
			}
		case "count":
			// The form the rule's input transformer writes: see
			// TestCountFunctionEvent, which compares the two.
			var ev events.S3Event
			if err := json.Unmarshal(b, &ev); err != nil || len(ev.Records) != 1 || !strings.HasPrefix(ev.Records[0].EventName, "ObjectCreated:") ||
				!strings.HasPrefix(ev.Records[0].S3.Object.URLDecodedKey, s3store.DefaultStagingPrefix) {
				t.Errorf("%s is not an Object Created event of a chunk: %+v %v", name, ev, err)
			}
		default:
			t.Errorf("%s: no check for %s events", name, fn)
		}
	}
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func firstKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
