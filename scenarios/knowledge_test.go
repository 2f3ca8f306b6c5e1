package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const aiBase = base + `ai:
  persona: 你是测试顾问
  faq:
    - {q: 营业时间？, a: 每天 9 点。}
`

func writeKnowledgeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestKnowledgeFiles(t *testing.T) {
	dir := writeKnowledgeFiles(t, map[string]string{
		"main.yaml":          aiBase + "  knowledge: [knowledge/menu.md, knowledge/faq.yaml]\n  negative_words: [差评]\n  rate_limit: {max: 5, per: 10m}\n",
		"knowledge/menu.md":  "intro text without a heading is ignored\n# 山茶拿铁多少钱？\n中杯 16 元，大杯 19 元。\n\n## 有燕麦奶吗\n可以换燕麦奶，加 3 元。\n# 空标题\n",
		"knowledge/faq.yaml": "- q: 停车方便吗？\n  a: 商场地下停车场，消费满 50 元免费 2 小时。\n  keywords: [停车]\n",
	})
	sc, err := Load(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a := sc.AI
	if len(a.FAQ) != 4 {
		t.Fatalf("FAQ entries = %d: %+v", len(a.FAQ), a.FAQ)
	}
	if a.FAQ[1].Q != "山茶拿铁多少钱？" || !strings.Contains(a.FAQ[1].A, "16 元") || !strings.HasSuffix(a.FAQ[1].Source, "menu.md:2") {
		t.Fatalf("markdown entry %+v", a.FAQ[1])
	}
	if a.FAQ[3].Keywords[0] != "停车" || !strings.HasSuffix(a.FAQ[3].Source, "faq.yaml:1") {
		t.Fatalf("yaml entry %+v", a.FAQ[3])
	}
	if a.RateLimit.Max != 5 || a.NegativeWords[0] != "差评" || a.HandoffAfterFailures != DefaultHandoffAfterFailures || a.MemoryTokens != DefaultMemoryTokens {
		t.Fatalf("runtime settings %+v", a)
	}
	// An edited knowledge file changes the version, so a reload picks it up.
	v := sc.Version
	if err := os.WriteFile(filepath.Join(dir, "knowledge/menu.md"), []byte("# 新品？\n桂花酿。\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc2, err := Load(filepath.Join(dir, "main.yaml"))
	if err != nil || sc2.Version == v {
		t.Fatalf("version unchanged after a knowledge edit (%v)", err)
	}
}

func TestKnowledgeFileProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing", map[string]string{}, "cannot read knowledge file"},
		{"bad extension", map[string]string{"k.pdf": "x"}, "want a .md or .yaml"},
		{"yaml unknown key", map[string]string{"k.yaml": "- {q: a, a: b, answer: c}\n"}, "k.yaml:1"},
		{"yaml missing answer", map[string]string{"k.yaml": "- {q: a}\n"}, "needs q (the question) and a"},
		{"yaml not a list", map[string]string{"k.yaml": "q: a\n"}, "want a list"},
		{"empty markdown", map[string]string{"k.md": "no headings here\n"}, "has no entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "k.md"
			for n := range tt.files {
				name = n
			}
			if tt.name == "missing" {
				name = "nope.md"
			}
			files := map[string]string{"main.yaml": aiBase + "  knowledge: [" + name + "]\n"}
			for n, b := range tt.files {
				files["knowledge/"+n] = b
			}
			dir := writeKnowledgeFiles(t, files)
			// Knowledge lives in knowledge/: name it relative to main.yaml.
			body := strings.Replace(files["main.yaml"], "knowledge: ["+name, "knowledge: [knowledge/"+name, 1)
			if err := os.WriteFile(filepath.Join(dir, "main.yaml"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(filepath.Join(dir, "main.yaml"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "main.yaml:") {
				t.Fatalf("err = %v, want %q with main.yaml:line", err, tt.want)
			}
		})
	}
}

func TestAIRuntimeValidation(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"  rate_limit: {max: 0, per: 1h}\n", "max: must be at least 1"},
		{"  handoff_after_failures: -1\n", "handoff_after_failures"},
		{"  negative_words: [\"\"]\n", "negative_words[0]"},
		{"  global_per_minute: -5\n", "global_per_minute"},
	} {
		_, err := LoadBytes("main.yaml", []byte(aiBase+tc.extra))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.extra, err, tc.want)
		}
	}
}
