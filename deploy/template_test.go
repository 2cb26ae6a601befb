package deploy

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/auth"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// variant is a set of parameter values the template is evaluated with.
type variant struct {
	name   string
	params map[string]string
}

var variants = []variant{
	{"defaults", nil},
	{"cognito", map[string]string{"AuthMode": "cognito", "CognitoUserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Abc123"}},
	{"jwt-secret+everything", map[string]string{
		"AuthMode": "jwt", "JwtSecret": strings.Repeat("s", 40), "JwtIssuer": "https://issuer.example/", "JwtAudience": "flowgate",
		"EnableTracing": "true", "ExampleConsumer": "true", "AlarmEmail": "ops@example.com",
		"AllowedOrigins": "https://a.example, https://b.example", "FinishedPrefix": "done/uploads/",
		"MaxFileSize": "123MiB", "MaxChunkSize": "2MiB", "ExpiryDays": "3", "StagingRetentionDays": "45",
		"DataPath": "direct",
		"LogLevel": "debug", "LogRetentionDays": "7", "ThrottleRateLimit": "11", "ThrottleBurstLimit": "22",
	}},
	{"jwt-keys", map[string]string{"AuthMode": "jwt", "JwtPublicKeys": ""}}, // a JWKS, see init
	{"finished-files", map[string]string{
		"ExampleConsumer": "true", "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
		"ObjectTags": "app=photos,retention=1y", "StorageClass": "INTELLIGENT_TIERING", "ContentDisposition": "inline",
		"FinishedKeyLayout": "{namespace}/{uploadKey}/{name}", "AllowedTypes": "image/*, application/pdf, .jpg, .png, .pdf",
	}},
}

func init() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}}})
	variants[3].params["JwtPublicKeys"] = string(b)
}

// functionDirs lists functions/*.
func functionDirs(t testing.TB) []string {
	entries, err := os.ReadDir("../functions")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// logicalID is the template's name for functions/<dir>.
func logicalID(dir string) string { return strings.ToUpper(dir[:1]) + dir[1:] + "Function" }

// functionEnv is a function's evaluated environment.
func functionEnv(s *stack, id string) map[string]string {
	env := map[string]string{}
	for k, v := range mapOf(get(s.props(id), "Environment", "Variables")) {
		env[k] = str(v)
	}
	return env
}

func getenvOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// leftAtDefault are the settings a function's code reads that the template
// deliberately does not set, and why. Anything else read must be set, and
// anything set must be read.
var leftAtDefault = map[string]map[string]string{
	"UploadFunction": {
		"FLOWGATE_NAMESPACE_HEADER":     "behind API Gateway a client can send any header: identity comes from FLOWGATE_AUTH",
		"FLOWGATE_MAX_CHUNKS":           "100,000 chunks of 4 MiB is 390 GiB, past MaxFileSize's useful range",
		"FLOWGATE_RECORD_TTL":           "a week of status for finished uploads is the design's default",
		"FLOWGATE_EVENT_BUS":            "the upload function never publishes",
		"FLOWGATE_ASSEMBLY_LEASE":       "the upload function never assembles",
		"FLOWGATE_ASSEMBLY_CONCURRENCY": "the upload function never assembles",
		"FLOWGATE_FAILURE_QUEUE":        "only the re-drive replays the failure queue",
		"FLOWGATE_CONTENT_DISPOSITION":  "the upload function never writes a finished file",
		"FLOWGATE_STORAGE_CLASS":        "chunks stay STANDARD: they live a few days",
		"FLOWGATE_OBJECT_TAGS":          "the upload function never writes a finished file",
		"FLOWGATE_DIRECT_URL_LIFE":      "15 minutes: long enough for a large chunk on a slow line, short for a leaked URL",
		"FLOWGATE_COUNT_FAILURE_QUEUE":  "only the re-drive replays the counting function's failures",
	},
	"AssembleFunction": {
		"FLOWGATE_NAMESPACE_HEADER":     "the assembler serves no requests",
		"FLOWGATE_AUTH":                 "the assembler serves no requests",
		"FLOWGATE_ALLOWED_ORIGINS":      "the assembler serves no requests",
		"FLOWGATE_MAX_FILE_SIZE":        "limits are enforced when chunks arrive",
		"FLOWGATE_MAX_CHUNK_SIZE":       "limits are enforced when chunks arrive",
		"FLOWGATE_MAX_CHUNKS":           "limits are enforced when chunks arrive",
		"FLOWGATE_EXPIRY":               "only counting a chunk sets the idle expiry",
		"FLOWGATE_RECORD_TTL":           "a week of status for finished uploads is the design's default",
		"FLOWGATE_ASSEMBLY_CONCURRENCY": "4 parts in flight per assembly suits the function's memory",
		"FLOWGATE_FAILURE_QUEUE":        "only the re-drive replays the failure queue (the assembler fills it, by its event source mapping)",
		"FLOWGATE_ALLOWED_TYPES":        "files are checked when their chunks arrive",
		"FLOWGATE_DATA_PATH":            "assembly is the same whichever way chunks came",
		"FLOWGATE_DIRECT_URL_LIFE":      "the assembler signs no URLs",
		"FLOWGATE_DIRECT_ENDPOINT":      "the assembler signs no URLs",
		"FLOWGATE_COUNT_FAILURE_QUEUE":  "only the re-drive replays the counting function's failures",
	},
	"RedriveFunction": {
		"FLOWGATE_NAMESPACE_HEADER":     "the re-drive serves no requests",
		"FLOWGATE_AUTH":                 "the re-drive serves no requests",
		"FLOWGATE_ALLOWED_ORIGINS":      "the re-drive serves no requests",
		"FLOWGATE_MAX_FILE_SIZE":        "limits are enforced when chunks arrive",
		"FLOWGATE_MAX_CHUNK_SIZE":       "limits are enforced when chunks arrive",
		"FLOWGATE_MAX_CHUNKS":           "limits are enforced when chunks arrive",
		"FLOWGATE_EXPIRY":               "only counting a chunk sets the idle expiry",
		"FLOWGATE_RECORD_TTL":           "a week of status for finished uploads is the design's default",
		"FLOWGATE_ASSEMBLY_CONCURRENCY": "4 parts in flight per assembly suits the function's memory",
		"FLOWGATE_ALLOWED_TYPES":        "files are checked when their chunks arrive",
		"FLOWGATE_DIRECT_URL_LIFE":      "the re-drive signs no URLs",
		"FLOWGATE_DIRECT_ENDPOINT":      "the re-drive signs no URLs",
	},
	"CountFunction": {
		"FLOWGATE_NAMESPACE_HEADER":     "the counting function serves no requests",
		"FLOWGATE_AUTH":                 "the counting function serves no requests",
		"FLOWGATE_ALLOWED_ORIGINS":      "the counting function serves no requests",
		"FLOWGATE_ALLOWED_TYPES":        "files are checked when their URLs are asked for",
		"FLOWGATE_MAX_FILE_SIZE":        "limits are checked when URLs are asked for; a chunk is checked against its record",
		"FLOWGATE_MAX_CHUNK_SIZE":       "limits are checked when URLs are asked for; a chunk is checked against its record",
		"FLOWGATE_MAX_CHUNKS":           "limits are checked when URLs are asked for; a chunk is checked against its record",
		"FLOWGATE_RECORD_TTL":           "a week of status for finished uploads is the design's default",
		"FLOWGATE_FINISHED_PREFIX":      "the counting function never writes a finished file",
		"FLOWGATE_FINISHED_LAYOUT":      "the counting function never writes a finished file",
		"FLOWGATE_CONTENT_DISPOSITION":  "the counting function never writes a finished file",
		"FLOWGATE_STORAGE_CLASS":        "the counting function never writes a finished file",
		"FLOWGATE_KMS_KEY":              "the counting function writes nothing",
		"FLOWGATE_OBJECT_TAGS":          "the counting function never writes a finished file",
		"FLOWGATE_EVENT_BUS":            "the counting function never publishes",
		"FLOWGATE_ASSEMBLY_LEASE":       "the counting function never assembles",
		"FLOWGATE_ASSEMBLY_CONCURRENCY": "the counting function never assembles",
		"FLOWGATE_FAILURE_QUEUE":        "only the re-drive replays the failure queues",
		"FLOWGATE_COUNT_FAILURE_QUEUE":  "only the re-drive replays the failure queues (Lambda fills this one)",
		"FLOWGATE_DIRECT_URL_LIFE":      "the counting function signs no URLs",
		"FLOWGATE_DIRECT_ENDPOINT":      "the counting function signs no URLs",
	},
	"AuthorizerFunction": {
		"FLOWGATE_JWT_LEEWAY": "30 seconds of clock skew",
	},
	"ConsumerFunction": {},
}

// sdkEndpointVars are the SDK settings a function may declare (empty) so
// that `sam local --env-vars` can point it at local servers: the endpoint
// of each service its code calls, and the CA bundle.
func sdkEndpointVars(facts codeFacts) map[string]bool {
	vars := map[string]bool{}
	// The variable is named after the SDK's service ID ("DynamoDB Streams"
	// gives AWS_ENDPOINT_URL_DYNAMODB_STREAMS).
	serviceID := map[string]string{"dynamodbstreams": "DYNAMODB_STREAMS"}
	for op := range facts.Ops {
		svc, _, _ := strings.Cut(op, ":")
		if id, ok := serviceID[svc]; ok {
			svc = id
		}
		vars["AWS_ENDPOINT_URL_"+strings.ToUpper(svc)] = true
	}
	if len(vars) > 0 {
		vars["AWS_CA_BUNDLE"] = true
	}
	return vars
}

// Every function's environment is exactly what its code reads (the names
// are read from the code, see calls_test.go), less a short list left at
// their defaults on purpose; the SDK endpoint variables are there, empty,
// only for the services the function calls.
func TestEnvironmentMatchesCode(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params) // every function present
	for _, dir := range functionDirs(t) {
		id := logicalID(dir)
		t.Run(id, func(t *testing.T) {
			facts := functionFacts(t, dir)
			env := functionEnv(s, id)
			defaults, ok := leftAtDefault[id]
			if !ok {
				t.Fatalf("leftAtDefault has no entry for %s", id)
			}
			endpoints := sdkEndpointVars(facts)
			for name, v := range env {
				switch {
				case strings.HasPrefix(name, "FLOWGATE_"):
					if !facts.Env[name] {
						t.Errorf("%s sets %s, which its code never reads", id, name)
					}
					if _, ok := defaults[name]; ok {
						t.Errorf("%s sets %s, which leftAtDefault says it leaves alone", id, name)
					}
				case endpoints[name]:
					if v != "" {
						t.Errorf("%s: %s=%q; it must be empty on AWS (env.json sets it for sam local)", id, name, v)
					}
				default:
					t.Errorf("%s sets %s, which is neither a setting of its code nor an endpoint of a service it calls", id, name)
				}
			}
			for name := range facts.Env {
				_, set := env[name]
				_, left := defaults[name]
				if !set && !left {
					t.Errorf("%s's code reads %s, which the template does not set (set it, or add it to leftAtDefault with the reason)", id, name)
				}
			}
			for name := range defaults {
				if !facts.Env[name] {
					t.Errorf("leftAtDefault[%s] names %s, which the code no longer reads", id, name)
				}
			}
		})
	}
}

// The environment the template gives the functions is one their loaders
// take, for every variant, and it carries the parameters through.
func TestEnvironmentLoads(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	for _, v := range variants {
		s := evaluate(t, raw, v.params)
		p := s.params
		for _, id := range []string{"UploadFunction", "AssembleFunction"} {
			cfg, err := awsdeploy.Load(getenvOf(functionEnv(s, id)))
			if err != nil {
				t.Errorf("%s %s: awsdeploy.Load: %v", v.name, id, err)
				continue
			}
			if cfg.Bucket != s.ref("UploadBucket") || cfg.Table != s.ref("LedgerTable") {
				t.Errorf("%s %s: bucket %q table %q", v.name, id, cfg.Bucket, cfg.Table)
			}
			if cfg.StagingPrefix != s3store.DefaultStagingPrefix || cfg.FinishedPrefix != p["FinishedPrefix"] {
				t.Errorf("%s %s: prefixes %q %q", v.name, id, cfg.StagingPrefix, cfg.FinishedPrefix)
			}
			if cfg.LogLevel.String() != strings.ToUpper(p["LogLevel"]) {
				t.Errorf("%s %s: log level %v, want %s", v.name, id, cfg.LogLevel, p["LogLevel"])
			}
			switch id {
			case "UploadFunction":
				maxFile, _ := config.ParseSize(p["MaxFileSize"])
				maxChunk, _ := config.ParseSize(p["MaxChunkSize"])
				if p["MaxChunkSize"] == "" { // the data path's own limit
					maxChunk = awsdeploy.LambdaMaxChunk
					if p["DataPath"] == awsdeploy.DataPathDirect {
						maxChunk = awsdeploy.DirectMaxChunk
					}
				}
				days, _ := strconv.Atoi(p["ExpiryDays"])
				var origins []string
				for _, o := range strings.Split(p["AllowedOrigins"], ",") {
					origins = append(origins, strings.TrimSpace(o))
				}
				if cfg.Limits.MaxFileSize != maxFile || cfg.Limits.MaxChunkSize != maxChunk ||
					cfg.IdleTTL != time.Duration(days)*24*time.Hour || cfg.Auth != p["AuthMode"] ||
					!slices.Equal(cfg.AllowedOrigins, origins) {
					t.Errorf("%s upload: config %+v does not follow the parameters %v", v.name, cfg, p)
				}
				if cfg.DataPath != p["DataPath"] {
					t.Errorf("%s upload: data path %q, parameter %q", v.name, cfg.DataPath, p["DataPath"])
				}
				if cfg.DataPath == awsdeploy.DataPathProxy && cfg.Limits.MaxChunkSize > awsdeploy.LambdaMaxChunk {
					t.Errorf("%s: MaxChunkSize %d is over what a Lambda request carries (%d)", v.name, cfg.Limits.MaxChunkSize, awsdeploy.LambdaMaxChunk)
				}
			case "AssembleFunction":
				timeout, _ := strconv.Atoi(str(s.props(id)["Timeout"]))
				if cfg.Lease < time.Duration(timeout)*time.Second {
					t.Errorf("%s: assembly lease %v is shorter than the function's timeout %ds: a live assembly could be taken over", v.name, cfg.Lease, timeout)
				}
				if cfg.EventBus != s.ref("UploadsBus") {
					t.Errorf("%s: the assembler publishes to %q, not the stack's bus %q", v.name, cfg.EventBus, s.ref("UploadsBus"))
				}
			}
		}
		if _, ok := s.resources["AuthorizerFunction"]; ok {
			c, err := auth.Load(getenvOf(functionEnv(s, "AuthorizerFunction")))
			if err != nil {
				t.Errorf("%s authorizer: auth.Load: %v", v.name, err)
			} else if c.Issuer != p["JwtIssuer"] || c.Audience != p["JwtAudience"] || string(c.Secret) != p["JwtSecret"] {
				t.Errorf("%s authorizer: %+v does not follow the parameters", v.name, c)
			}
		}
		if _, ok := s.resources["ConsumerFunction"]; ok {
			e := config.NewEnv(getenvOf(functionEnv(s, "ConsumerFunction")))
			e.Level("FLOWGATE_LOG_LEVEL", slog.LevelInfo)
			if err := e.Err(); err != nil {
				t.Errorf("%s consumer: %v", v.name, err)
			}
		}
	}
}

// Every function is a directory of functions/ built the way SAM's
// makefile build method calls it, on provided.al2023/arm64, with its own
// role and its own JSON log group; the optional ones are behind conditions
// that are off by default.
func TestFunctions(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	all := evaluate(t, raw, variants[2].params)
	defaults := evaluate(t, raw, nil)
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range functionDirs(t) {
		want = append(want, logicalID(d))
	}
	if got := all.ofType("AWS::Serverless::Function"); !slices.Equal(got, want) {
		t.Fatalf("template functions %v, functions/ directories %v", got, want)
	}
	logGroups := map[string]string{}
	for _, id := range want {
		p := all.props(id)
		if str(p["Runtime"]) != "provided.al2023" || strings.Join(strs(p["Architectures"]), ",") != "arm64" || str(p["Handler"]) != "bootstrap" {
			t.Errorf("%s: runtime %v %v %v, want provided.al2023, arm64, bootstrap", id, p["Runtime"], p["Architectures"], p["Handler"])
		}
		if str(get(raw, "Resources", id, "Metadata", "BuildMethod")) != "makefile" || str(p["CodeUri"]) != "." {
			t.Errorf("%s: want BuildMethod makefile with CodeUri . (the Makefile's directory)", id)
		}
		if !regexp.MustCompile(`(?m)^build-` + id + `:`).Match(makefile) {
			t.Errorf("the Makefile has no build-%s target for sam build", id)
		}
		if str(get(p, "LoggingConfig", "LogFormat")) != "JSON" {
			t.Errorf("%s: logs are not JSON", id)
		}
		lg := str(get(p, "LoggingConfig", "LogGroup"))
		if other, dup := logGroups[lg]; dup || lg == "" {
			t.Errorf("%s: log group %q (shared with %q)", id, lg, other)
		}
		logGroups[lg] = id
		retention := false
		for _, g := range all.ofType("AWS::Logs::LogGroup") {
			if all.ref(g) == lg && str(all.props(g)["RetentionInDays"]) == all.params["LogRetentionDays"] {
				retention = true
			}
		}
		if !retention {
			t.Errorf("%s: its log group is not one of the template's, kept LogRetentionDays", id)
		}
		if str(p["Tracing"]) != "Active" || str(defaults.props("UploadFunction")["Tracing"]) != "PassThrough" {
			t.Errorf("%s: tracing %v; want Active only with EnableTracing", id, p["Tracing"])
		}
	}
	for id, cond := range map[string]string{"AuthorizerFunction": "AuthJwt", "ConsumerFunction": "ExampleConsumerOn"} {
		if str(get(raw, "Resources", id, "Condition")) != cond {
			t.Errorf("%s must be behind condition %s", id, cond)
		}
		if _, on := defaults.resources[id]; on {
			t.Errorf("%s is deployed by default", id)
		}
	}
	if cr := get(raw, "Parameters", "ExampleConsumer", "Default"); str(cr) != "false" {
		t.Errorf("ExampleConsumer defaults to %v", cr)
	}
}

// The evaluation itself: every variant resolves, every parameter and
// condition is used, every reference names something that exists under the
// same conditions (a reference to a resource its condition left out fails
// in evaluate).
func TestTemplateEvaluates(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	if raw["Transform"] != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform %v", raw["Transform"])
	}
	for _, v := range variants {
		evaluate(t, raw, v.params).outputs()
	}
	text, _ := json.Marshal(raw["Resources"])
	outs, _ := json.Marshal(raw["Outputs"])
	conds, _ := json.Marshal(raw["Conditions"])
	rules, _ := json.Marshal(raw["Rules"])
	body := string(text) + string(outs) + string(conds) + string(rules)
	for name := range mapOf(raw["Parameters"]) {
		if !strings.Contains(body, `"Ref":"`+name+`"`) && !strings.Contains(body, "${"+name+"}") {
			t.Errorf("parameter %s is not used", name)
		}
	}
	for name := range mapOf(raw["Conditions"]) {
		if !strings.Contains(string(text)+string(outs)+string(conds), `"`+name+`"`) {
			t.Errorf("condition %s is not used", name)
		}
	}
}

// The bucket: encrypted, private, TLS only, chunks expire under the same
// staging prefix the functions use, incomplete multipart uploads are
// aborted, and EventBridge notifications are on.
func TestBucket(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params)
	b := s.props("UploadBucket")
	if get(b, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
		t.Error("bucket without default encryption")
	}
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if get(b, "PublicAccessBlockConfiguration", k) != true {
			t.Errorf("public access block %s is not on", k)
		}
	}
	if get(b, "NotificationConfiguration", "EventBridgeConfiguration", "EventBridgeEnabled") != true {
		t.Error("EventBridge notifications are off")
	}
	if str(get(raw, "Resources", "UploadBucket", "DeletionPolicy")) != "Retain" {
		t.Error("deleting the stack would try to delete the users' files")
	}
	var expire, abort bool
	staging := functionEnv(s, "UploadFunction")["FLOWGATE_STAGING_PREFIX"]
	for _, r := range listOf(get(b, "LifecycleConfiguration", "Rules")) {
		if str(get(r, "Status")) != "Enabled" {
			continue
		}
		prefix := str(get(r, "Prefix")) + str(get(r, "Filter", "Prefix"))
		if get(r, "ExpirationInDays") != nil {
			if prefix != staging || staging == "" {
				t.Errorf("an expiration rule on %q, not the staging prefix %q: finished files must never expire", prefix, staging)
			}
			if str(get(r, "ExpirationInDays")) != s.params["StagingRetentionDays"] {
				t.Errorf("staging expiry %v, want StagingRetentionDays", get(r, "ExpirationInDays"))
			}
			expire = true
		}
		if d, ok := get(r, "AbortIncompleteMultipartUpload", "DaysAfterInitiation").(int); ok && d > 0 {
			// Multipart uploads build finished files: the rule must reach them.
			if prefix != "" && !strings.HasPrefix(s.params["FinishedPrefix"], prefix) {
				t.Errorf("the abort rule's prefix %q misses the finished prefix", prefix)
			}
			abort = true
		}
	}
	if !expire || !abort {
		t.Errorf("lifecycle: staging expiry %v, abort incomplete multipart uploads %v", expire, abort)
	}
	for _, fn := range []string{"UploadFunction", "AssembleFunction"} {
		if got := functionEnv(s, fn)["FLOWGATE_STAGING_PREFIX"]; got != staging {
			t.Errorf("%s stages under %q, the lifecycle rule expires %q", fn, got, staging)
		}
	}

	var policy map[string]any
	for _, id := range s.ofType("AWS::S3::BucketPolicy") {
		if str(s.props(id)["Bucket"]) == s.ref("UploadBucket") {
			policy = s.props(id)
		}
	}
	tlsOnly := false
	for _, st := range listOf(get(policy, "PolicyDocument", "Statement")) {
		res := strs(get(st, "Resource"))
		if str(get(st, "Effect")) == "Deny" && str(get(st, "Principal")) == "*" && slices.Contains(strs(get(st, "Action")), "s3:*") &&
			str(get(st, "Condition", "Bool", "aws:SecureTransport")) == "false" &&
			slices.Contains(res, s.getAtt("UploadBucket", "Arn")) && slices.Contains(res, s.getAtt("UploadBucket", "Arn")+"/*") {
			tlsOnly = true
		}
	}
	if !tlsOnly {
		t.Error("no bucket policy denying requests without TLS on the bucket and its objects")
	}
}

// The table is the one dynamoledger creates locally (same keys and
// billing), with TTL on its expiry attribute, a stream of both images and
// point-in-time recovery; the assembler's event source mapping filters,
// reports partial failures, retries a bounded number of times, bisects and
// sends what it gives up on to the failure queue.
func TestTableAndStream(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, nil)
	tb := s.props("LedgerTable")
	schema := dynamoledger.TableSchema("x")
	var attrs, keys []string
	for _, a := range schema.AttributeDefinitions {
		attrs = append(attrs, *a.AttributeName+":"+string(a.AttributeType))
	}
	for _, k := range schema.KeySchema {
		keys = append(keys, *k.AttributeName+":"+string(k.KeyType))
	}
	var gotAttrs, gotKeys []string
	for _, a := range listOf(tb["AttributeDefinitions"]) {
		gotAttrs = append(gotAttrs, str(get(a, "AttributeName"))+":"+str(get(a, "AttributeType")))
	}
	for _, k := range listOf(tb["KeySchema"]) {
		gotKeys = append(gotKeys, str(get(k, "AttributeName"))+":"+str(get(k, "KeyType")))
	}
	sort.Strings(attrs)
	sort.Strings(gotAttrs)
	if !slices.Equal(attrs, gotAttrs) || !slices.Equal(keys, gotKeys) || str(tb["BillingMode"]) != string(schema.BillingMode) {
		t.Errorf("table %v %v %v, dynamoledger.TableSchema %v %v %v", gotAttrs, gotKeys, tb["BillingMode"], attrs, keys, schema.BillingMode)
	}
	if str(tb["BillingMode"]) != "PAY_PER_REQUEST" {
		t.Error("the table is not on demand")
	}
	if str(get(tb, "StreamSpecification", "StreamViewType")) != "NEW_AND_OLD_IMAGES" {
		t.Error("the stream must carry both images: REMOVE records need the old one")
	}
	if str(get(tb, "TimeToLiveSpecification", "AttributeName")) != dynamoledger.TTLAttribute || get(tb, "TimeToLiveSpecification", "Enabled") != true {
		t.Errorf("TTL %v, want %s on", tb["TimeToLiveSpecification"], dynamoledger.TTLAttribute)
	}
	if get(tb, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled") != true {
		t.Error("point-in-time recovery is off")
	}

	var mapping map[string]any
	for name, ev := range mapOf(s.props("AssembleFunction")["Events"]) {
		if str(get(ev, "Type")) == "DynamoDB" {
			if mapping != nil {
				t.Errorf("two stream mappings (%s)", name)
			}
			mapping = mapOf(get(ev, "Properties"))
		}
	}
	if mapping == nil {
		t.Fatal("the assembler has no DynamoDB stream event")
	}
	if mapping["Stream"] != s.getAtt("LedgerTable", "StreamArn") {
		t.Errorf("stream %v", mapping["Stream"])
	}
	if !slices.Equal(strs(mapping["FunctionResponseTypes"]), []string{"ReportBatchItemFailures"}) {
		t.Error("partial batch failures are not reported: one failed record would retry the whole batch")
	}
	if n, ok := mapping["MaximumRetryAttempts"].(int); !ok || n < 1 || n > 10000 {
		t.Errorf("MaximumRetryAttempts %v: retries must be bounded (the default -1 retries until the record expires)", mapping["MaximumRetryAttempts"])
	}
	if mapping["BisectBatchOnFunctionError"] != true {
		t.Error("no bisect on error")
	}
	if str(get(mapping, "DestinationConfig", "OnFailure", "Destination")) != s.getAtt("AssemblyFailureQueue", "Arn") ||
		s.typeOf("AssemblyFailureQueue") != "AWS::SQS::Queue" {
		t.Error("no on-failure SQS destination")
	}
	if len(listOf(get(mapping, "FilterCriteria", "Filters"))) == 0 {
		t.Error("no FilterCriteria")
	}
	if str(mapping["StartingPosition"]) != "TRIM_HORIZON" {
		t.Error("StartingPosition LATEST could miss uploads that became ready before the mapping existed")
	}
	if n, _ := mapping["BatchSize"].(int); n < 1 || n > 10 {
		t.Errorf("BatchSize %v: a batch of large assemblies must fit in one invocation", mapping["BatchSize"])
	}
}

// Alarms watch the failure queue and each function's errors (the optional
// ones with their function), and notify the topic only when there is one.
func TestAlarms(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	for _, v := range []variant{variants[0], variants[2]} {
		s := evaluate(t, raw, v.params)
		watched := map[string]bool{}
		for _, id := range s.ofType("AWS::CloudWatch::Alarm") {
			a := s.props(id)
			for _, d := range listOf(a["Dimensions"]) {
				watched[str(a["MetricName"])+"/"+str(get(d, "Value"))] = true
			}
			actions := strs(a["AlarmActions"])
			if _, topic := s.resources["AlarmTopic"]; topic != (len(actions) == 1 && actions[0] == s.ref("AlarmTopic")) {
				t.Errorf("%s %s: actions %v", v.name, id, actions)
			}
			if str(a["AlarmDescription"]) == "" {
				t.Errorf("%s has no description", id)
			}
		}
		want := []string{"ApproximateNumberOfMessagesVisible/" + s.getAtt("AssemblyFailureQueue", "QueueName"),
			"IteratorAge/" + s.ref("AssembleFunction"), "5XXError/" + str(s.props("UploadApi")["Name"])}
		for _, fn := range s.ofType("AWS::Serverless::Function") {
			if fn != "ConsumerFunction" { // the example's errors are its own business
				want = append(want, "Errors/"+s.ref(fn))
			}
		}
		for _, w := range want {
			if !watched[w] {
				t.Errorf("%s: no alarm on %s", v.name, w)
			}
		}
	}
}

// The outputs a static site and a consumer need, with the values they must have.
func TestOutputs(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, nil)
	out := s.outputs()
	stage := str(mapOf(s.resources["UploadApi"]["Properties"])["StageName"])
	want := map[string]string{
		"ApiUrl":          "https://" + s.ref("UploadApi") + ".execute-api." + region + ".amazonaws.com/" + stage + "/upload",
		"BucketName":      s.ref("UploadBucket"),
		"FinishedPrefix":  s.params["FinishedPrefix"],
		"TableName":       s.ref("LedgerTable"),
		"EventBusName":    s.ref("UploadsBus"),
		"EventBusArn":     s.getAtt("UploadsBus", "Arn"),
		"EventSource":     upload.EventSource,
		"EventDetailType": upload.EventDetailType,
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s = %q, want %q", k, out[k], v)
		}
	}
	if !strings.HasSuffix(out["ApiUrl"], "/upload") || !routes(t, s)["GET /upload"] {
		t.Error("ApiUrl is not the upload route")
	}
}
