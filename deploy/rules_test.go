package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/awsdeploy"
)

// ruleValue evaluates a CloudFormation rule function (the few Rules may
// use: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Contains, Ref of a
// parameter) under the given parameter values, as CloudFormation does
// before it creates or updates anything.
func ruleValue(t *testing.T, v any, params map[string]string) any {
	t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = ruleValue(t, e, params)
		}
		return out
	case map[string]any:
		if len(x) != 1 {
			t.Fatalf("rule expression %v", x)
		}
		for fn, arg := range x {
			args, _ := ruleValue(t, arg, params).([]any)
			switch fn {
			case "Ref":
				p, ok := params[str(arg)]
				if !ok {
					t.Fatalf("rule refers to %v, which is not a parameter", arg)
				}
				return p
			case "Fn::Equals":
				return fmt.Sprint(args[0]) == fmt.Sprint(args[1])
			case "Fn::Not":
				return !args[0].(bool)
			case "Fn::And", "Fn::Or":
				and := fn == "Fn::And"
				for _, a := range args {
					if a.(bool) != and {
						return !and
					}
				}
				return and
			case "Fn::Contains":
				list, _ := args[0].([]any)
				return slices.ContainsFunc(list, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(args[1]) })
			}
			t.Fatalf("rule function %s is not one CloudFormation allows in Rules, or not modelled", fn)
		}
	}
	t.Fatalf("rule expression %v (%T)", v, v)
	return nil
}

// rulesPass reports whether every rule of the template holds for params,
// and the first description of one that does not.
func rulesPass(t *testing.T, raw map[string]any, params map[string]string) (bool, string) {
	t.Helper()
	for _, name := range sortedKeys(boolKeys(mapOf(raw["Rules"]))) {
		rule := mapOf(mapOf(raw["Rules"])[name])
		if c, ok := rule["RuleCondition"]; ok && !ruleValue(t, c, params).(bool) {
			continue
		}
		for _, a := range listOf(rule["Assertions"]) {
			if !ruleValue(t, get(a, "Assert"), params).(bool) {
				return false, str(get(a, "AssertDescription"))
			}
		}
	}
	return true, ""
}

func boolKeys(m map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// The lifecycle rule deletes chunk objects StagingRetentionDays after they
// were written, so an upload must be able to finish within it: the Rules
// refuse exactly the retentions the functions' own configuration check
// refuses, and every retention they accept leaves an upload its whole idle
// expiry and a day more (awsdeploy.MaxUploadAge).
func TestRulesKeepChunksForTheWholeUpload(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	params := map[string]string{}
	for name, p := range mapOf(raw["Parameters"]) {
		params[name] = str(get(p, "Default"))
	}
	expiry := mapOf(mapOf(raw["Parameters"])["ExpiryDays"])
	retention := mapOf(mapOf(raw["Parameters"])["StagingRetentionDays"])
	if len(strs(expiry["AllowedValues"])) == 0 {
		t.Fatal("ExpiryDays has no AllowedValues: the Rules can only list the retentions each value refuses")
	}
	tried, refused := 0, 0
	for _, e := range strs(expiry["AllowedValues"]) {
		for r := 1; r <= 60; r++ {
			rs := strconv.Itoa(r)
			if !allowedParameter(t, retention, rs) {
				continue
			}
			tried++
			params["ExpiryDays"], params["StagingRetentionDays"] = e, rs
			ok, why := rulesPass(t, raw, params)
			env := map[string]string{
				"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t",
				"FLOWGATE_EXPIRY": e + "d", "FLOWGATE_STAGING_RETENTION": rs + "d",
			}
			_, err := awsdeploy.Load(func(k string) string { return env[k] })
			if ok != (err == nil) {
				t.Errorf("ExpiryDays %s, StagingRetentionDays %s: the Rules say %v (%s), the functions' check %v", e, rs, ok, why, err)
			}
			if !ok {
				refused++
				continue
			}
			days, _ := strconv.Atoi(e)
			if age := awsdeploy.MaxUploadAge(time.Duration(r) * 24 * time.Hour); age < time.Duration(days+1)*24*time.Hour {
				t.Errorf("ExpiryDays %s, StagingRetentionDays %s: an upload may take %s, less than its expiry and a day", e, rs, age)
			}
		}
	}
	if tried == 0 || refused == 0 {
		t.Fatalf("%d combinations tried, %d refused: the test saw nothing to check", tried, refused)
	}
}

// The older rules still refuse what they should.
func TestRulesOnAuth(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	params := map[string]string{}
	for name, p := range mapOf(raw["Parameters"]) {
		params[name] = str(get(p, "Default"))
	}
	if ok, why := rulesPass(t, raw, params); !ok {
		t.Fatalf("the defaults break a rule: %s", why)
	}
	params["AuthMode"] = "cognito"
	if ok, _ := rulesPass(t, raw, params); ok {
		t.Error("AuthMode cognito without a user pool passes the rules")
	}
	params["AuthMode"], params["JwtSecret"] = "jwt", ""
	if ok, _ := rulesPass(t, raw, params); ok {
		t.Error("AuthMode jwt without a key passes the rules")
	}
	params["JwtSecret"] = "0123456789abcdef0123456789abcdef"
	if ok, why := rulesPass(t, raw, params); !ok {
		t.Errorf("AuthMode jwt with a secret: %s", why)
	}
}
