package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEngineImportsPure: the engine's import graph, even indirectly, holds
// no HTTP, metrics library, model client, file watcher or database, and
// its direct imports are the ones docs/architecture.md shows.
func TestEngineImportsPure(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{
		"net/http",
		"github.com/prometheus/client_golang/prometheus",
		"github.com/sashabaranov/go-openai",
		"github.com/fsnotify/fsnotify",
		"go.etcd.io/bbolt",
	} {
		if slices.Contains(deps, banned) {
			why, _ := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "-deps", ".").Output()
			var chain []string
			for _, l := range strings.Split(string(why), "\n") {
				pkg, imports, _ := strings.Cut(l, ":")
				if slices.Contains(strings.Fields(imports), banned) {
					chain = append(chain, pkg)
				}
			}
			t.Errorf("bot/engine depends on %s (imported by %v)", banned, chain)
		}
	}

	const module = "github.com/wecombot/wecombot/"
	out, err = exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var got []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module) {
			got = append(got, strings.TrimPrefix(p, module))
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, l := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "bot/engine ->"); ok {
			documented = strings.Fields(rest)
		}
	}
	slices.Sort(got)
	slices.Sort(documented)
	if !slices.Equal(got, documented) {
		t.Errorf("bot/engine imports %v; docs/architecture.md's package graph says %v: update the doc (or the code)", got, documented)
	}
}
