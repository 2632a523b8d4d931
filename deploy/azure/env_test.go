// Package azure is the Bicep deployment beside this file; its only Go is this test, which keeps
// the environment the template gives the apps and the environment the binary reads in step.
package azure

import (
	"errors"
	"fmt"
	"go/build/constraint"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// platformVar is a whole string literal naming a Platform variable.
var platformVar = regexp.MustCompile(`^PLATFORM_[A-Z0-9_]+$`)

// platformName is a Platform variable's name within text.
var platformName = regexp.MustCompile(`PLATFORM_[A-Z0-9_]+`)

// bicepEnvName is an environment variable's name in a Bicep env array: { name: 'PLATFORM_…' }.
var bicepEnvName = regexp.MustCompile(`\bname:\s*'(PLATFORM_[A-Z0-9_]+|AZURE_CLIENT_ID)'`)

// readWithoutLiteral are read by the binary without a literal of their own: azidentity's
// ManagedIdentityCredential and DefaultAzureCredential read AZURE_CLIENT_ID.
var readWithoutLiteral = []string{"AZURE_CLIENT_ID"}

// skippedDirs hold no configuration of the binary: test helpers and test harnesses.
var skippedDirs = []string{"internal/testenv", "bench", "chaos"}

// testOnlyTags are build tags of test tooling; a file built only with one is not the binary.
var testOnlyTags = []string{"chaos", "bench"}

func TestTemplateEnvMatchesBinary(t *testing.T) {
	root := moduleRoot(t)
	read, err := readByBinary(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(read) < 10 {
		t.Fatalf("found %d variables read by the binary under %s: the scan is broken", len(read), root)
	}
	set, err := setByTemplate(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(set) == 0 {
		t.Fatal("the Bicep sets no environment variable: the scan is broken")
	}
	contracts := filepath.Join(root, "docs", "contracts.md")
	doc, err := os.ReadFile(contracts)
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedIn(string(doc))
	if len(documented) == 0 {
		t.Fatalf("%s: no variable in its Configuration table: the scan is broken", contracts)
	}
	for _, problem := range mismatches(read, set, documented) {
		t.Error(problem)
	}
}

// mismatches names each variable the template sets that the binary does not read, and each
// variable the binary reads that is neither set by the template nor documented. read and set
// map a variable to where it was found.
func mismatches(read, set map[string][]string, documented map[string]bool) []string {
	var out []string
	for v, where := range set {
		if _, ok := read[v]; !ok {
			out = append(out, fmt.Sprintf("%s is set by deploy/azure (%s) but the binary never reads it (no %q literal in the module's non-test Go files)",
				v, strings.Join(where, ", "), v))
		}
	}
	for v, where := range read {
		if _, ok := set[v]; !ok && !documented[v] {
			out = append(out, fmt.Sprintf("%s is read by the binary (%s) but neither set by deploy/azure nor documented in the Configuration table of docs/contracts.md",
				v, strings.Join(where, ", ")))
		}
	}
	slices.Sort(out)
	return out
}

// readByBinary collects the PLATFORM_* string literals of the module's non-test Go files under
// root, and readWithoutLiteral, each with the files it is in.
func readByBinary(root string) (map[string][]string, error) {
	read := map[string][]string{}
	for _, v := range readWithoutLiteral {
		read[v] = []string{"azidentity"}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules" ||
				slices.Contains(skippedDirs, rel)) {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); rel != "." && err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		vars, err := platformLiterals(rel, src)
		if err != nil {
			return err
		}
		for _, v := range vars {
			if !slices.Contains(read[v], rel) {
				read[v] = append(read[v], rel)
			}
		}
		return nil
	})
	return read, err
}

// platformLiterals returns the string literals of a Go file that are a whole PLATFORM_* name;
// none if the file is built only with a test-only tag. Comments do not count.
func platformLiterals(name string, src []byte) ([]string, error) {
	testOnly, err := builtOnlyForTests(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if testOnly {
		return nil, nil
	}
	fset := token.NewFileSet()
	var s scanner.Scanner
	var scanErr error
	s.Init(fset.AddFile(name, -1, len(src)), src, func(pos token.Position, msg string) {
		scanErr = errors.Join(scanErr, fmt.Errorf("%s: %s", pos, msg))
	}, 0)
	var out []string
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.STRING {
			continue
		}
		v, err := strconv.Unquote(lit)
		if err != nil {
			return nil, fmt.Errorf("%s: literal %s: %w", name, lit, err)
		}
		if platformVar.MatchString(v) {
			out = append(out, v)
		}
	}
	return out, scanErr
}

// builtOnlyForTests reports whether src's //go:build line needs a test-only tag (chaos, bench).
func builtOnlyForTests(src []byte) (bool, error) {
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "package ") {
			return false, nil
		}
		if !constraint.IsGoBuild(line) {
			continue
		}
		expr, err := constraint.Parse(line)
		if err != nil {
			return false, err
		}
		return !expr.Eval(func(tag string) bool { return !slices.Contains(testOnlyTags, tag) }), nil
	}
	return false, nil
}

// setByTemplate collects the environment variable names the .bicep files under dir set, each
// with the files it is in. Comments do not count.
func setByTemplate(dir string) (map[string][]string, error) {
	set := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".bicep") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(path)
		for _, v := range bicepEnvNames(string(src)) {
			if !slices.Contains(set[v], rel) {
				set[v] = append(set[v], rel)
			}
		}
		return nil
	})
	return set, err
}

// bicepEnvNames returns the env names set in Bicep source, comments left out.
func bicepEnvNames(src string) []string {
	var out []string
	for _, m := range bicepEnvName.FindAllStringSubmatch(stripBicepComments(src), -1) {
		out = append(out, m[1])
	}
	return out
}

// stripBicepComments blanks // and /* */ comments outside strings ('…' with \' escapes, and
// multi-line strings between three apostrophes), so a commented-out variable is not counted
// and a URL's // in a string is not taken for a comment.
func stripBicepComments(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				return b.String() + src[i:]
			}
			b.WriteString(src[i : i+3+end+3])
			i += 3 + end + 3
		case src[i] == '\'':
			j := i + 1
			for j < len(src) && src[j] != '\'' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			b.WriteString(src[i:j])
			i = j
		case strings.HasPrefix(src[i:], "//"):
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				return b.String()
			}
			i += end
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			b.WriteByte(' ')
			i += 2 + end + 2
		default:
			b.WriteByte(src[i])
			i++
		}
	}
	return b.String()
}

// documentedIn returns the PLATFORM_* names in the first column of the table under
// "## Configuration" in contracts.md.
func documentedIn(md string) map[string]bool {
	documented := map[string]bool{}
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line) == "## Configuration"
		case in && strings.HasPrefix(line, "|"):
			cells := strings.Split(line, "|")
			if len(cells) < 3 {
				continue
			}
			for _, v := range platformName.FindAllString(cells[1], -1) {
				documented[v] = true
			}
		}
	}
	return documented
}

// moduleRoot is the directory of the go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
