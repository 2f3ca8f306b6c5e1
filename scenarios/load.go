// Package scenarios loads, validates and compiles the operator's scenario
// YAML (brand, tag catalog, AIPL funnel, channels, welcome scripts, keyword
// replies, tag rules, check-in campaigns, coupon pools, levels, AI persona)
// into an immutable *Scenario, and hot-reloads it (Holder).
//
// A source is one file or a directory of *.yaml / *.yml files that merge.
// Decoding is strict: unknown keys, wrong types, dangling references, bad
// templates, regexes and cron specs are all reported at once, each as
// "file:line: field: message" (ValidationError). See docs/scenarios.md.
package scenarios

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	// Campaign zones must resolve on hosts (and containers) without tzdata.
	_ "time/tzdata"

	"go.yaml.in/yaml/v3"
)

// EmbeddedSource is the Source of the built-in demo scenario.
const EmbeddedSource = "embedded"

//go:embed default/*.yaml default/images/*
var defaultFS embed.FS

type sourceFile struct {
	name string
	data []byte
}

// Load reads a scenario file, or every *.yaml / *.yml file of a directory
// (in name order; hidden files skipped), and compiles it. On any problem it
// returns a ValidationError listing them all.
func Load(p string) (*Scenario, error) {
	files, err := readSource(p)
	if err != nil {
		return nil, err
	}
	return build(p, files)
}

// LoadBytes compiles one scenario document; name is used in problems.
func LoadBytes(name string, data []byte) (*Scenario, error) {
	return build(name, []sourceFile{{name, data}})
}

// LoadDefault returns the embedded demo scenario (a tea-drink brand). It
// panics if the embedded files don't compile, which the tests rule out.
func LoadDefault() *Scenario {
	sc, err := loadDefault()
	if err != nil {
		panic(fmt.Sprintf("scenarios: embedded default scenario is invalid: %v", err))
	}
	return sc
}

// LoadEmbedded is LoadDefault returning the error instead of panicking.
func LoadEmbedded() (*Scenario, error) { return loadDefault() }

// LoadIfChanged reads the scenario at p and compiles it, unless its files
// are those of version (then it returns nil, nil): reloading an unchanged
// source is a cheap no-op.
func LoadIfChanged(p, version string) (*Scenario, error) {
	files, err := readSource(p)
	if err != nil {
		return nil, err
	}
	if hashFiles(files) == version {
		return nil, nil
	}
	return build(p, files)
}

func loadDefault() (*Scenario, error) {
	entries, err := fs.ReadDir(defaultFS, "default")
	if err != nil {
		return nil, err
	}
	var files []sourceFile
	for _, e := range entries {
		if e.IsDir() {
			continue // default/images: media the demo attaches
		}
		data, err := defaultFS.ReadFile(path.Join("default", e.Name()))
		if err != nil {
			return nil, err
		}
		files = append(files, sourceFile{name: "embedded:default/" + e.Name(), data: data})
	}
	return build(EmbeddedSource, files)
}

// DefaultFiles returns the embedded demo's files by name, for `wecombot
// scenarios export` style tooling and the docs.
func DefaultFiles() map[string][]byte {
	out := map[string][]byte{}
	entries, _ := fs.ReadDir(defaultFS, "default")
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, _ := defaultFS.ReadFile(path.Join("default", e.Name()))
		out[e.Name()] = data
	}
	return out
}

// DefaultMedia returns the files the embedded demo attaches (images/…), by
// their path relative to the scenario files: copy them beside the YAML when
// exporting the demo.
func DefaultMedia() map[string][]byte {
	out := map[string][]byte{}
	_ = fs.WalkDir(defaultFS, "default/images", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := defaultFS.ReadFile(p)
		if err == nil {
			out[strings.TrimPrefix(p, "default/")] = data
		}
		return err
	})
	return out
}

func readSource(p string) ([]sourceFile, error) {
	fail := func(format string, args ...any) error {
		return ValidationError{{File: p, Msg: fmt.Sprintf(format, args...)}}
	}
	info, err := os.Stat(p)
	if err != nil {
		return nil, fail("cannot read scenario: %v", unwrapPathErr(err))
	}
	if !info.IsDir() {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fail("cannot read scenario: %v", unwrapPathErr(err))
		}
		return []sourceFile{{p, data}}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fail("cannot read scenario directory: %v", unwrapPathErr(err))
	}
	var files []sourceFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !IsYAMLName(name) {
			continue
		}
		full := filepath.Join(p, name)
		data, err := os.ReadFile(full)
		if err != nil {
			return nil, ValidationError{{File: full, Msg: fmt.Sprintf("cannot read scenario file: %v", unwrapPathErr(err))}}
		}
		files = append(files, sourceFile{full, data})
	}
	if len(files) == 0 {
		return nil, fail("the directory has no *.yaml or *.yml files")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

// IsYAMLName reports whether a file name is a scenario file (.yaml, .yml).
func IsYAMLName(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func build(source string, files []sourceFile) (sc *Scenario, err error) {
	return buildIn(source, "", files)
}

// buildIn compiles files; a non-empty base is where the files they name
// (media, knowledge) live, for files validated away from their directory.
func buildIn(source, base string, files []sourceFile) (sc *Scenario, err error) {
	// A bug in the compiler must not take a running server down with a
	// reload: it becomes a failed reload, and the last good scenario stays.
	defer func() {
		if r := recover(); r != nil {
			sc, err = nil, fmt.Errorf("%s: the scenario compiler failed on this input (a wecombot bug; please report it): %v", source, r)
		}
	}()
	ps := &problems{}
	docs := make([]*document, 0, len(files))
	syntax := &problems{}
	for _, f := range files {
		docs = append(docs, parseFile(f, ps, syntax))
	}
	if len(syntax.list) > 0 {
		// A file that doesn't parse contributes nothing, so everything the
		// other files refer to in it would be reported missing too: the
		// syntax errors alone, then stop.
		return nil, syntax.list.sorted()
	}
	m := merge(docs, ps)
	sc = compileIn(m, ps, base)
	if len(ps.list) > 0 {
		return nil, ps.list.sorted()
	}
	for _, f := range files {
		sc.Files = append(sc.Files, f.name)
	}
	sc.Source = source
	sc.Warnings = ps.warnings.sorted()
	sc.Version = hashFiles(files)
	if sc.AI != nil && len(sc.AI.knowledgeSrc) > 0 {
		// Knowledge files count too: then the holder can't skip a reload by
		// the scenario files' hash alone, and rebuilds.
		sc.Version = hashFiles(append(append([]sourceFile(nil), files...), sc.AI.knowledgeSrc...))
	}
	sc.LoadedAt = time.Now()
	return sc, nil
}

// hashFiles is a scenario's Version: a short hash of its files' names and contents.
func hashFiles(files []sourceFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrorLine splits a YAML syntax error into its line and message.
func yamlErrorLine(err error) (int, string) {
	line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return line, msg
}

// LocateYAMLError returns the line and message of the YAML syntax error err
// that parsing data gave, with the line moved to where the problem is (the
// parser names the line its enclosing block starts on) and the message saying
// so. Config files and scenario files report syntax errors through it.
func LocateYAMLError(data []byte, err error) (line int, msg string) {
	line, msg = yamlErrorLine(err)
	if real := syntaxErrorLine(data, line, err.Error()); real > line && line > 0 {
		msg += fmt.Sprintf(" (check this line's indentation against the block that starts at line %d)", line)
		line = real
	}
	return line, msg
}

// syntaxErrorLine finds the line a YAML syntax error is really on. The YAML
// parser names the line where the enclosing block starts ("line 4: did not
// find expected key" for a wrong indent at line 31), so this re-parses
// growing prefixes of the file from that line on: the first prefix that fails
// with the same error ends at the offending line. It returns reported when
// no prefix reproduces the error.
func syntaxErrorLine(data []byte, reported int, full string) int {
	if reported < 1 {
		return reported
	}
	_, fullMsg := yamlErrorLine(errors.New(full))
	lines := bytes.SplitAfter(data, []byte("\n"))
	end := 0
	for n := 1; n <= len(lines); n++ {
		end += len(lines[n-1])
		if n < reported {
			continue
		}
		var node yaml.Node
		err := yaml.Unmarshal(data[:end], &node)
		if err == nil {
			continue
		}
		if _, msg := yamlErrorLine(err); msg == fullMsg {
			return n
		}
	}
	return reported
}

// parseFile parses and decodes one file. A YAML syntax error goes to syntax
// (and the file contributes nothing); decoding problems go to ps.
func parseFile(f sourceFile, ps, syntax *problems) *document {
	doc := &document{Pos: Pos{File: f.name, Line: 1, lines: map[string]int{}}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(f.data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return doc // an empty file contributes nothing
		}
		line, msg := LocateYAMLError(f.data, err)
		syntax.add(f.name, line, "", "YAML syntax: %s", msg)
		return doc
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.add(f.name, extra.Line, "", "a scenario file holds one YAML document; split the rest into another file")
	}
	d := decoder{file: f.name, ps: ps}
	d.decode(&root, reflect.ValueOf(doc).Elem(), "", nil, "", 1)
	if doc.lines == nil {
		doc.Pos = Pos{File: f.name, Line: 1, lines: map[string]int{}}
	}
	return doc
}

//go:embed demo/checkin-week.yaml
var demoWeek []byte

// DemoWeekName names the embedded demo simulation script in output.
const DemoWeekName = "embedded:demo/checkin-week.yaml"

// DemoWeek returns the simulation script `wecombot simulate` plays when no
// file is given: one week of the demo's 早安打卡 campaign for a small cohort.
func DemoWeek() []byte { return append([]byte(nil), demoWeek...) }
