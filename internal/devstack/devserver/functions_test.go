package devserver

import (
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// make dev gives each function the memory and time limit template.yaml
// gives it on AWS.
func TestFunctionsAsTheTemplateSays(t *testing.T) {
	b, err := os.ReadFile("../../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				MemorySize int `yaml:"MemorySize"`
				Timeout    int `yaml:"Timeout"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	for name, fn := range functions {
		id := strings.ToUpper(name[:1]) + name[1:] + "Function"
		r, ok := tpl.Resources[id]
		if !ok || r.Type != "AWS::Serverless::Function" {
			t.Errorf("template.yaml has no %s", id)
			continue
		}
		if r.Properties.MemorySize != fn.memoryMB || time.Duration(r.Properties.Timeout)*time.Second != fn.timeout {
			t.Errorf("%s: make dev gives %d MB and %s, the template %d MB and %d s", id, fn.memoryMB, fn.timeout, r.Properties.MemorySize, r.Properties.Timeout)
		}
	}
}
