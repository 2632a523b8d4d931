package azure

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The checks of env_test.go can fail: each scanner and the comparison, on inputs made to
// trip them.

func TestMismatchesNameAMisspeltVariable(t *testing.T) {
	read := map[string][]string{"PLATFORM_ROLE": {"main.go"}, "PLATFORM_DOCUMENTED": {"main.go"}, "PLATFORM_FORGOTTEN": {"runs.go"}}
	set := map[string][]string{"PLATFORM_ROLE": {"main.bicep"}, "PLATFORM_ROEL": {"main.bicep"}}
	got := mismatches(read, set, map[string]bool{"PLATFORM_DOCUMENTED": true})
	if len(got) != 2 || !strings.HasPrefix(got[0], "PLATFORM_FORGOTTEN is read by the binary (runs.go)") ||
		!strings.HasPrefix(got[1], "PLATFORM_ROEL is set by deploy/azure (main.bicep) but the binary never reads it") {
		t.Errorf("mismatches = %q, want PLATFORM_FORGOTTEN (read, undocumented) and PLATFORM_ROEL (set, never read)", got)
	}
	if got := mismatches(read, map[string][]string{"PLATFORM_ROLE": {"main.bicep"}, "PLATFORM_FORGOTTEN": {"main.bicep"}},
		map[string]bool{"PLATFORM_DOCUMENTED": true}); len(got) != 0 {
		t.Errorf("mismatches = %q, want none", got)
	}
}

func TestBicepEnvNamesSkipComments(t *testing.T) {
	src := `var env = [
  { name: 'PLATFORM_ROLE', value: 'api' } // { name: 'PLATFORM_LINE_COMMENT' }
  { name: 'AZURE_CLIENT_ID', value: id }
  /* { name: 'PLATFORM_BLOCK_COMMENT', value: 'x' } */
  { name: 'PLATFORM_AUTH_ISSUER', value: 'https://login.microsoftonline.com/t/v2.0' }
  { name: 'PLATFORM_AFTER_URL', value: 'it\'s // not a comment' }
]
var doc = '''
// name: 'PLATFORM_IN_STRING' is text, not a comment
'''
resource r 'X@1' = { name: 'OTHER_VAR' }`
	got := bicepEnvNames(src)
	want := []string{"PLATFORM_ROLE", "AZURE_CLIENT_ID", "PLATFORM_AUTH_ISSUER", "PLATFORM_AFTER_URL", "PLATFORM_IN_STRING"}
	if !slices.Equal(got, want) {
		t.Errorf("bicepEnvNames = %q, want %q", got, want)
	}
}

func TestReadByBinarySkipsTestsCommentsAndTestTooling(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                      "module example.com/m\n",
		"cmd/m/main.go":               "package main\n\n// \"PLATFORM_IN_COMMENT\"\nvar a = os.Getenv(\"PLATFORM_READ\") + `PLATFORM_RAW` + \"PLATFORM_ partial\"\n",
		"cmd/m/main_test.go":          "package main\n\nvar b = \"PLATFORM_TEST_ONLY\"\n",
		"cmd/m/chaos.go":              "//go:build chaos\n\npackage main\n\nvar c = \"PLATFORM_CHAOS_X\"\n",
		"cmd/m/linux.go":              "//go:build linux && !chaos\n\npackage main\n\nvar d = \"PLATFORM_LINUX\"\n",
		"internal/testenv/testenv.go": "package testenv\n\nvar e = \"PLATFORM_TEST_DSN\"\n",
		"bench/doc.go":                "package bench\n\nvar f = \"PLATFORM_BENCH\"\n",
		"tools/go.mod":                "module example.com/tools\n",
		"tools/tool.go":               "package tools\n\nvar g = \"PLATFORM_OTHER_MODULE\"\n",
	}
	for name, src := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read, err := readByBinary(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for v := range read {
		got = append(got, v)
	}
	slices.Sort(got)
	want := []string{"AZURE_CLIENT_ID", "PLATFORM_LINUX", "PLATFORM_RAW", "PLATFORM_READ"}
	if !slices.Equal(got, want) {
		t.Errorf("readByBinary = %q, want %q", got, want)
	}
	if where := read["PLATFORM_READ"]; !slices.Equal(where, []string{"cmd/m/main.go"}) {
		t.Errorf("PLATFORM_READ found in %q, want cmd/m/main.go", where)
	}
}

func TestDocumentedInReadsOnlyTheConfigurationTable(t *testing.T) {
	md := "## Storage names\n\n| `PLATFORM_ELSEWHERE` | x |\n\n## Configuration\n\n| variable | flag | default |\n|---|---|---|\n" +
		"| `PLATFORM_NAMESPACE` | `--namespace` | empty |\n| `PLATFORM_SMTP_USERNAME`, `PLATFORM_SMTP_PASSWORD` | | unset, see `PLATFORM_IN_TEXT` |\n\n" +
		"Also `PLATFORM_PROSE`.\n\n## Command line\n\n| `PLATFORM_LATER` | |\n"
	got := documentedIn(md)
	for _, v := range []string{"PLATFORM_NAMESPACE", "PLATFORM_SMTP_USERNAME", "PLATFORM_SMTP_PASSWORD"} {
		if !got[v] {
			t.Errorf("%s not found in the Configuration table", v)
		}
	}
	for _, v := range []string{"PLATFORM_ELSEWHERE", "PLATFORM_IN_TEXT", "PLATFORM_PROSE", "PLATFORM_LATER"} {
		if got[v] {
			t.Errorf("%s taken as documented: it is not in the first column of the Configuration table", v)
		}
	}
}
