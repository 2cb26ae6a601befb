package deploy

import (
	"archive/zip"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeIn runs make in the repository root.
func makeIn(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkBootstrap proves a file is what Lambda's provided.al2023 runtime on
// arm64 runs: a static, stripped linux/arm64 ELF executable, built from
// functions/<dir> with SAM's flags for Go.
func checkBootstrap(t *testing.T, path, dir string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
		t.Errorf("%s: %v %v %v, want a 64-bit arm64 executable", path, f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s is not stripped (-s)", path)
	}
	for _, sec := range f.Sections {
		if strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("%s has DWARF (%s): not built with -w", path, sec.Name)
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if info.Path != module+"/functions/"+dir {
		t.Errorf("%s is built from %s, want %s/functions/%s", path, info.Path, module, dir)
	}
	// -trimpath leaves -ldflags out of the build info: -s -w are checked
	// above, by what they remove.
	want := map[string]string{"GOOS": "linux", "GOARCH": "arm64", "CGO_ENABLED": "0", "-tags": "lambda.norpc", "-trimpath": "true"}
	for _, s := range info.Settings {
		if w, ok := want[s.Key]; ok {
			if s.Value != w {
				t.Errorf("%s: %s=%q, want %q", path, s.Key, s.Value, w)
			}
			delete(want, s.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("%s: build settings missing: %v", path, want)
	}
}

// `make build-<LogicalId>` (what sam build runs for BuildMethod makefile)
// leaves a right bootstrap in ARTIFACTS_DIR for every function of the
// template, and `make build` zips the same binary, executable, alone, as
// dist/<function>.zip; `make package-size` reports them.
func TestMakeBuild(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params)
	dist := t.TempDir()
	makeIn(t, "build", "DIST="+dist)
	for _, dir := range functionDirs(t) {
		id := logicalID(dir)
		if _, ok := s.resources[id]; !ok {
			t.Errorf("functions/%s has no %s in the template", dir, id)
			continue
		}
		artifacts := t.TempDir()
		makeIn(t, "build-"+id, "ARTIFACTS_DIR="+artifacts)
		bootstrap := filepath.Join(artifacts, "bootstrap")
		checkBootstrap(t, bootstrap, dir)
		built, err := os.ReadFile(bootstrap)
		if err != nil {
			t.Fatal(err)
		}

		zr, err := zip.OpenReader(filepath.Join(dist, dir+".zip"))
		if err != nil {
			t.Fatalf("make build made no zip for %s: %v", dir, err)
		}
		if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm()&0o111 == 0 || !zr.File[0].Mode().IsRegular() {
			t.Errorf("%s.zip must hold one executable file named bootstrap: %v", dir, zr.File)
		} else {
			rc, err := zr.File[0].Open()
			if err != nil {
				t.Fatal(err)
			}
			zipped, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(zipped, built) {
				t.Errorf("%s.zip's bootstrap differs from what sam build gets (the builds must match)", dir)
			}
		}
		zr.Close()
		checkBootstrap(t, filepath.Join(dist, dir, "bootstrap"), dir)
	}
	out := makeIn(t, "package-size", "DIST="+dist)
	for _, dir := range functionDirs(t) {
		if !strings.Contains(out, dir) {
			t.Errorf("package-size does not report %s:\n%s", dir, out)
		}
	}
	// sam build always passes ARTIFACTS_DIR; without it the target refuses
	// rather than writing /bootstrap.
	cmd := exec.Command("make", "--no-print-directory", "build-UploadFunction", "ARTIFACTS_DIR=")
	cmd.Dir = ".."
	if err := cmd.Run(); err == nil {
		t.Error("build-UploadFunction ran without ARTIFACTS_DIR")
	}
}
