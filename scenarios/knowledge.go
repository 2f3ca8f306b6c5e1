package scenarios

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// AI defaults for the runtime settings (issue 7).
var (
	// DefaultAIRateLimit caps model replies per member when ai.rate_limit is unset.
	DefaultAIRateLimit = RateLimit{Max: 20, Per: time.Hour}
	// DefaultHandoffAfterFailures hands a member over after this many failed replies in a row.
	DefaultHandoffAfterFailures = 3
	// DefaultMemoryTokens is the remembered turns' token budget.
	DefaultMemoryTokens = 1200
)

// aiRuntime compiles the ai section's runtime settings: limits, hand-off,
// refusal, and the operator's knowledge files (markdown or YAML, paths
// relative to the scenario file naming them).
func (c *compiler) aiRuntime(s *aiSpec, a *AI) {
	a.NegativeWords = s.NegativeWords
	for i, w := range s.NegativeWords {
		if strings.TrimSpace(w) == "" {
			c.ps.at(s.Pos, fmt.Sprintf("negative_words[%d]", i), "empty word")
		}
	}
	a.HandoffAfterFailures = DefaultHandoffAfterFailures
	if s.HandoffAfterFailures != nil {
		a.HandoffAfterFailures = *s.HandoffAfterFailures
		if a.HandoffAfterFailures < 0 {
			c.ps.at(s.Pos, "handoff_after_failures", "must not be negative (0 turns it off)")
		}
	}
	if strings.TrimSpace(s.Refusal) != "" {
		a.Refusal = c.template(s.Pos, "refusal", s.Refusal)
	}
	a.MemoryTokens = DefaultMemoryTokens
	if s.MemoryTokens < 0 {
		c.ps.at(s.Pos, "memory_tokens", "must not be negative")
	} else if s.MemoryTokens > 0 {
		a.MemoryTokens = s.MemoryTokens
	}
	a.RateLimit = DefaultAIRateLimit
	if rl := s.RateLimit; rl != nil {
		if rl.Max < 1 {
			c.ps.at(rl.Pos, "max", "must be at least 1")
		}
		if rl.Per <= 0 {
			c.ps.at(rl.Pos, "per", "required: the window, e.g. 1h")
		}
		a.RateLimit = RateLimit{Max: rl.Max, Per: time.Duration(rl.Per)}
	}
	if s.GlobalPerMinute < 0 {
		c.ps.at(s.Pos, "global_per_minute", "must not be negative (0: no cap)")
	}
	a.GlobalPerMinute = s.GlobalPerMinute
	a.NotifyUnanswered = s.NotifyUnanswered == nil || *s.NotifyUnanswered
	for i, k := range s.Knowledge {
		rel := fmt.Sprintf("knowledge[%d]", i)
		if strings.TrimSpace(k) == "" {
			c.ps.at(s.Pos, rel, "empty file name")
			continue
		}
		name, data, err := readKnowledge(c.beside(s.File), k)
		if err != nil {
			c.ps.at(s.Pos, rel, "%v", err)
			continue
		}
		var faq []FAQ
		switch strings.ToLower(path.Ext(k)) {
		case ".md", ".markdown", ".txt":
			faq = parseMarkdownKnowledge(name, data)
		case ".yaml", ".yml":
			faq, err = parseYAMLKnowledge(name, data)
		default:
			err = fmt.Errorf("%s: want a .md or .yaml knowledge file", k)
		}
		if err != nil {
			c.ps.at(s.Pos, rel, "%v", err)
			continue
		}
		if len(faq) == 0 {
			c.ps.at(s.Pos, rel, "%s has no entries (markdown: a heading per question; YAML: a list of q/a)", k)
			continue
		}
		a.FAQ = append(a.FAQ, faq...)
		a.Knowledge = append(a.Knowledge, name)
		a.knowledgeSrc = append(a.knowledgeSrc, sourceFile{name: name, data: data})
	}
}

// readKnowledge reads a knowledge file named relative to the scenario file
// scenarioFile (the embedded demo's files resolve inside the binary).
func readKnowledge(scenarioFile, name string) (string, []byte, error) {
	return readBeside(scenarioFile, name, "knowledge file")
}

// readBeside reads a file named relative to the scenario file scenarioFile
// (the embedded demo's files resolve inside the binary); what names it in errors.
func readBeside(scenarioFile, name, what string) (string, []byte, error) {
	if rest, ok := strings.CutPrefix(scenarioFile, "embedded:"); ok {
		p := path.Join(path.Dir(rest), name)
		data, err := fs.ReadFile(defaultFS, p)
		if err != nil {
			return "", nil, fmt.Errorf("%s %s is not in the embedded demo", what, name)
		}
		return "embedded:" + p, data, nil
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(scenarioFile), name)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("cannot read %s: %v", what, unwrapPathErr(err))
	}
	return p, data, nil
}

// parseMarkdownKnowledge makes one entry per heading: the heading is the
// question, the text under it (up to the next heading) the answer.
func parseMarkdownKnowledge(name string, data []byte) []FAQ {
	var out []FAQ
	var cur *FAQ
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.A = strings.TrimSpace(body.String())
			if cur.A != "" && cur.Q != "" {
				out = append(out, *cur)
			}
		}
		body.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if h, ok := strings.CutPrefix(strings.TrimLeft(t, " "), "#"); ok {
			flush()
			cur = &FAQ{Q: strings.TrimSpace(strings.TrimLeft(h, "#")), Source: fmt.Sprintf("%s:%d", name, line)}
			continue
		}
		if cur != nil {
			body.WriteString(t + "\n")
		}
	}
	flush()
	return out
}

// knowledgeEntry is one YAML knowledge entry.
type knowledgeEntry struct {
	Q        string   `yaml:"q"`
	A        string   `yaml:"a"`
	Keywords []string `yaml:"keywords"`
}

// parseYAMLKnowledge reads a list of {q, a, keywords}, strictly.
func parseYAMLKnowledge(name string, data []byte) ([]FAQ, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	list := root.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: want a list of entries with q and a", name, list.Line)
	}
	var out []FAQ
	for _, n := range list.Content {
		var e knowledgeEntry
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(n); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n.Line, err)
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n.Line, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if strings.TrimSpace(e.Q) == "" || strings.TrimSpace(e.A) == "" {
			return nil, fmt.Errorf("%s:%d: each entry needs q (the question) and a (the answer)", name, n.Line)
		}
		out = append(out, FAQ{Q: e.Q, A: e.A, Keywords: e.Keywords, Source: fmt.Sprintf("%s:%d", name, n.Line)})
	}
	return out, nil
}
