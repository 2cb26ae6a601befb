package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/auth"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/config"
)

// readSamconfig reads the TOML subset samconfig.toml uses: [a.b.c] tables
// and key = "string" | true | false | number lines.
func readSamconfig(t *testing.T) map[string]map[string]any {
	f, err := os.Open("../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]any{"": {}}
	table := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			table = strings.Trim(line, "[]")
			if _, dup := out[table]; dup {
				t.Fatalf("samconfig.toml:%d: [%s] twice", n, table)
			}
			out[table] = map[string]any{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("samconfig.toml:%d: %q", n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			var val any
			switch {
			case strings.HasPrefix(v, `"`):
				s, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("samconfig.toml:%d: %v", n, err)
				}
				val = s
			case v == "true" || v == "false":
				val = v == "true"
			default:
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("samconfig.toml:%d: %q", n, v)
				}
				val = f
			}
			out[table][k] = val
		}
	}
	return out
}

// allowedParameter tells whether a value is one CloudFormation would take.
func allowedParameter(t *testing.T, p map[string]any, value string) bool {
	if av := strs(p["AllowedValues"]); len(av) > 0 && !slices.Contains(av, value) {
		return false
	}
	if pat := str(p["AllowedPattern"]); pat != "" {
		// CloudFormation's patterns are Java's; RE2 has no lookahead, so
		// a leading ^(?!x) is checked by hand.
		if m := regexp.MustCompile(`^\^\(\?!([^)]*)\)`).FindStringSubmatch(pat); m != nil {
			if strings.HasPrefix(value, m[1]) {
				return false
			}
			pat = "^" + pat[len(m[0]):]
		}
		if !regexp.MustCompile("^(?:" + pat + ")$").MatchString(value) {
			return false
		}
	}
	if str(p["Type"]) == "Number" {
		n, err := strconv.Atoi(value)
		if err != nil {
			return false
		}
		if mn, ok := p["MinValue"].(int); ok && n < mn {
			return false
		}
		if mx, ok := p["MaxValue"].(int); ok && n > mx {
			return false
		}
	}
	return true
}

// Parameters: the defaults are valid, the patterns admit only what the
// code parses, and every variant the tests use is a valid stack.
func TestParameters(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	params := mapOf(raw["Parameters"])
	for name, p := range params {
		if d, ok := mapOf(p)["Default"]; !ok || !allowedParameter(t, mapOf(p), str(d)) {
			t.Errorf("parameter %s: default %v is not allowed by its own constraints", name, d)
		}
		if str(mapOf(p)["Description"]) == "" {
			t.Errorf("parameter %s has no description", name)
		}
	}
	for _, v := range variants {
		for k, val := range v.params {
			if !allowedParameter(t, mapOf(params[k]), val) {
				t.Errorf("variant %s: %s=%q is not allowed", v.name, k, val)
			}
		}
	}
	for _, size := range []string{"1", "4500000", "4MiB", "4 MiB", "10GiB", "2TB", "12B"} {
		_, err := config.ParseSize(size)
		if allowedParameter(t, mapOf(params["MaxFileSize"]), size) != (err == nil) {
			t.Errorf("size %q: the parameter pattern and config.ParseSize disagree", size)
		}
	}
	for _, bad := range []string{"4 mb", "-1", "1.5GiB", "lots"} {
		if allowedParameter(t, mapOf(params["MaxChunkSize"]), bad) {
			t.Errorf("size %q passes the parameter pattern", bad)
		}
	}
	for _, bad := range []string{"staging/", "staging/x/", "files", "/files/", "a//"} {
		if allowedParameter(t, mapOf(params["FinishedPrefix"]), bad) {
			t.Errorf("FinishedPrefix %q is allowed; awsdeploy.Load refuses it, so the functions could not start", bad)
		}
	}
	for _, origins := range []string{"*", "https://a.example", "https://a.example,http://localhost:8080", "https://a.example, https://b.example"} {
		if !allowedParameter(t, mapOf(params["AllowedOrigins"]), origins) {
			t.Errorf("AllowedOrigins %q is refused", origins)
		}
	}
	if !slices.Equal(strs(get(params, "AuthMode", "AllowedValues")), awsdeploy.AuthModes) {
		t.Errorf("AuthMode's values %v, awsdeploy.AuthModes %v", get(params, "AuthMode", "AllowedValues"), awsdeploy.AuthModes)
	}
	if get(params, "JwtSecret", "NoEcho") != true {
		t.Error("JwtSecret is shown in the console")
	}
}

// samconfig.toml: cached and parallel builds, a deploy that asks before
// changing anything, with the capability the template's roles need and
// parameter overrides the template takes; sam local settings.
func TestSamconfig(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	c := readSamconfig(t)
	if c[""]["version"] != 0.1 {
		t.Errorf("version = %v", c[""]["version"])
	}
	build := c["default.build.parameters"]
	if build["cached"] != true || build["parallel"] != true {
		t.Errorf("build %v: want cached and parallel", build)
	}
	deploy := c["default.deploy.parameters"]
	if deploy["resolve_s3"] != true || deploy["confirm_changeset"] != true {
		t.Errorf("deploy %v: want resolve_s3 and confirm_changeset", deploy)
	}
	caps := strings.Fields(str(deploy["capabilities"]))
	named := false
	for _, r := range mapOf(raw["Resources"]) {
		if str(get(r, "Type")) == "AWS::IAM::Role" && get(r, "Properties", "RoleName") != nil {
			named = true
		}
	}
	if !slices.Contains(caps, "CAPABILITY_IAM") && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") || named && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
		t.Errorf("capabilities %v do not cover the template's roles", caps)
	}
	overrides := regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(str(deploy["parameter_overrides"]), -1)
	if len(overrides) == 0 {
		t.Error("no parameter_overrides")
	}
	for _, o := range overrides {
		p, ok := mapOf(raw["Parameters"])[o[1]]
		if !ok || !allowedParameter(t, mapOf(p), o[2]) {
			t.Errorf("parameter_overrides: %s=%q is not a valid parameter of the template", o[1], o[2])
		}
	}
	local := c["default.local_start_api.parameters"]
	if local["env_vars"] != "env.json" || local["host"] != "127.0.0.1" {
		t.Errorf("local_start_api %v: want env_vars env.json on 127.0.0.1", local)
	}
}

// env.json.example: only variables the template declares for that function
// (sam local ignores the rest), endpoints on this machine, a CA bundle the
// Makefile can put in the package, and values the functions' loaders take.
// The authorizer's settings accept the sample token in events/.
func TestEnvJSONExample(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params)
	b, err := os.ReadFile("../env.json.example")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]string
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("env.json.example: %v", err)
	}
	declared := func(fn, name string) bool {
		_, ok := mapOf(get(raw, "Resources", fn, "Properties", "Environment", "Variables"))[name]
		return ok
	}
	makefile, _ := os.ReadFile("../Makefile")
	for section, vars := range doc {
		for name, value := range vars {
			if section == "Parameters" {
				found := false
				for _, fn := range s.ofType("AWS::Serverless::Function") {
					found = found || declared(fn, name)
				}
				if !found {
					t.Errorf("env.json.example Parameters.%s: no function declares it, sam local would ignore it", name)
				}
				continue
			}
			if _, ok := s.resources[section]; !ok {
				t.Errorf("env.json.example: %s is not a function of the template", section)
				continue
			}
			if !declared(section, name) {
				t.Errorf("env.json.example %s.%s: the template does not declare it, so sam local would ignore it", section, name)
			}
			if strings.HasPrefix(name, "AWS_ENDPOINT_URL_") && !regexp.MustCompile(`^https?://(127\.0\.0\.1|localhost):\d+$`).MatchString(value) {
				t.Errorf("env.json.example %s.%s=%q is not a local endpoint", section, name, value)
			}
			if name == "AWS_CA_BUNDLE" && (value != "/var/task/local-ca.pem" || !strings.Contains(string(makefile), "local-ca.pem")) {
				t.Errorf("env.json.example %s: AWS_CA_BUNDLE %q is not the local-ca.pem the Makefile adds to the package", section, value)
			}
		}
	}
	merged := func(fn string) map[string]string {
		env := functionEnv(s, fn)
		for k, v := range doc["Parameters"] {
			if _, ok := env[k]; ok {
				env[k] = v
			}
		}
		for k, v := range doc[fn] {
			env[k] = v
		}
		return env
	}
	for _, fn := range []string{"UploadFunction", "AssembleFunction"} {
		if _, err := awsdeploy.Load(getenvOf(merged(fn))); err != nil {
			t.Errorf("%s with env.json.example: %v", fn, err)
		}
	}
	c, err := auth.Load(getenvOf(merged("AuthorizerFunction")))
	if err != nil {
		t.Fatalf("AuthorizerFunction with env.json.example: %v", err)
	}
	v, err := auth.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayCustomAuthorizerRequest
	eb, _ := os.ReadFile("../events/authorizer-token.json")
	json.Unmarshal(eb, &ev)
	if _, err := (&auth.Authorizer{Verifier: v}).Handle(context.Background(), ev); err != nil {
		t.Errorf("events/authorizer-token.json is refused with env.json.example's settings: %v", err)
	}
}

// docs/deploy.md explains every parameter, output and alarm, and the make
// targets of the deployment.
func TestDeployDocs(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	b, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var names []string
	for k := range mapOf(raw["Parameters"]) {
		names = append(names, k)
	}
	for k := range mapOf(raw["Outputs"]) {
		names = append(names, k)
	}
	for k, r := range mapOf(raw["Resources"]) {
		if str(get(r, "Type")) == "AWS::CloudWatch::Alarm" {
			names = append(names, k)
		}
	}
	names = append(names, "make build", "make deploy", "make package-size", "sam local start-api", "env.json", "*/*", "forceChunkSize")
	for _, n := range names {
		if !strings.Contains(doc, n) {
			t.Errorf("docs/deploy.md does not mention %s", n)
		}
	}
}
