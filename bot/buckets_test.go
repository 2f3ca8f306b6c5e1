package bot_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/bot"
)

func TestBucketRegistry(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z][a-z_]*$`)
	seen := map[string]bool{}
	for _, b := range bot.Buckets {
		if seen[b.Name] {
			t.Errorf("bucket %q registered twice", b.Name)
		}
		seen[b.Name] = true
		if !valid.MatchString(b.Name) || b.Key == "" || b.Value == "" || b.Owner == "" {
			t.Errorf("bucket %+v: want a lower_case name, a key layout, a value and an owner", b)
		}
		if got, ok := bot.LookupBucket(b.Name); !ok || got != b {
			t.Errorf("LookupBucket(%q) = %+v, %v", b.Name, got, ok)
		}
	}
	if _, ok := bot.LookupBucket("no_such_bucket"); ok {
		t.Error("LookupBucket found an unregistered name")
	}
}

// Bucket names are spelled once, in bot/buckets.go: a string constant named
// like a bucket anywhere else is a second registry growing.
func TestBucketNamesOnlyInRegistry(t *testing.T) {
	t.Parallel()
	literal := regexp.MustCompile(`(?m)^\s*(?:const\s+)?[bB]ucket\w*\s*=\s*"`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.ToSlash(path) == "../bot/buckets.go" {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if loc := literal.FindIndex(src); loc != nil {
			line := 1 + strings.Count(string(src[:loc[0]]), "\n")
			t.Errorf("%s:%d: bucket name spelled outside bot/buckets.go; register it in bot.Buckets and refer to it", path, line)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
