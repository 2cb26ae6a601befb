package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/jsonshape"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// What DataPath direct needs of the template that no local server can
// show: MinIO has no per-bucket CORS (its CORS is server-wide), and make
// dev's notifications are MinIO's, not EventBridge's.

// corsRule is an S3 bucket CORS rule.
type corsRule struct {
	methods, origins, headers []string
}

// allows is S3's matching of a CORS preflight against a rule: the origin
// and the method match one of the rule's (an origin may hold one *), and
// every header asked for matches one of its AllowedHeaders (which may hold
// one * each), case-insensitively.
func (r corsRule) allows(origin, method string, headers []string) bool {
	match := func(pattern, s string, fold bool) bool {
		if fold {
			pattern, s = strings.ToLower(pattern), strings.ToLower(s)
		}
		before, after, wild := strings.Cut(pattern, "*")
		if !wild {
			return pattern == s
		}
		return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
	}
	if !slices.ContainsFunc(r.origins, func(o string) bool { return match(o, origin, false) }) || !slices.Contains(r.methods, method) {
		return false
	}
	for _, h := range headers {
		if !slices.ContainsFunc(r.headers, func(p string) bool { return match(p, h, true) }) {
			return false
		}
	}
	return true
}

// chunkHeaders are the headers the page sends with a chunk's PUT: those
// its URL signs (asked of the store's own code, with and without a KMS
// key) and the file's type.
func chunkHeaders(t *testing.T, kmsKey string) []string {
	t.Helper()
	c := s3.New(s3.Options{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	store := &s3store.Store{Client: c, Bucket: "b", KMSKey: kmsKey, Presign: s3.NewPresignClient(c)}
	info := upload.Info{Key: strings.Repeat("a", 64), TotalSize: 10 << 20, ChunkSize: 8 << 20, TotalChunks: 1}
	u, err := store.SignChunk(context.Background(), info, "0123456789abcdef", 1, []upload.Field{{Name: "flowChunkNumber", Value: "1"}}, "AAAAAAAAAAA=", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"Content-Type"}
	for h := range u.Headers {
		out = append(out, h)
	}
	return out
}

// The bucket lets a page on an allowed origin, and only there, PUT a chunk
// with every header its URL signs; nothing but PUT, and for DataPath proxy
// too (a PUT needs a URL the upload function signed, which proxy never
// does).
func TestBucketCORS(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	for _, v := range variants {
		s := evaluate(t, raw, v.params)
		rules := listOf(get(s.props("UploadBucket"), "CorsConfiguration", "CorsRules"))
		if len(rules) != 1 {
			t.Fatalf("%s: %d CORS rules, want the chunk PUT's", v.name, len(rules))
		}
		r := corsRule{methods: strs(get(rules[0], "AllowedMethods")), origins: strs(get(rules[0], "AllowedOrigins")), headers: strs(get(rules[0], "AllowedHeaders"))}
		if !slices.Equal(r.methods, []string{"PUT"}) {
			t.Errorf("%s: CORS methods %v, want PUT alone", v.name, r.methods)
		}
		headers := chunkHeaders(t, s.params["KmsKeyArn"])
		var origins []string
		for _, o := range strings.Split(s.params["AllowedOrigins"], ",") {
			origins = append(origins, strings.TrimSpace(o))
		}
		for _, o := range origins {
			if !r.allows(o, "PUT", headers) {
				t.Errorf("%s: the bucket refuses a chunk PUT from %q with %v (rule %+v)", v.name, o, headers, r)
			}
		}
		if origins[0] != "*" && r.allows("https://evil.example", "PUT", headers) {
			t.Errorf("%s: the bucket lets another origin PUT", v.name)
		}
		for _, m := range []string{"GET", "DELETE", "POST", "HEAD"} {
			if r.allows(origins[0], m, nil) {
				t.Errorf("%s: CORS lets a page %s", v.name, m)
			}
		}
		if r.allows(origins[0], "PUT", append(headers, "Authorization")) {
			t.Errorf("%s: CORS lets a page send its Authorization header to S3", v.name)
		}
	}
}

// placeholder is an input template's <name>.
var placeholder = regexp.MustCompile(`<([A-Za-z0-9_.-]+)>`)

// transform applies an EventBridge input transformer to an event: each
// InputPathsMap entry ($.a.b) is read from the event, and each <name> of
// the template replaced by it, a string without its quotes (the template
// quotes it), anything else as JSON; a path that is absent gives null.
func transform(t *testing.T, paths map[string]any, tmpl string, event map[string]any) string {
	t.Helper()
	vals := map[string]string{}
	for name, p := range paths {
		var v any = event
		for _, k := range strings.Split(strings.TrimPrefix(str(p), "$."), ".") {
			v = mapOf(v)[k]
		}
		b, _ := json.Marshal(v)
		if s, ok := v.(string); ok {
			b, _ = json.Marshal(s)
			b = b[1 : len(b)-1]
		}
		vals[name] = string(b)
	}
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		v, ok := vals[m[1:len(m)-1]]
		if !ok {
			t.Errorf("input template names %s, which InputPathsMap does not", m)
		}
		return v
	})
}

// The counting function receives S3's Object Created events from the
// bucket's EventBridge events, for the bucket's staging prefix only, in the
// form S3's notifications take when they invoke Lambda (what make dev's
// MinIO notifications are turned into, and what events/ holds): the rule's
// transformer is applied here to a real "Object Created" event and its
// output read as aws-lambda-go's S3Event.
func TestCountFunctionEvent(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, map[string]string{"DataPath": "direct"})
	if _, ok := evaluate(t, raw, nil).resources["CountFunction"]; ok {
		t.Error("a counting function with DataPath proxy")
	}
	if str(get(s.props("UploadBucket"), "NotificationConfiguration", "EventBridgeConfiguration", "EventBridgeEnabled")) != "true" {
		t.Fatal("the bucket sends no events to EventBridge")
	}
	evs := mapOf(s.props("CountFunction")["Events"])
	if len(evs) != 1 {
		t.Fatalf("the counting function has events %v", evs)
	}
	var ev map[string]any
	for _, e := range evs {
		ev = mapOf(e)
	}
	if str(ev["Type"]) != "EventBridgeRule" || get(ev, "Properties", "EventBusName") != nil {
		t.Fatalf("event %v: want a rule on the default bus (where S3 sends)", ev)
	}
	pattern := mapOf(get(ev, "Properties", "Pattern"))
	wantPattern := map[string]any{
		"source": []any{"aws.s3"}, "detail-type": []any{"Object Created"},
		"detail": map[string]any{
			"bucket": map[string]any{"name": []any{s.ref("UploadBucket")}},
			"object": map[string]any{"key": []any{map[string]any{"prefix": s3store.DefaultStagingPrefix}}},
		},
	}
	if fmt.Sprint(pattern) != fmt.Sprint(wantPattern) {
		t.Errorf("pattern %v, want %v", pattern, wantPattern)
	}

	b, err := os.ReadFile("testdata/eventbridge-object-created.json")
	if err != nil {
		t.Fatal(err)
	}
	var sample map[string]any
	if err := json.Unmarshal(b, &sample); err != nil {
		t.Fatal(err)
	}
	tr := mapOf(get(ev, "Properties", "InputTransformer"))
	out := transform(t, mapOf(tr["InputPathsMap"]), str(tr["InputTemplate"]), sample)
	var got events.S3Event
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("the transformer's output is not an S3 event: %v\n%s", err, out)
	}
	obj := mapOf(get(sample, "detail", "object"))
	if len(got.Records) != 1 {
		t.Fatalf("records: %+v", got)
	}
	r := got.Records[0]
	if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") || r.AWSRegion != region ||
		r.S3.Bucket.Name != str(get(sample, "detail", "bucket", "name")) || r.S3.Object.URLDecodedKey != str(obj["key"]) ||
		float64(r.S3.Object.Size) != obj["size"] || r.EventTime.IsZero() {
		t.Errorf("the transformed event %+v does not carry the object's %v", r, obj)
	}
	store := &s3store.Store{}
	if _, _, n, ok := store.ParseChunkKey(r.S3.Object.URLDecodedKey); !ok || n != 2 {
		t.Errorf("the counting function cannot read the key %q", r.S3.Object.URLDecodedKey)
	}

	// The sample of events/ has the same form: every field the
	// transformer writes, and no other.
	sb, err := os.ReadFile("../events/count-s3-object-created.json")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := shape(t, []byte(out)), shape(t, sb); !slices.Equal(a, b) {
		t.Errorf("events/count-s3-object-created.json has fields %v, the transformer writes %v", b, a)
	}

	// The function lets Lambda retry and then hands the event to the queue
	// the re-drive replays, which the re-drive is told of.
	dest := get(s.props("CountFunction"), "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination")
	if dest != s.getAtt("CountFailureQueue", "Arn") {
		t.Errorf("on-failure destination %v", dest)
	}
	cfg, err := awsdeploy.Load(getenvOf(functionEnv(s, "RedriveFunction")))
	if err != nil || cfg.CountFailureQueue != s.ref("CountFailureQueue") || cfg.DataPath != awsdeploy.DataPathDirect {
		t.Errorf("the re-drive does not replay the counting function's failures: %+v, %v", cfg, err)
	}
	if cfg, err := awsdeploy.Load(getenvOf(functionEnv(s, "CountFunction"))); err != nil || cfg.Bucket != s.ref("UploadBucket") {
		t.Errorf("the counting function's settings: %+v, %v", cfg, err)
	}
}

// shape lists the paths of a JSON document's fields.
func shape(t *testing.T, b []byte) []string {
	t.Helper()
	out, err := jsonshape.Paths(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
