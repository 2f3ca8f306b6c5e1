package scenarios

import "sort"

// LoadFiles compiles files (name → YAML) as one scenario, merged in name
// order like a directory source; names appear in problems (file:line). The
// operator console uses it to validate an edited file together with the
// other files of the scenario in force, without touching them.
//
// Files the scenario attaches or reads (images, knowledge) resolve in the
// working directory; LoadFilesIn resolves them beside the scenario in force.
func LoadFiles(source string, files map[string][]byte) (*Scenario, error) {
	return LoadFilesIn(source, "", files)
}

// LoadFilesIn is LoadFiles with the files the scenario names (media,
// knowledge) resolved in base: a directory, or "embedded:default".
func LoadFilesIn(source, base string, files map[string][]byte) (*Scenario, error) {
	list := make([]sourceFile, 0, len(files))
	for name, data := range files {
		list = append(list, sourceFile{name: name, data: data})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	if len(list) == 0 {
		return nil, ValidationError{{File: source, Msg: "no scenario files"}}
	}
	return buildIn(source, base, list)
}
