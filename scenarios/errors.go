package scenarios

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a scenario, located at File:Line. Field is
// the YAML path of the offending value ("channels[2].state").
type Problem struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// Error formats the problem as "file:line: field: message".
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError lists every problem found in a scenario source, so an
// operator can fix them all in one go. Load, LoadBytes and Holder.Reload
// return it (use errors.As); problems are sorted by file and line.
type ValidationError []Problem

// Error joins the problems, one per line.
func (v ValidationError) Error() string {
	parts := make([]string, len(v))
	for i, p := range v {
		parts[i] = p.Error()
	}
	return strings.Join(parts, "\n")
}

func (v ValidationError) sorted() ValidationError {
	sort.SliceStable(v, func(i, j int) bool {
		if v[i].File != v[j].File {
			return v[i].File < v[j].File
		}
		return v[i].Line < v[j].Line
	})
	return v
}

// problems collects Problems while decoding and compiling.
type problems struct {
	list ValidationError
	// warnings are things that work but will break or surprise in
	// production (a raw media_id that expires); check prints them.
	warnings ValidationError
}

// warn records a warning about the value at rel inside the struct located by p.
func (ps *problems) warn(p Pos, rel, format string, args ...any) {
	ps.warnings = append(ps.warnings, Problem{File: p.File, Line: p.LineOf(rel), Field: p.field(rel), Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) add(file string, line int, field, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// at reports a problem with the value at rel inside the struct located by p.
func (ps *problems) at(p Pos, rel, format string, args ...any) {
	ps.add(p.File, p.LineOf(rel), p.field(rel), format, args...)
}

// Pos locates a YAML struct (a channel, a script, a rule …) in its source
// file, and remembers the line of every value below it, so problems found
// after decoding still name file:line.
type Pos struct {
	// File is the source file's name; Line the struct's first line.
	File string
	Line int
	// Path is the struct's YAML path in its file ("channels[2]").
	Path  string
	lines map[string]int
}

// LineOf returns the line of the value at rel (a path below the struct, such
// as "tags[1]" or "window.start"), falling back to the nearest parent that
// was present, and to the struct's own line.
func (p Pos) LineOf(rel string) int {
	for rel != "" {
		if l, ok := p.lines[rel]; ok {
			return l
		}
		i := strings.LastIndexAny(rel, ".[")
		if i < 0 {
			break
		}
		rel = rel[:i]
	}
	return p.Line
}

// Where returns "file:line" for the value at rel.
func (p Pos) Where(rel string) string { return fmt.Sprintf("%s:%d", p.File, p.LineOf(rel)) }

func (p Pos) field(rel string) string {
	switch {
	case rel == "":
		return p.Path
	case p.Path == "":
		return rel
	case strings.HasPrefix(rel, "["):
		return p.Path + rel
	}
	return p.Path + "." + rel
}

// has reports whether the value at rel was written in the YAML.
func (p Pos) has(rel string) bool {
	_, ok := p.lines[rel]
	return ok
}
