package scenarios

import (
	"io/fs"
	"strings"
	"testing"
)

// FuzzLoadBytes: any operator YAML either compiles or fails with problems
// naming the file, and never panics (the hot-reload watcher feeds files
// straight from disk, half-written ones included).
func FuzzLoadBytes(f *testing.F) {
	entries, _ := fs.ReadDir(defaultFS, "default")
	for _, e := range entries {
		b, _ := defaultFS.ReadFile("default/" + e.Name())
		f.Add(b)
		f.Add(b[:len(b)/2]) // cut mid-write
	}
	f.Add([]byte("brand: {name: x}\nchannels: [{state: \"\", name: \"\"}]\n"))
	f.Add([]byte("keywords:\n  - match: '(['\n    reply: x\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("\t- :\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := LoadBytes("fuzz.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("problem does not name the file: %v", err)
			}
			return
		}
		if sc == nil {
			t.Fatal("nil scenario without an error")
		}
	})
}
