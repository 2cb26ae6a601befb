package deploy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/dynamoledger"
)

// Each SDK operation the code calls, as IAM sees it: the actions it needs
// and on what. The resources follow the bucket's layout (package s3store):
// chunks are written and read under the staging prefix, the finished file is
// built by a multipart upload under the finished prefix. An operation this
// table does not know fails the test, so a new call in the code cannot go
// out without its permission.
var operationNeeds = map[string][]need{
	"s3:PutObject": {{"s3:PutObject", chunkObject}},
	"s3:GetObject": {{"s3:GetObject", chunkObject}},
	// HeadObject checks whether the finished file exists, and reads each
	// chunk's checksum. Without s3:ListBucket, S3 answers 403 instead of 404
	// for a missing object.
	"s3:HeadObject":              {{"s3:GetObject", finishedObject}, {"s3:GetObject", chunkObject}, {"s3:ListBucket", bucket}},
	"s3:CopyObject":              {{"s3:GetObject", chunkObject}, {"s3:PutObject", finishedObject}},
	"s3:DeleteObjects":           {{"s3:DeleteObject", chunkObject}},
	"s3:ListObjectsV2":           {{"s3:ListBucket", bucket}},
	"s3:CreateMultipartUpload":   {{"s3:PutObject", finishedObject}},
	"s3:UploadPart":              {{"s3:PutObject", finishedObject}},
	"s3:UploadPartCopy":          {{"s3:PutObject", finishedObject}, {"s3:GetObject", chunkObject}},
	"s3:CompleteMultipartUpload": {{"s3:PutObject", finishedObject}},
	"s3:ListParts":               {{"s3:ListMultipartUploadParts", finishedObject}},
	"s3:ListMultipartUploads":    {{"s3:ListBucketMultipartUploads", bucket}},
	"s3:AbortMultipartUpload":    {{"s3:AbortMultipartUpload", finishedObject}},
	"dynamodb:GetItem":           {{"dynamodb:GetItem", table}},
	"dynamodb:BatchGetItem":      {{"dynamodb:BatchGetItem", table}},
	"dynamodb:PutItem":           {{"dynamodb:PutItem", table}},
	"dynamodb:UpdateItem":        {{"dynamodb:UpdateItem", table}},
	"dynamodb:DeleteItem":        {{"dynamodb:DeleteItem", table}},
	// The only query is the re-drive's, of the index of owed uploads.
	"dynamodb:Query":                   {{"dynamodb:Query", dueIndex}},
	"dynamodbstreams:GetShardIterator": {{"dynamodb:GetShardIterator", tableStream}},
	"dynamodbstreams:GetRecords":       {{"dynamodb:GetRecords", tableStream}},
	"sqs:ReceiveMessage":               {{"sqs:ReceiveMessage", failureQueue}},
	"sqs:DeleteMessage":                {{"sqs:DeleteMessage", failureQueue}},
	"dynamodb:Scan":                    {{"dynamodb:Scan", table}},
	"eventbridge:PutEvents":            {{"events:PutEvents", eventBus}},
	// A presigned URL (DataPath direct) acts with the signer's permissions:
	// the browser's PUT of a chunk is the upload function's PutObject.
	"s3:PresignPutObject": {{"s3:PutObject", chunkObject}},
	// Deliberately absent: CreateBucket, CreateTable, UpdateTimeToLive
	// (awsdeploy.CreateResources, for local servers). A function that could
	// reach them fails here: on AWS the template owns the resources.
}

// functionOperationNeeds are the operations a function calls on other
// resources than operationNeeds says: the example consumer reads finished
// files, not chunks.
var functionOperationNeeds = map[string]map[string][]need{
	"ConsumerFunction": {"s3:GetObject": {{"s3:GetObject", finishedObject}}},
	// DataPath direct: the upload and counting functions look at the chunk
	// a browser stored (HEAD), never at a finished file.
	"UploadFunction": {"s3:HeadObject": {{"s3:GetObject", chunkObject}, {"s3:ListBucket", bucket}}},
	"CountFunction":  {"s3:HeadObject": {{"s3:GetObject", chunkObject}, {"s3:ListBucket", bucket}}},
	// The re-drive drains two queues: the stream's failures, and (DataPath
	// direct) the counting function's.
	"RedriveFunction": {
		"sqs:ReceiveMessage": {{"sqs:ReceiveMessage", failureQueue}, {"sqs:ReceiveMessage", countFailureQueue}},
		"sqs:DeleteMessage":  {{"sqs:DeleteMessage", failureQueue}, {"sqs:DeleteMessage", countFailureQueue}},
	},
}

// Operations that write an object, and that read one: with a KMS key
// (KmsKeyArn), writing needs kms:GenerateDataKey (and a multipart upload
// kms:Decrypt too, to complete it: simplest is both for every writer), and
// reading kms:Decrypt. Creating the finished file with tags (ObjectTags)
// needs s3:PutObjectTagging.
var (
	kmsWrites = []string{"s3:PutObject", "s3:PresignPutObject", "s3:CreateMultipartUpload", "s3:UploadPart", "s3:UploadPartCopy", "s3:CopyObject", "s3:CompleteMultipartUpload"}
	kmsReads  = []string{"s3:GetObject"}
	tagWrites = []string{"s3:CreateMultipartUpload", "s3:CopyObject"}
)

// need is one action on one kind of resource.
type need struct {
	action string
	on     resourceKind
}

type resourceKind int

const (
	bucket resourceKind = iota
	chunkObject
	finishedObject
	table
	dueIndex
	tableStream
	eventBus
	failureQueue
	countFailureQueue
	ownLogStream
	kmsKey
	anything
)

// arns are sample ARNs of a function's own resources, as the evaluated
// template names them, plus foreign ones no statement may reach.
type arns struct {
	own     map[resourceKind]string
	foreign []string
}

func sampleARNs(s *stack, fnID string, env map[string]string) arns {
	bucketName := env["FLOWGATE_BUCKET"]
	staging := env["FLOWGATE_STAGING_PREFIX"]
	finished := env["FLOWGATE_FINISHED_PREFIX"]
	if finished == "" {
		finished = "files/"
	}
	tableArn := s.getAtt("LedgerTable", "Arn")
	logGroup := str(get(s.props(fnID), "LoggingConfig", "LogGroup"))
	a := arns{own: map[resourceKind]string{
		bucket:            "arn:aws:s3:::" + bucketName,
		chunkObject:       "arn:aws:s3:::" + bucketName + "/" + staging + "1c0312c723afdd1fe40b2064627b0275/00000001",
		finishedObject:    "arn:aws:s3:::" + bucketName + "/" + finished + "1c0312c723afdd1fe40b2064627b0275-00112233/photo.jpg",
		table:             tableArn,
		dueIndex:          tableArn + "/index/" + dynamoledger.DueIndex,
		tableStream:       s.getAtt("LedgerTable", "StreamArn"),
		eventBus:          s.getAtt("UploadsBus", "Arn"),
		failureQueue:      s.getAtt("AssemblyFailureQueue", "Arn"),
		countFailureQueue: s.getAtt("CountFailureQueue", "Arn"),
		ownLogStream:      "arn:aws:logs:" + region + ":" + account + ":log-group:" + logGroup + ":log-stream:2026/01/01/[$LATEST]0123456789abcdef",
	}}
	if key := s.params["KmsKeyArn"]; key != "" {
		a.own[kmsKey] = key
	}
	a.foreign = []string{
		"arn:aws:s3:::" + bucketName + "/other/x",
		"arn:aws:s3:::another-bucket",
		"arn:aws:s3:::another-bucket/" + staging + "x",
		"arn:aws:s3:::another-bucket/" + finished + "x",
		tableArn + "/index/x",
		"arn:aws:dynamodb:" + region + ":" + account + ":table/another-table",
		"arn:aws:dynamodb:" + region + ":" + account + ":table/another-table/stream/2026-01-01T00:00:00.000",
		"arn:aws:events:" + region + ":" + account + ":event-bus/default",
		"arn:aws:sqs:" + region + ":" + account + ":another-queue",
		"arn:aws:logs:" + region + ":" + account + ":log-group:/aws/lambda/another:log-stream:x",
		"arn:aws:kms:" + region + ":" + account + ":key/another-key",
	}
	// Every kind's sample is foreign to the needs that are not about it;
	// the other functions' log groups are foreign too.
	for _, id := range s.ofType("AWS::Logs::LogGroup") {
		if name := s.ref(id); name != logGroup {
			a.foreign = append(a.foreign, "arn:aws:logs:"+region+":"+account+":log-group:"+name+":log-stream:x")
		}
	}
	return a
}

// requiredNeeds is everything a function needs: its code's operations,
// its logs, its event source and destination, and tracing when on.
func requiredNeeds(t *testing.T, s *stack, fnID string, facts codeFacts) []need {
	var needs []need
	for _, op := range sortedKeys(facts.Ops) {
		n, ok := functionOperationNeeds[fnID][op]
		if !ok {
			n, ok = operationNeeds[op]
		}
		if !ok {
			t.Errorf("%s calls %s, which has no IAM mapping in operationNeeds: add it, and grant it in template.yaml", fnID, op)
			continue
		}
		needs = append(needs, n...)
	}
	calls := func(ops []string) bool {
		return slices.ContainsFunc(ops, func(op string) bool { return facts.Ops[op] })
	}
	if s.params["KmsKeyArn"] != "" {
		if calls(kmsWrites) {
			needs = append(needs, need{"kms:GenerateDataKey", kmsKey}, need{"kms:Decrypt", kmsKey})
		} else if calls(kmsReads) {
			needs = append(needs, need{"kms:Decrypt", kmsKey})
		}
	}
	if s.params["ObjectTags"] != "" && calls(tagWrites) {
		needs = append(needs, need{"s3:PutObjectTagging", finishedObject})
	}
	needs = append(needs, need{"logs:CreateLogStream", ownLogStream}, need{"logs:PutLogEvents", ownLogStream})
	for _, ev := range mapOf(s.props(fnID)["Events"]) {
		switch str(get(ev, "Type")) {
		case "DynamoDB":
			if get(ev, "Properties", "Stream") != s.getAtt("LedgerTable", "StreamArn") {
				t.Errorf("%s reads a stream that is not the ledger's", fnID)
			}
			for _, a := range []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"} {
				needs = append(needs, need{a, tableStream})
			}
			if get(ev, "Properties", "DestinationConfig", "OnFailure", "Destination") != nil {
				needs = append(needs, need{"sqs:SendMessage", failureQueue})
			}
		case "EventBridgeRule", "Api", "Schedule", "":
			// Invoked through a resource policy: nothing on the role.
		default:
			t.Errorf("%s: event type %s is not modelled", fnID, str(get(ev, "Type")))
		}
	}
	// Lambda's asynchronous on-failure destination sends with the role.
	if d := get(s.props(fnID), "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination"); d != nil {
		if d != s.getAtt("CountFailureQueue", "Arn") {
			t.Errorf("%s: on-failure destination %v is not modelled", fnID, d)
		}
		needs = append(needs, need{"sqs:SendMessage", countFailureQueue})
	}
	if str(s.props(fnID)["Tracing"]) == "Active" {
		needs = append(needs, need{"xray:PutTraceSegments", anything}, need{"xray:PutTelemetryRecords", anything})
	}
	return needs
}

type statement struct {
	sid       string
	actions   []string
	resources []string
}

// roleStatements reads the function's role: Allow statements only, no
// managed policies, no NotAction/NotResource, trusted by Lambda alone.
func roleStatements(t *testing.T, s *stack, fnID string) []statement {
	roleArn := str(s.props(fnID)["Role"])
	var roleID string
	for _, id := range s.ofType("AWS::IAM::Role") {
		if s.getAtt(id, "Arn") == roleArn {
			roleID = id
		}
	}
	if roleID == "" {
		t.Fatalf("%s: Role %q is not a role of this template (SAM's generated role would add managed policies)", fnID, roleArn)
	}
	for other, r := range s.resources {
		if other != fnID && r["Type"] == "AWS::Serverless::Function" && str(s.props(other)["Role"]) == roleArn {
			t.Errorf("%s and %s share a role: each function gets its own", fnID, other)
		}
	}
	role := s.props(roleID)
	for _, k := range []string{"ManagedPolicyArns", "PermissionsBoundary"} {
		if role[k] != nil {
			t.Errorf("%s: %s has %s; every permission must be one of its inline statements", fnID, roleID, k)
		}
	}
	if p := s.props(fnID)["Policies"]; p != nil {
		t.Errorf("%s has Policies, which SAM ignores once Role is set", fnID)
	}
	trust := listOf(get(role, "AssumeRolePolicyDocument", "Statement"))
	if len(trust) != 1 || str(get(trust[0], "Effect")) != "Allow" || str(get(trust[0], "Principal", "Service")) != "lambda.amazonaws.com" ||
		len(mapOf(get(trust[0], "Principal"))) != 1 || strings.Join(strs(get(trust[0], "Action")), ",") != "sts:AssumeRole" {
		t.Errorf("%s: trust policy %v, want Lambda alone", roleID, trust)
	}
	var out []statement
	for _, p := range listOf(role["Policies"]) {
		for _, st := range listOf(get(p, "PolicyDocument", "Statement")) {
			m := mapOf(st)
			for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
				if m[k] != nil {
					t.Errorf("%s: statement %v uses %s", roleID, m["Sid"], k)
				}
			}
			if str(m["Effect"]) != "Allow" {
				t.Errorf("%s: statement %v is not an Allow", roleID, m["Sid"])
			}
			out = append(out, statement{sid: str(m["Sid"]), actions: strs(m["Action"]), resources: strs(m["Resource"])})
		}
	}
	return out
}

// globMatch is IAM's matching of ARNs and actions: * any run, ? one character.
func globMatch(pattern, s string) bool {
	// path.Match treats / specially; IAM does not.
	p := strings.NewReplacer("/", "\x00").Replace(pattern)
	v := strings.NewReplacer("/", "\x00").Replace(s)
	p = strings.NewReplacer("[", "\\[", "]", "\\]").Replace(p)
	ok, err := path.Match(p, v)
	return err == nil && ok
}

func actionMatch(pattern, action string) bool {
	return globMatch(strings.ToLower(pattern), strings.ToLower(action))
}

// checkRole proves that the statements grant every need, and nothing else:
// no action no need asks for, no resource beyond the function's own ones.
func checkRole(t errorf, s *stack, fnID string, needs []need, sts []statement, samples arns) {
	t.Helper()
	arnOf := func(k resourceKind) string {
		if k == anything {
			return "*"
		}
		return samples.own[k]
	}
	for _, n := range needs {
		granted := false
		for _, st := range sts {
			for _, a := range st.actions {
				for _, r := range st.resources {
					if actionMatch(a, n.action) && (globMatch(r, arnOf(n.on)) || (n.on == anything && r == "*")) {
						granted = true
					}
				}
			}
		}
		if !granted {
			t.Errorf("%s: %s on %s is needed by its code but not granted", fnID, n.action, arnOf(n.on))
		}
	}
	universe := append([]string{}, samples.foreign...)
	for _, a := range samples.own {
		universe = append(universe, a)
	}
	sort.Strings(universe)
	for _, st := range sts {
		for _, a := range st.actions {
			if strings.Contains(a, "*") {
				t.Errorf("%s: statement %s grants the wildcard action %s", fnID, st.sid, a)
			}
			var wanted []need
			for _, n := range needs {
				if actionMatch(a, n.action) {
					wanted = append(wanted, n)
				}
			}
			if len(wanted) == 0 {
				t.Errorf("%s: statement %s grants %s, which nothing in its code or configuration uses", fnID, st.sid, a)
				continue
			}
			for _, r := range st.resources {
				if r == "*" {
					if wanted[0].on != anything {
						t.Errorf("%s: statement %s grants %s on *; AWS lets it be scoped", fnID, st.sid, a)
					}
					continue
				}
				used := false
				for _, n := range wanted {
					if globMatch(r, arnOf(n.on)) {
						used = true
					}
				}
				if !used {
					t.Errorf("%s: statement %s grants %s on %s, which no need of the function reaches", fnID, st.sid, a, r)
				}
				for _, u := range universe {
					if !globMatch(r, u) {
						continue
					}
					ok := false
					for _, n := range wanted {
						if arnOf(n.on) == u {
							ok = true
						}
					}
					if !ok {
						t.Errorf("%s: statement %s grants %s on %s, which also reaches %s", fnID, st.sid, a, r, u)
					}
				}
			}
		}
	}
}

// Every function's role grants exactly the actions its code calls (read
// from the code, see calls_test.go) and its platform needs (logs, stream,
// failure destination, tracing), each on the function's own resources only.
// Removing an action from template.yaml, widening a resource, or adding a
// call to the code without its permission fails here.
func TestIAMLeastPrivilege(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	for _, v := range variants {
		s := evaluate(t, raw, v.params)
		for _, dir := range functionDirs(t) {
			id := logicalID(dir)
			if _, ok := s.resources[id]; !ok {
				continue
			}
			t.Run(v.name+"/"+id, func(t *testing.T) {
				facts := functionFacts(t, dir)
				env := functionEnv(s, id)
				needs := requiredNeeds(t, s, id, facts)
				checkRole(t, s, id, needs, roleStatements(t, s, id), sampleARNs(s, id, env))
			})
		}
	}
}

// The checker itself catches what it is for: a missing action, an action
// nobody needs, a resource wider than the function's own.
func TestIAMCheckerCatches(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, nil)
	facts := functionFacts(t, "upload")
	env := functionEnv(s, "UploadFunction")
	needs := requiredNeeds(t, s, "UploadFunction", facts)
	good := roleStatements(t, s, "UploadFunction")
	samples := sampleARNs(s, "UploadFunction", env)

	mutations := map[string]func([]statement) []statement{
		"drop an action": func(sts []statement) []statement {
			out := clone(sts)
			for i := range out {
				for j, a := range out[i].actions {
					if a == "dynamodb:BatchGetItem" {
						out[i].actions = append(out[i].actions[:j:j], out[i].actions[j+1:]...)
					}
				}
			}
			return out
		},
		"extra action": func(sts []statement) []statement {
			return append(clone(sts), statement{"Extra", []string{"dynamodb:Scan"}, []string{samples.own[table]}})
		},
		"whole bucket": func(sts []statement) []statement {
			return append(clone(sts), statement{"Wide", []string{"s3:PutObject"}, []string{samples.own[bucket] + "/*"}})
		},
		"any resource": func(sts []statement) []statement {
			return append(clone(sts), statement{"Star", []string{"dynamodb:GetItem"}, []string{"*"}})
		},
		"wildcard action": func(sts []statement) []statement {
			return append(clone(sts), statement{"Wild", []string{"dynamodb:*"}, []string{samples.own[table]}})
		},
	}
	for name, mutate := range mutations {
		rec := &recorder{}
		checkRole(rec, s, "UploadFunction", needs, mutate(good), samples)
		if len(rec.errs) == 0 {
			t.Errorf("%s: the checker did not notice", name)
		}
	}
}

// errorf is the part of *testing.T the checkers use, so that a test can
// run them on a broken input and see that they complain.
type errorf interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func clone(sts []statement) []statement {
	out := make([]statement, len(sts))
	for i, st := range sts {
		out[i] = statement{st.sid, append([]string(nil), st.actions...), append([]string(nil), st.resources...)}
	}
	return out
}
