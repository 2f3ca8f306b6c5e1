package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The decoder walks a yaml.Node tree into the schema structs itself instead
// of using yaml.v3's Decode: that way every unknown key and every wrongly
// typed value is reported (not only the first), each with its file:line and
// YAML path, and every struct that embeds Pos learns the line of each value
// below it for the checks that run after decoding.

// scalar is implemented by schema types written as one YAML scalar
// (durations, money, dates, time windows).
type scalar interface {
	decodeScalar(value string) error
}

var (
	posType    = reflect.TypeFor[Pos]()
	scalarType = reflect.TypeFor[scalar]()
)

type decoder struct {
	file string
	ps   *problems
}

// decode fills v from n. path is the value's full YAML path (for messages);
// pos is the nearest enclosing struct with a Pos and rel the path relative to
// it. line is where the value is written: its key's line for a mapping
// entry, the item's line in a list — so problems with a block under a key
// point at the key.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, pos *Pos, rel string, line int) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if line == 0 {
		line = n.Line
	}
	if pos != nil && rel != "" {
		if _, seen := pos.lines[rel]; !seen {
			pos.lines[rel] = line
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// "key:" or "key: ~" leaves the zero value; an empty list stays empty.
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(scalarType) {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(scalar).decodeScalar(n.Value); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, pos, rel, line)
	case reflect.Struct:
		d.decodeStruct(n, v, path, pos, rel, line)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return
		}
		// A lone "-" is reported and left out: the compiler runs on whatever
		// decoded (to report every problem at once) and must never see a nil entry.
		s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind == yaml.ScalarNode && item.Tag == "!!null" && v.Type().Elem().Kind() == reflect.Pointer {
				d.errorf(item, ipath, "empty list item: fill it in or remove the lone \"-\"")
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(item, elem, ipath, pos, fmt.Sprintf("%s[%d]", rel, i), item.Line)
			s = reflect.Append(s, elem)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping (key: value), got %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			kpath := joinPath(path, key)
			if first, dup := seen[key]; dup {
				d.errorf(k, kpath, "defined twice (first at line %d)", first)
				continue
			}
			seen[key] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, kpath, pos, joinPath(rel, key), k.Line)
			v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want text, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			d.errorf(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v.OverflowInt(i) {
			d.errorf(n, path, "want a whole number, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("scenarios: decoder cannot fill %s", v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, pos *Pos, rel string, line int) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (key: value), got %s", kindName(n))
		return
	}
	info := structInfoOf(v.Type())
	if info.pos >= 0 {
		p := v.Field(info.pos).Addr().Interface().(*Pos)
		*p = Pos{File: d.file, Line: line, Path: path, lines: map[string]int{}}
		pos, rel = p, ""
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kpath := joinPath(path, key)
		if first, dup := seen[key]; dup {
			d.errorf(k, kpath, "defined twice (first at line %d)", first)
			continue
		}
		seen[key] = k.Line
		idx, ok := info.fields[key]
		if !ok {
			d.errorf(k, kpath, "unknown key %q (known keys: %s)", key, strings.Join(info.names, ", "))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), kpath, pos, joinPath(rel, key), k.Line)
	}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.ps.add(d.file, n.Line, path, format, args...)
}

type structInfo struct {
	// fields maps a key to its field's index path (a field of a struct
	// embedded with `yaml:",inline"` has a path of two or more).
	fields map[string][]int
	names  []string
	pos    int
}

var structInfos sync.Map // reflect.Type → *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string][]int{}, pos: -1}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == posType {
			si.pos = i
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			// The embedded struct's keys are this struct's (it has no Pos
			// of its own: its values' lines are recorded in this one's).
			for key, sub := range structInfoOf(f.Type).fields {
				si.fields[key] = append([]int{i}, sub...)
				si.names = append(si.names, key)
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		si.fields[name] = []int{i}
		si.names = append(si.names, name)
	}
	sort.Strings(si.names)
	structInfos.Store(t, si)
	return si
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return describe(n)
	}
	return "something else"
}

func describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	v := n.Value
	if len([]rune(v)) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	return strconv.Quote(v)
}
